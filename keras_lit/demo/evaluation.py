"""Step 4 of the demo: zero-shot top-1 per label set, and retrieval."""

import math

import numpy as np

from keras_lit.demo import captions
from keras_lit.zero_shot import build_zero_shot_weights


def evaluate(model, data, settings):
    """Zero-shot top-1 per label set and text-to-image retrieval."""
    # Equal batches: one trace of the image tower.
    batch_size = math.gcd(len(data["eval_images"]), 240)
    image_embeddings = model.encode_images(
        data["eval_images"], batch_size=batch_size
    )
    zero_shot = {}
    for name, class_names in captions.LABEL_SETS.items():
        weights = build_zero_shot_weights(
            model,
            class_names,
            list(captions.PROMPT_TEMPLATES[name]),
            verbose=0,
        )
        predictions = np.argmax(image_embeddings @ weights.T, axis=-1)
        zero_shot[name] = {
            "top1": float(np.mean(predictions == data["eval_labels"][name])),
            "chance": 1.0 / len(class_names),
            "num_classes": len(class_names),
            "num_images": int(len(predictions)),
        }
    mean = float(np.mean([v["top1"] for v in zero_shot.values()]))
    retrieval = evaluate_text_to_image(model, image_embeddings, data, settings)
    return {"zero_shot": zero_shot, "zero_shot_mean": mean, **retrieval}


def evaluate_text_to_image(model, image_embeddings, data, settings):
    """Text-to-image Recall@1 on a gallery of held-out images.

    Captions are ambiguous ("a tiny black star" fits several images), so
    besides the usual instance Recall@1 (the caption's own image ranked
    first) this reports its ceiling (a perfect model that picks uniformly
    among the images fitting the caption) and the attribute Recall@1 (the
    first image has every attribute the caption names).
    """
    gallery = min(settings["retrieval_gallery"], len(image_embeddings))
    texts = data["eval_captions"][:gallery]
    text_embeddings = model.encode_texts(texts)
    scores = text_embeddings @ image_embeddings[:gallery].T
    top = np.argmax(scores, axis=-1)
    labels = {k: v[:gallery] for k, v in data["eval_labels"].items()}
    instance, ceiling, attribute = [], [], []
    for row in range(gallery):
        mentioned = data["eval_mentions"][row]
        fits = np.ones(gallery, bool)
        for name in mentioned:
            fits &= labels[name] == labels[name][row]
        instance.append(top[row] == row)
        ceiling.append(1.0 / fits.sum())
        attribute.append(fits[top[row]])
    return {
        "retrieval": {
            "text_to_image_recall_at_1": float(np.mean(instance)),
            "recall_at_1_ceiling": float(np.mean(ceiling)),
            "attribute_recall_at_1": float(np.mean(attribute)),
            "chance": 1.0 / gallery,
            "gallery_size": int(gallery),
        }
    }
