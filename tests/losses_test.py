import numpy as np
import pytest
import tensorflow as tf
from test_case import run_layer_test

from keras_lit.layers import ContrastiveHead
from keras_lit.losses import ContrastiveLoss
from keras_lit.losses import contrastive_loss


def normalize(x):
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def reference_loss(image_embeddings, text_embeddings, temperature):
    """Symmetric InfoNCE in float64 numpy (CLIP / big_vision)."""
    x = np.asarray(image_embeddings, np.float64)
    y = np.asarray(text_embeddings, np.float64)
    logits = temperature * x @ y.T
    diagonal = np.arange(len(x))
    image_loss = -log_softmax(logits)[diagonal, diagonal]
    text_loss = -log_softmax(logits.T)[diagonal, diagonal]
    return float(np.mean((image_loss + text_loss) / 2))


def random_pairs(batch, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    x = normalize(rng.normal(size=(batch, dim))).astype("float32")
    y = normalize(rng.normal(size=(batch, dim))).astype("float32")
    return x, y


@pytest.mark.parametrize(
    "batch,temperature", [(8, 10.0), (1, 10.0), (33, 1.0), (8, 100.0)]
)
def test_matches_numpy_reference(batch, temperature):
    x, y = random_pairs(batch)
    actual = float(contrastive_loss(x, y, temperature))
    np.testing.assert_allclose(
        actual, reference_loss(x, y, temperature), rtol=1e-5, atol=1e-6
    )


def test_batch_of_one_is_zero():
    x, y = random_pairs(1)
    assert float(contrastive_loss(x, y, 10.0)) == pytest.approx(0.0, abs=1e-7)


def test_duplicate_rows():
    x, y = random_pairs(6)
    x[3], y[3] = x[1], y[1]
    actual = float(contrastive_loss(x, y, 100.0))
    expected = reference_loss(x, y, 100.0)
    np.testing.assert_allclose(actual, expected, rtol=1e-5)
    # Two identical pairs cannot be told apart: loss >= log(2) / 3 overall.
    assert actual > 0.1


def test_global_batch_split_matches_single_device():
    """Local rows against gathered columns, averaged = the global loss."""
    x, y = random_pairs(12)
    expected = reference_loss(x, y, 7.0)
    local = [
        float(
            contrastive_loss(
                x[i : i + 4],
                y[i : i + 4],
                7.0,
                all_image_embeddings=x,
                all_text_embeddings=y,
                label_offset=i,
            )
        )
        for i in (0, 4, 8)
    ]
    np.testing.assert_allclose(np.mean(local), expected, rtol=1e-5)
    # The offset matters: a wrong one gives a different (wrong) value.
    wrong = float(
        contrastive_loss(
            x[4:8], y[4:8], 7.0, all_image_embeddings=x, all_text_embeddings=y
        )
    )
    assert abs(wrong - local[1]) > 1e-2


def test_gradients_match_finite_differences():
    x, y = random_pairs(5, dim=6, seed=3)
    temperature = 4.0
    x_var = tf.Variable(x.astype("float64"))
    y_var = tf.Variable(y.astype("float64"))
    t_var = tf.Variable(temperature, dtype="float64")
    with tf.GradientTape() as tape:
        # The function computes in float32; compare with float64 numerics.
        loss = contrastive_loss(x_var, y_var, t_var)
    grad_x, grad_y, grad_t = tape.gradient(loss, [x_var, y_var, t_var])

    def numeric(f, value, eps=1e-5):
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            plus, minus = value.copy(), value.copy()
            plus[index] += eps
            minus[index] -= eps
            grad[index] = (f(plus) - f(minus)) / (2 * eps)
        return grad

    x64, y64 = x.astype("float64"), y.astype("float64")
    np.testing.assert_allclose(
        grad_x.numpy(),
        numeric(lambda v: reference_loss(v, y64, temperature), x64),
        atol=2e-4,
    )
    np.testing.assert_allclose(
        grad_y.numpy(),
        numeric(lambda v: reference_loss(x64, v, temperature), y64),
        atol=2e-4,
    )
    numeric_t = numeric(
        lambda v: reference_loss(x64, y64, float(v)), np.array(temperature)
    )
    np.testing.assert_allclose(grad_t.numpy(), numeric_t, atol=2e-4)


def test_float16_inputs_compute_in_float32():
    x, y = random_pairs(8)
    loss = contrastive_loss(x.astype("float16"), y.astype("float16"), 100.0)
    assert loss.dtype == tf.float32
    expected = reference_loss(x.astype("float16"), y.astype("float16"), 100.0)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_contrastive_loss_class_wraps_function():
    x, y = random_pairs(7)
    logits = 10.0 * x @ y.T
    value = ContrastiveLoss()(np.arange(7), logits)
    np.testing.assert_allclose(
        float(value), reference_loss(x, y, 10.0), rtol=1e-5
    )
    restored = ContrastiveLoss.from_config(ContrastiveLoss().get_config())
    assert restored.name == "contrastive_loss"


def test_head_clamps_temperature_and_normalizes_zero_vectors():
    head = ContrastiveHead(temperature_init=10.0, max_temperature=100.0)
    head.log_temperature.assign(np.log(1000.0))
    assert float(head.temperature) == pytest.approx(100.0, rel=1e-6)
    assert head.temperature.dtype == tf.float32
    normalized = head.normalize(np.zeros((2, 4), "float32"))
    assert np.all(np.isfinite(normalized)) and np.all(normalized == 0)
    logits = head(np.ones((2, 4)), np.ones((3, 4)))
    np.testing.assert_allclose(logits, np.full((2, 3), 100.0), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs", [{"temperature_init": 0.0}, {"max_temperature": 1.0}]
)
def test_head_rejects_bad_temperatures(kwargs):
    with pytest.raises(ValueError, match="temperature"):
        ContrastiveHead(**kwargs)


def test_head_layer_behaviors():
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, 4)).astype("float32")
    texts = rng.normal(size=(3, 4)).astype("float32")
    head, logits = run_layer_test(
        cls=ContrastiveHead,
        init_kwargs={"temperature_init": 10.0, "max_temperature": 50.0},
        input_data=(images, texts),
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
    )
    expected = 10.0 * normalize(images) @ normalize(texts).T
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    assert logits.dtype == tf.float32
