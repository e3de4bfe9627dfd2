"""Step 1 of the demo: the caption split for LiT and the held-out split."""

import numpy as np

from keras_lit.demo import captions
from keras_lit.demo import shapes


def build_data(settings, verbose=True):
    """The caption split for LiT and the held-out evaluation split."""
    seed = settings["seed"]
    lit_images, lit_labels = _generate(
        seed, "lit", settings["num_lit_pairs"], "  LiT pairs", verbose
    )
    eval_images, eval_labels = _generate(
        seed, "eval", settings["num_eval_images"], "  held-out", verbose
    )
    eval_captions, eval_mentions = [], []
    for row in range(len(eval_images)):
        text, mentioned = captions.caption(
            seed,
            "eval",
            row,
            {name: eval_labels[name][row] for name in eval_labels},
            return_mentions=True,
        )
        eval_captions.append(text)
        eval_mentions.append(mentioned)
    return {
        "lit_images": lit_images,
        "lit_labels": lit_labels,
        "lit_captions": captions.captions_for(seed, "lit", lit_labels),
        "eval_images": eval_images,
        "eval_labels": eval_labels,
        "eval_captions": eval_captions,
        "eval_mentions": eval_mentions,
    }


def _generate(seed, split, count, description, verbose):
    from tqdm import tqdm

    chunk = 250
    images, labels = [], []
    with tqdm(total=count, desc=description, disable=not verbose) as bar:
        for start in range(0, count, chunk):
            part = min(chunk, count - start)
            chunk_images, chunk_labels = shapes.generate_images(
                seed, split, part, start=start
            )
            images.append(chunk_images)
            labels.append(chunk_labels)
            bar.update(part)
    return np.concatenate(images), {
        name: np.concatenate([part[name] for part in labels])
        for name in shapes.ATTRIBUTES
    }
