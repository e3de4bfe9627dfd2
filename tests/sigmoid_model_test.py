"""LiTModel with the sigmoid loss, blockwise losses and gradient caching."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CAPTIONS
from conftest import make_image_encoder
from conftest import make_lit_model
from conftest import make_text_encoder
from conftest import random_images
from distribute_test import assert_weights_close

from keras_lit.losses import SigmoidLoss
from keras_lit.models import LiTModel
from keras_lit.zero_shot import ZeroShotClassifier

EMBEDDING_DIM = 64  # conftest's image tower


def pairs(size, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image_embeddings": rng.normal(size=(size, EMBEDDING_DIM)).astype(
            "float32"
        ),
        "texts": [f"{CAPTIONS[i % 8]} {i % 5}" for i in range(size)],
    }


def numpy_sigmoid_loss(images, texts, temperature, bias):
    logits = temperature * images.astype("float64") @ texts.T + bias
    signs = 2.0 * np.eye(len(logits)) - 1.0
    return np.mean(np.logaddexp(0.0, -signs * logits).sum(axis=1))


def train(vocabulary, weights, data, steps_batch=8, **kwargs):
    model = make_lit_model(vocabulary, **kwargs)
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(data, batch_size=steps_batch, shuffle=False, verbose=0)
    return model, history.history


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_gradient_cached_steps_equal_plain_steps(loss, vocabulary):
    """Sub-batches of 3 (3 + 3 + 2 rows), precomputed image embeddings.

    The cached steps also compute the loss in blocks of 3 columns: SGD
    moves the weights by the gradient itself, so any difference shows.
    """
    keras.utils.set_random_seed(4)
    weights = make_lit_model(vocabulary, loss=loss).get_weights()
    data = pairs(24)
    plain, expected = train(vocabulary, weights, data, loss=loss)
    cached, history = train(
        vocabulary, weights, data, loss=loss, text_sub_batch=3
    )
    assert cached.pair_loss.block_size == 3
    for name in ("loss", "image_to_text_accuracy", "text_to_image_accuracy"):
        np.testing.assert_allclose(history[name], expected[name], rtol=1e-5)
    names = [w.path for w in cached.trainable_weights]
    assert_weights_close(
        names,
        [np.asarray(w) for w in cached.trainable_weights],
        [np.asarray(w) for w in plain.trainable_weights],
        atol=1e-6,
    )
    assert float(cached.temperature) != 10.0  # it did train


def hlo_shapes(function, *args):
    hlo = function.experimental_get_compiler_ir(*args)(stage="hlo")
    return [
        tuple(int(d) for d in dims.split(",") if d)
        for dims in re.findall(r"(?:f32|s32|pred|f64|u32)\[([\d,]*)\]", hlo)
    ]


def test_traced_cached_step_holds_no_tensor_beyond_sub_batch_by_g(
    vocabulary,
):
    """The XLA-compiled train step, forward and backward, read as HLO.

    With `text_sub_batch=8` at G = 96, every tensor with a batch dimension
    has at most `D` = 64 values per row (the embeddings): the loss never
    holds more than `[G, 8]` logits, the text tower never more than one
    sub-batch. The plain step holds `[G, G]` logits and whole-batch tower
    activations.
    """
    size, sub_batch = 96, 8
    batch = None
    per_row = {}
    for text_sub_batch in (None, sub_batch):
        model = make_lit_model(
            vocabulary, loss="sigmoid", text_sub_batch=text_sub_batch
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.optimizer.build(model.trainable_variables)
        if batch is None:
            batch = dict(model.preprocessor(pairs(size)))
            batch = {k: tf.constant(v) for k, v in batch.items()}
        step = tf.function(model.train_step, jit_compile=True)
        shapes = hlo_shapes(step, batch)
        per_row[text_sub_batch] = max(
            int(np.prod(s)) // size for s in shapes if size in s
        )
        if text_sub_batch is None:
            assert (size, size) in shapes
        else:
            assert (size, size) not in shapes
            assert (size, sub_batch) in shapes  # the loss blocks
    assert per_row[sub_batch] <= EMBEDDING_DIM < per_row[None]


def test_sigmoid_model_saves_evaluates_and_classifies(vocabulary, tmp_path):
    """`.keras` keeps the loss, its options and the learned bias; the loss
    and zero-shot probabilities are SigLIP's (per-pair sigmoid)."""
    model = make_lit_model(
        vocabulary, loss="sigmoid", bias_init=-5.0, loss_block_size=4
    )
    assert float(model.head.bias) == -5.0
    model.compile()
    data = {"images": random_images(8, seed=2), "texts": CAPTIONS}
    model.fit(data, batch_size=8, verbose=0)
    bias = float(model.head.bias)
    assert bias != -5.0  # the bias trained

    path = str(tmp_path / "sigmoid.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    config = restored.get_config()
    assert config["loss"] == "sigmoid" and config["loss_block_size"] == 4
    assert isinstance(restored.pair_loss, SigmoidLoss)
    assert restored.pair_loss.block_size == 4
    assert float(restored.head.bias) == bias
    np.testing.assert_array_equal(
        restored.encode_texts(CAPTIONS), model.encode_texts(CAPTIONS)
    )

    # evaluate reports the numpy sigmoid loss of the embeddings.
    images = model.encode_images(data["images"])
    texts = model.encode_texts(CAPTIONS)
    temperature = float(model.temperature)
    logs = restored.evaluate(data, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        logs["loss"],
        numpy_sigmoid_loss(images, texts, temperature, bias),
        rtol=1e-5,
    )

    # Zero-shot: each class's own sigmoid, not a softmax over classes.
    classifier = ZeroShotClassifier.from_lit_model(
        model, ["red circle", "blue square"], templates=["{}"], verbose=0
    )
    weights = model.encode_texts(["red circle", "blue square"])
    expected = 1 / (1 + np.exp(-(temperature * images[:2] @ weights.T + bias)))
    probabilities = classifier.predict(data["images"][:2], verbose=0)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)
    cosines = images[:2] @ weights.T
    np.testing.assert_allclose(
        model.head.probabilities(cosines), expected, rtol=1e-5, atol=1e-7
    )


def test_bad_loss_options(vocabulary):
    image_encoder = make_image_encoder()
    text_encoder = make_text_encoder(vocabulary, image_encoder.output_dim)
    cases = [
        ({"loss": "cosine"}, "`loss` must be one of"),
        ({"loss_block_size": 0}, "block_size"),
        ({"text_sub_batch": -2}, "text_sub_batch"),
        ({"text_sub_batch": 2.5}, "text_sub_batch"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            LiTModel(image_encoder, text_encoder, **kwargs)
    # A sigmoid loss object needs the model's bias.
    model = LiTModel(image_encoder, text_encoder)
    model.compile(loss=SigmoidLoss())
    with pytest.raises(ValueError, match="learnable bias"):
        model.fit(pairs(8), batch_size=8, verbose=0)
    # Gradient caching sub-batches the text tower only.
    unlocked = make_lit_model(vocabulary, text_sub_batch=4)
    unlocked.image_encoder.locked = False
    unlocked.compile()
    data = {"images": random_images(8, seed=1), "texts": CAPTIONS}
    with pytest.raises(ValueError, match="locked image tower"):
        unlocked.fit(data, batch_size=8, verbose=0)


@pytest.mark.large
def test_sigmoid_export_serves_sigmoid_probabilities(vocabulary, tmp_path):
    """The `zero_shot` signature of a sigmoid model: SigLIP probabilities."""
    from serving_fixtures import decode_like_serving
    from serving_fixtures import encode

    from keras_lit.export import export_for_serving
    from keras_lit.export import load
    from keras_lit.zero_shot.weights import build_zero_shot_weights

    model = make_lit_model(vocabulary, loss="sigmoid", bias_init=-2.0)
    templates = ["a photo of a {}."]
    path = export_for_serving(model, str(tmp_path), templates=templates)
    signatures = load(path)
    assert signatures.metadata["loss"] == "sigmoid"
    images = [encode(image, "PNG") for image in random_images(2, seed=6)]
    classes = ["red circle", "blue square", "green star"]
    outputs = signatures["zero_shot"](
        image_bytes=tf.constant(images), class_names=tf.constant(classes)
    )
    embeddings = model.encode_images(
        np.stack([decode_like_serving(b) for b in images])
    )
    weights = build_zero_shot_weights(model, classes, templates, verbose=0)
    logits = float(model.temperature) * embeddings @ weights.T - 2.0
    np.testing.assert_allclose(
        outputs["probabilities"].numpy(), 1 / (1 + np.exp(-logits)), atol=1e-5
    )
