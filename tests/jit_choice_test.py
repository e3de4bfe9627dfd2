"""`LiTModel.compile(jit_compile="auto")`: the choice, and that it is right."""

import keras
import keras_hub
import numpy as np
import pytest
from conftest import CAPTIONS
from conftest import make_image_encoder
from conftest import make_text_encoder
from conftest import random_images

from keras_lit import distribute
from keras_lit.layers import LockedImageEncoder
from keras_lit.layers import TextEncoder
from keras_lit.models import LiTModel
from keras_lit.models.jit_choice import choose_jit_compile


@pytest.mark.parametrize(
    "arguments, expected, reason",
    [
        ((1, ["CPU"]), True, "one replica"),
        ((1, ["GPU"]), True, "one replica"),
        ((2, ["CPU", "CPU"]), False, "no kernel for their all-gather"),
        ((4, ["GPU"] * 4), False, "Keras leaves XLA off"),
        ((1, ["CPU"], ["string_lookup"]), False, "string_lookup"),
        ((1, ["CPU"], (), True), False, "run_eagerly"),
        ((1, ["CPU"], (), False, True), False, "determinism"),
        ((1, ["CPU"], (), False, False, True), False, "trains convolutions"),
        ((1, ["GPU"], (), False, False, True), True, "one replica"),
    ],
)
def test_choose_jit_compile(arguments, expected, reason):
    jit_compile, why = choose_jit_compile(*arguments)
    assert jit_compile is expected and reason in why


def test_auto_resolves_per_strategy_and_says_so(vocabulary, capfd):
    def build(locked=True):
        image_encoder = make_image_encoder(locked=locked)
        text_encoder = make_text_encoder(vocabulary, image_encoder.output_dim)
        return LiTModel(image_encoder, text_encoder)

    model = build()
    model.compile()
    assert model.jit_compile is True
    lines = [
        line for line in capfd.readouterr().err.splitlines() if "XLA" in line
    ]
    assert lines == [
        "keras_lit: LiTModel.compile(jit_compile='auto'): XLA on "
        "(one replica, every layer supports XLA)"
    ]
    model.compile(run_eagerly=True)
    assert model.jit_compile is False
    assert "XLA off (run_eagerly=True)" in capfd.readouterr().err
    model.compile(jit_compile=False)  # explicit: no line
    assert model.jit_compile is False
    assert "XLA" not in capfd.readouterr().err
    model = build(locked=False)  # Uu: XLA's conv gradients are slow on CPU
    model.compile()
    assert model.jit_compile is False
    assert "trains convolutions" in capfd.readouterr().err
    strategy = distribute.get_strategy("mirrored", devices=["CPU:0", "CPU:1"])
    with strategy.scope():
        model = build()
        model.compile()
    assert model.jit_compile is False
    assert "2 CPU replicas" in capfd.readouterr().err


def _tiny_vit_encoder():
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3),
        patch_size=8,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
    )
    return LockedImageEncoder(backbone, pooling="cls", value_range=(0, 1))


def _tiny_bert_encoder(vocabulary, projection_dim):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary) + 1,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
        dropout=0.0,
    )
    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=vocabulary + ["[MASK]"]
    )
    return TextEncoder(backbone, tokenizer, projection_dim, pooling="cls")


FAMILIES = {
    # family: (image tower, text tower, inputs, dtype policy). Text towers
    # other than the from-scratch one train from precomputed embeddings:
    # one XLA compile of the ResNet is enough.
    "keras_cv_resnet": ("resnet", "scratch", "images", None),
    "keras_hub_vit": ("vit", "scratch", "images", None),
    "keras_hub_bert": ("resnet", "bert", "image_embeddings", None),
    "precomputed": ("resnet", "scratch", "image_embeddings", None),
    "mixed_bfloat16": ("vit", "scratch", "images", "mixed_bfloat16"),
}


def _build(family, vocabulary):
    image, text, _, _ = FAMILIES[family]
    if image == "vit":
        image_encoder = _tiny_vit_encoder()
    else:
        image_encoder = make_image_encoder()
    if text == "bert":
        text_encoder = _tiny_bert_encoder(vocabulary, image_encoder.output_dim)
    else:
        text_encoder = make_text_encoder(vocabulary, image_encoder.output_dim)
    return LiTModel(image_encoder, text_encoder)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_auto_choice_trains_like_the_non_xla_step(vocabulary, family):
    """`"auto"` picks XLA for each tower family; same losses and weights."""
    _, _, inputs, policy = FAMILIES[family]
    data = {"texts": CAPTIONS * 2}
    results = []
    try:
        if policy:
            keras.mixed_precision.set_global_policy(policy)
        for jit_compile in ("auto", False):
            keras.utils.set_random_seed(7)
            model = _build(family, vocabulary)
            if inputs == "images":
                data["images"] = random_images(16)
            else:
                width = model.image_encoder.output_dim
                data["image_embeddings"] = (
                    np.random.default_rng(0)
                    .normal(size=(16, width))
                    .astype("float32")
                )
            model.compile(jit_compile=jit_compile)
            assert model.jit_compile is (jit_compile == "auto")
            history = model.fit(data, batch_size=8, shuffle=False, verbose=0)
            results.append(
                (
                    history.history["loss"],
                    [np.array(w, "float32") for w in model.trainable_weights],
                )
            )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    (loss_xla, weights_xla), (loss_plain, weights_plain) = results
    assert len(weights_xla) == len(weights_plain) > 5
    if policy != "mixed_bfloat16":
        np.testing.assert_allclose(loss_xla, loss_plain, rtol=1e-5)
        for a, b in zip(weights_xla, weights_plain):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
        return
    # bfloat16 keeps 8 mantissa bits and XLA rounds in other places; Adam
    # turns a few near-zero gradients into opposite steps of up to the
    # learning rate (1e-3). The loss and nearly every weight still agree.
    np.testing.assert_allclose(loss_xla, loss_plain, rtol=1e-2)
    close = np.concatenate(
        [
            np.abs(a - b).ravel() <= 1e-3 + 1e-2 * np.abs(b).ravel()
            for a, b in zip(weights_xla, weights_plain)
        ]
    )
    assert close.mean() >= 0.99, close.mean()
