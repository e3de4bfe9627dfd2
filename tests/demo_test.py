import json
import math
import os

import numpy as np
import pytest

from keras_lit.demo import captions
from keras_lit.demo import pretrain
from keras_lit.demo import shapes


def test_images_are_deterministic_per_seed_and_index():
    images, labels = shapes.generate_images(seed=3, split="lit", count=6)
    again, labels_again = shapes.generate_images(seed=3, split="lit", count=6)
    assert images.dtype == np.uint8
    assert images.shape == (6, 64, 64, 3)
    assert images.tobytes() == again.tobytes()
    for name in shapes.ATTRIBUTES:
        np.testing.assert_array_equal(labels[name], labels_again[name])
    # Any slice draws the same images as the whole batch.
    tail, _ = shapes.generate_images(seed=3, split="lit", count=2, start=4)
    assert tail.tobytes() == images[4:].tobytes()
    other, _ = shapes.generate_images(seed=4, split="lit", count=6)
    assert other.tobytes() != images.tobytes()


def test_splits_are_disjoint():
    seen = {}
    for split in ("pretrain", "lit", "eval"):
        images, _ = shapes.generate_images(seed=0, split=split, count=40)
        seen[split] = {image.tobytes() for image in images}
        assert len(seen[split]) == 40
    assert not seen["pretrain"] & seen["lit"]
    assert not seen["pretrain"] & seen["eval"]
    assert not seen["lit"] & seen["eval"]


def test_labels_cover_every_value():
    _, labels = shapes.generate_images(seed=0, split="eval", count=400)
    for name, values in shapes.ATTRIBUTES.items():
        assert set(labels[name].tolist()) == set(range(len(values)))


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="split"):
        shapes.generate_images(seed=0, split="train", count=1)


def test_captions_vary_and_name_the_shape_and_colour():
    _, labels = shapes.generate_images(seed=0, split="lit", count=300)
    texts = captions.captions_for(0, "lit", labels)
    assert texts == captions.captions_for(0, "lit", labels)
    assert len(set(texts)) > 250
    first_words = {text.split()[0] for text in texts}
    assert len(first_words) > 10  # attribute order and templates vary
    lengths = {len(text.split()) for text in texts}
    assert min(lengths) <= 3 and max(lengths) >= 7  # some omit attributes
    for row, text in enumerate(texts):
        for name in ("shape", "colour"):
            value = shapes.ATTRIBUTES[name][labels[name][row]]
            assert any(
                synonym in text for synonym in captions.SYNONYMS[name][value]
            ), (text, value)
    synonyms_used = sum(
        any(word in text for text in texts) for word in ("disc", "hoop")
    )
    assert synonyms_used == 2


def test_zero_shot_prompts_are_never_training_captions():
    _, labels = shapes.generate_images(seed=0, split="lit", count=500)
    texts = set(captions.captions_for(0, "lit", labels))
    training_templates = set(captions.CAPTION_TEMPLATES)
    for name, templates in captions.PROMPT_TEMPLATES.items():
        assert not set(templates) & training_templates
        for template in templates:
            for class_name in captions.LABEL_SETS[name]:
                assert template.format(class_name) not in texts


def test_pretrain_cache_key_changes_with_settings():
    settings = pretrain.pretrain_settings(seed=0)
    assert pretrain.settings_hash(settings) == pretrain.settings_hash(
        dict(settings)
    )
    changed = dict(settings, epochs=settings["epochs"] + 1)
    assert pretrain.settings_hash(changed) != pretrain.settings_hash(settings)
    assert min(settings["stackwise_blocks"]) >= 2


@pytest.mark.large
def test_run_demo_smoke_end_to_end(tmp_path):
    from keras_lit.demo import run_demo

    results = run_demo(str(tmp_path / "demo"), smoke=True, verbose=False)
    paths = results["paths"]
    for key in ("report_png", "results_json", "model"):
        assert os.path.isfile(paths[key]), key
    assert os.path.isdir(paths["export"])
    with open(paths["results_json"]) as file:
        saved = json.load(file)
    assert set(saved["setups"]) == {"Lu", "Uu", "uu"}
    for name, values in results["zero_shot"].items():
        assert 0.0 <= values["top1"] <= 1.0, name
        assert values["chance"] == pytest.approx(
            1 / len(shapes.ATTRIBUTES[name])
        )
    recall = results["retrieval"]["text_to_image_recall_at_1"]
    assert 0.0 <= recall <= 1.0
    for row in results["setups"].values():
        assert math.isfinite(row["final_loss"])
    query = results["export"]["queries"]["shape"]
    assert set(query["top_class"]) <= set(shapes.SHAPES)
    with open(paths["report_png"], "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    # Stage 1 is cached under a hash of its settings: the next run loads it.
    settings = results["settings"]["pretrain"]
    cache_dir = os.path.dirname(paths["pretrained_backbone"])
    backbone, info = pretrain.pretrain_backbone(
        settings, cache_dir, verbose=False
    )
    assert info["cached"] and info["path"] == paths["pretrained_backbone"]
    assert info["source"] == "cache" and results["pretrain"]["source"] in (
        "trained",
        "cache",
    )
    assert backbone.count_params() > 0
    # `--retrain-tower`: trains even though the tower is cached.
    _, info = pretrain.pretrain_backbone(
        settings, cache_dir, verbose=False, retrain=True
    )
    assert info["source"] == "trained" and not info["cached"]


def test_shipped_tower_is_the_demo_tower_and_pretrained(tmp_path):
    """keras_lit ships stage 1 for the demo's settings: no training."""
    from keras_lit.demo.pipeline import demo_settings

    settings = demo_settings(seed=0)["pretrain"]
    assert pretrain.shipped_settings() == settings, (
        "The demo's stage-1 settings changed: rebuild the shipped tower "
        "with `python -m keras_lit.demo.pretrain` (make demo-tower)."
    )
    weights = os.path.join(pretrain.SHIPPED_DIR, "backbone.weights.h5")
    assert os.path.getsize(weights) < 3 * 2**20
    backbone, info = pretrain.pretrain_backbone(
        settings, str(tmp_path), verbose=False
    )
    assert info["source"] == "shipped" and info["cached"]
    assert min(info["accuracy"].values()) > 0.95
    # Its pooled features already separate the shapes of held-out images:
    # nearest class mean, fitted on 160 images, scored on 80 others.
    images, labels = shapes.generate_images(0, "eval", 240)
    features = backbone.predict(images, batch_size=80, verbose=0)
    features = features.mean(axis=(1, 2))
    shape = labels["shape"]
    classes = range(len(shapes.SHAPES))
    fit, held_out = features[:160], features[160:]
    means = np.stack([fit[shape[:160] == k].mean(0) for k in classes])
    distances = ((held_out[:, None] - means[None]) ** 2).sum(-1)
    accuracy = np.mean(distances.argmin(-1) == shape[160:])
    assert accuracy > 0.6, accuracy


def test_prompts_fit_the_text_tower_without_truncation():
    # An unknown word splits into characters; a prompt longer than the
    # sequence would lose its class name at the end.
    from keras_lit.demo.pipeline import demo_settings
    from keras_lit.layers import TextEncoder
    from keras_lit.layers import build_word_piece_vocabulary

    settings = demo_settings()
    _, labels = shapes.generate_images(seed=0, split="lit", count=500)
    vocabulary = build_word_piece_vocabulary(
        captions.captions_for(0, "lit", labels), settings["vocabulary_size"]
    )
    encoder = TextEncoder.from_scratch(
        vocabulary, projection_dim=8, **settings["text_tower"]
    )
    length = settings["text_tower"]["sequence_length"]
    prompts = [
        template.format(class_name)
        for name, templates in captions.PROMPT_TEMPLATES.items()
        for template in templates
        for class_name in captions.LABEL_SETS[name]
    ]
    tokens = encoder.tokenize(prompts)
    used = np.asarray(tokens["padding_mask"]).sum(axis=1)
    assert used.max() < length, prompts[int(used.argmax())]
    unknown = vocabulary.index("[UNK]")
    assert not np.any(np.asarray(tokens["token_ids"]) == unknown)
