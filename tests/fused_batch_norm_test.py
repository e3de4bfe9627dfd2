"""`compat.fuse_batch_normalization`: TF's fused kernel, Keras' numbers."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from compat_test import batch_norm_op_types
from conftest import make_resnet_backbone

from keras_lit.compat import all_layers
from keras_lit.compat import fuse_batch_normalization
from keras_lit.layers import LockedImageEncoder

EPSILON, MOMENTUM = 1e-3, 0.8


def make_pair(shape, dtype=None):
    """A Keras `BatchNormalization` and a fused twin with equal weights."""
    rng = np.random.default_rng(0)
    layers = []
    for _ in range(2):
        layer = keras.layers.BatchNormalization(
            momentum=MOMENTUM, epsilon=EPSILON, dtype=dtype
        )
        layer.build((None,) + shape[1:])
        layers.append(layer)
    channels = shape[-1]
    weights = [
        rng.normal(1.0, 0.3, channels),  # gamma
        rng.normal(0.0, 0.3, channels),  # beta
        rng.normal(0.0, 0.3, channels),  # moving mean
        rng.uniform(0.5, 2.0, channels),  # moving variance
    ]
    for layer in layers:
        layer.set_weights([w.astype("float32") for w in weights])
    reference, fused = layers
    assert fuse_batch_normalization(fused) == 1
    return reference, fused, weights


def forward_backward(layer, x, upstream, training=True):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        objective = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    variables = [layer.gamma, layer.beta]
    gradients = tape.gradient(objective, [x] + variables)
    return y.numpy().astype("float32"), [g.numpy() for g in gradients]


def numpy_batch_norm(x, upstream, gamma, beta):
    """Training-mode batch norm over N, H, W: outputs, gradients, stats."""
    axes = (0, 1, 2)
    count = np.prod([x.shape[a] for a in axes])
    mean = x.mean(axes)
    variance = x.var(axes)  # biased, as Keras
    inverse = 1.0 / np.sqrt(variance + EPSILON)
    normalized = (x - mean) * inverse
    y = gamma * normalized + beta
    d_beta = upstream.sum(axes)
    d_gamma = (upstream * normalized).sum(axes)
    d_x = (gamma * inverse / count) * (
        count * upstream - d_beta - normalized * d_gamma
    )
    return y, [d_x, d_gamma, d_beta], mean, variance


def test_training_matches_numpy_and_keras():
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, (3, 5, 4, 6)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    reference, fused, (gamma, beta, moving_mean, moving_var) = make_pair(
        x.shape
    )
    y, gradients = forward_backward(fused, x, upstream)
    want_y, want_gradients, mean, variance = numpy_batch_norm(
        x.astype("float64"), upstream, gamma, beta
    )
    np.testing.assert_allclose(y, want_y, atol=2e-5)
    for got, want in zip(gradients, want_gradients):
        np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(
        fused.moving_mean.numpy(),
        moving_mean * MOMENTUM + mean * (1 - MOMENTUM),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        fused.moving_variance.numpy(),
        moving_var * MOMENTUM + variance * (1 - MOMENTUM),
        rtol=1e-5,
    )
    # And what Keras' own layer computes, to float32 rounding.
    keras_y, keras_gradients = forward_backward(reference, x, upstream)
    np.testing.assert_allclose(y, keras_y, atol=1e-5)
    for got, want in zip(gradients, keras_gradients):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(
            getattr(fused, name).numpy(),
            getattr(reference, name).numpy(),
            rtol=1e-5,
        )
    assert "FusedBatchNormV3" in batch_norm_op_types(fused, True, x.shape)


@pytest.mark.parametrize("case", ["inference", "frozen", "rank2", "mask"])
def test_other_calls_run_keras_code(case):
    rng = np.random.default_rng(2)
    shape = (4, 6) if case in ("rank2", "mask") else (2, 3, 3, 4)
    x = rng.normal(size=shape).astype("float32")
    reference, fused, _ = make_pair(shape)
    kwargs = {"training": case != "inference"}
    if case == "mask":
        kwargs["mask"] = tf.constant([True, False, True, True])
    for layer in (reference, fused):
        layer.trainable = case != "frozen"
    np.testing.assert_array_equal(
        fused(x, **kwargs).numpy(), reference(x, **kwargs).numpy()
    )
    np.testing.assert_array_equal(
        fused.moving_variance.numpy(), reference.moving_variance.numpy()
    )
    if case in ("inference", "frozen"):
        op_types = batch_norm_op_types(fused, kwargs["training"], shape)
        assert not any("FusedBatchNorm" in kind for kind in op_types)


def test_one_value_per_channel_keeps_statistics_finite():
    x = np.full((1, 1, 1, 3), 2.0, "float32")
    reference, fused, _ = make_pair(x.shape)
    fused(x, training=True)
    reference(x, training=True)
    # One value per channel: the Bessel correction must not divide by 0.
    assert np.all(np.isfinite(fused.moving_variance.numpy()))
    np.testing.assert_allclose(
        fused.moving_variance.numpy(), reference.moving_variance.numpy()
    )


def test_mixed_precision_and_xla_match_keras():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 4, 8)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    reference, fused, _ = make_pair(x.shape, dtype="mixed_bfloat16")
    y, gradients = forward_backward(fused, x, upstream)
    keras_y, keras_gradients = forward_backward(reference, x, upstream)
    assert fused(x, training=True).dtype == tf.bfloat16
    assert fused.moving_variance.dtype == "float32"
    np.testing.assert_allclose(y, keras_y, atol=0.05)
    for got, want in zip(gradients, keras_gradients):
        np.testing.assert_allclose(got, want, atol=0.1, rtol=0.05)

    _, fused, _ = make_pair(x.shape)
    _, eager_gradients = forward_backward(fused, x, upstream)
    _, fused, _ = make_pair(x.shape)
    compiled = tf.function(forward_step, jit_compile=True)
    xla_gradients = compiled(fused, tf.constant(x), tf.constant(upstream))
    for got, want in zip(xla_gradients, eager_gradients):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4, rtol=1e-4)


def forward_step(layer, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        objective = tf.reduce_sum(layer(x, training=True) * upstream)
    return tape.gradient(objective, [x, layer.gamma, layer.beta])


def test_image_encoder_swaps_its_batch_norms_and_saves_as_before(tmp_path):
    encoder = LockedImageEncoder(make_resnet_backbone(), locked=False)
    norms = [
        layer
        for layer in all_layers(encoder.backbone)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and all("call" in vars(layer) for layer in norms)
    assert fuse_batch_normalization(encoder) == 0  # idempotent
    # The class is untouched: other models keep Keras' code.
    plain = keras.layers.BatchNormalization()
    assert "call" not in vars(plain)

    images = np.random.default_rng(4).uniform(0, 255, (2, 32, 32, 3))
    path = os.path.join(tmp_path, "encoder.keras")
    keras.Sequential([keras.Input((32, 32, 3)), encoder]).save(path)
    restored = keras.saving.load_model(path).layers[0]
    assert restored.get_config() == encoder.get_config()
    np.testing.assert_allclose(
        restored.extract_features(images), encoder.extract_features(images)
    )
    assert all(
        "call" in vars(layer)
        for layer in all_layers(restored.backbone)
        if isinstance(layer, keras.layers.BatchNormalization)
    )
