"""Sigmoid and blockwise losses against float64 numpy references."""

import re

import numpy as np
import pytest
import tensorflow as tf

from keras_lit.losses import blockwise_contrastive_loss
from keras_lit.losses import contrastive_loss
from keras_lit.losses import sigmoid_loss
from keras_lit.losses.blockwise import blockwise_contrastive_terms
from keras_lit.losses.blockwise import blockwise_sigmoid_loss_terms


def normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def random_pairs(batch, dim=8, seed=0, duplicate=False):
    rng = np.random.default_rng(seed)
    x = normalize(rng.normal(size=(batch, dim))).astype("float32")
    y = normalize(rng.normal(size=(batch, dim))).astype("float32")
    if duplicate:
        x[-1], y[-1] = x[0], y[0]
    return x, y


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_rows(kind, rows, columns, t, bias=0.0, offset=0):
    """float64 per-row losses and gradients of their mean over rows.

    Returns `(per_row_losses, hits, d_rows, d_columns, d_t, d_bias)`.
    """
    rows, columns = rows.astype("float64"), columns.astype("float64")
    dots = rows @ columns.T
    logits = t * dots + bias
    b = len(rows)
    labels = np.arange(b) + offset
    onehot = np.zeros_like(logits)
    onehot[np.arange(b), labels] = 1.0
    if kind == "softmax":
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1))
        lse += logits.max(1)
        losses = lse - logits[np.arange(b), labels]
        d_logits = (softmax(logits) - onehot) / b
    else:
        signs = 2.0 * onehot - 1.0
        losses = -log_sigmoid(signs * logits).sum(1)
        d_logits = -signs * sigmoid(-signs * logits) / b
    hits = (np.argmax(logits, axis=1) == labels).astype("float64")
    return (
        losses,
        hits,
        t * d_logits @ columns,
        t * d_logits.T @ rows,
        float(np.sum(d_logits * dots)),
        float(np.sum(d_logits)),
    )


def tf_values_and_gradients(function, *arrays):
    variables = [tf.Variable(a) for a in arrays]
    with tf.GradientTape() as tape:
        outputs = function(*variables)
    gradients = tape.gradient(outputs[0], variables)
    return outputs, gradients


def close(actual, expected):
    np.testing.assert_allclose(
        np.asarray(actual, "float64"), expected, rtol=1e-5, atol=1e-6
    )


CASES = [
    # (batch, block): uneven blocks, block > batch, batch 1, duplicates.
    pytest.param(7, 3, False, id="uneven"),
    pytest.param(5, 8, False, id="block_larger"),
    pytest.param(1, 4, False, id="batch_1"),
    pytest.param(6, 4, True, id="duplicates"),
]


@pytest.mark.parametrize("batch,block,duplicate", CASES)
def test_one_device_losses_and_gradients(batch, block, duplicate):
    x, y = random_pairs(batch, duplicate=duplicate, seed=batch)
    t, bias = 7.0, -3.0
    image = reference_rows("softmax", x, y, t)
    text = reference_rows("softmax", y, x, t)
    sig = reference_rows("sigmoid", x, y, t, bias)
    sig_columns = reference_rows("sigmoid", y, x, t, bias)

    # Softmax: unblocked (autodiff) and blockwise (custom gradient).
    expected_loss = 0.5 * np.mean(image[0] + text[0])
    expected_dx = 0.5 * (image[2] + text[3])
    expected_dy = 0.5 * (image[3] + text[2])
    expected_dt = 0.5 * (image[4] + text[4])
    for function in (
        lambda a, b, c: (contrastive_loss(a, b, c),),
        lambda a, b, c: blockwise_contrastive_terms(a, b, c, block_size=block),
    ):
        outputs, grads = tf_values_and_gradients(function, x, y, np.float32(t))
        close(outputs[0], expected_loss)
        close(grads[0], expected_dx)
        close(grads[1], expected_dy)
        close(grads[2], expected_dt)
    if not duplicate:  # argmax ties are a matter of convention
        close(outputs[1], image[1])
        close(outputs[2], text[1])

    # Sigmoid: unblocked and blockwise.
    for block_size in (None, block):
        outputs, grads = tf_values_and_gradients(
            lambda a, b, c, d: (
                sigmoid_loss(a, b, c, d, block_size=block_size),
            ),
            x,
            y,
            np.float32(t),
            np.float32(bias),
        )
        close(outputs[0], np.mean(sig[0]))
        for actual, expected in zip(grads, sig[2:]):
            close(actual, expected)
    hits = blockwise_sigmoid_loss_terms(x, y, t, bias, block_size=block)
    if not duplicate:
        close(hits[1], sig[1])
        close(hits[2], sig_columns[1])


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_global_batch_rows_against_gathered_columns(kind):
    """Each replica's share, with its offset, adds up to the global loss."""
    x, y = random_pairs(10, seed=4)
    t, bias = 9.0, -5.0
    if kind == "softmax":
        image = reference_rows(kind, x, y, t)
        text = reference_rows(kind, y, x, t)
        expected = 0.5 * np.mean(image[0] + text[0])
    else:
        expected = np.mean(reference_rows(kind, x, y, t, bias)[0])
    shares, total_grads = [], None
    for start, stop in ((0, 4), (4, 7), (7, 10)):
        local = slice(start, stop)

        def function(lx, ly, ax, ay, tt, bb):
            arguments = dict(
                all_image_embeddings=ax,
                all_text_embeddings=ay,
                label_offset=start,
                block_size=3,
            )
            if kind == "softmax":
                loss = blockwise_contrastive_loss(lx, ly, tt, **arguments)
                del arguments["block_size"]
                plain = contrastive_loss(lx, ly, tt, **arguments)
            else:
                loss = sigmoid_loss(lx, ly, tt, bb, **arguments)
                del arguments["block_size"]
                plain = sigmoid_loss(lx, ly, tt, bb, **arguments)
            return loss, plain

        arrays = (x[local], y[local], x, y, np.float32(t), np.float32(bias))
        (loss, plain), grads = tf_values_and_gradients(function, *arrays)
        close(loss, float(plain))
        # Local mean loss scaled by b / G, as LiTModel does.
        weight = (stop - start) / len(x)
        shares.append(float(loss) * weight)
        # Gradients reach the global batch through the local rows (here
        # given separately) and through the gathered columns.
        grads = [
            np.zeros_like(a) if g is None else g.numpy()
            for g, a in zip(grads, arrays)
        ]
        dx = np.zeros_like(x)
        dy = np.zeros_like(y)
        dx[local] += grads[0] * weight
        dy[local] += grads[1] * weight
        summed = [
            dx + grads[2] * weight,
            dy + grads[3] * weight,
            grads[4] * weight,
            grads[5] * weight,
        ]
        total_grads = (
            summed
            if total_grads is None
            else [a + b for a, b in zip(total_grads, summed)]
        )
    close(sum(shares), expected)
    if kind == "softmax":
        reference = (
            0.5 * (image[2] + text[3]),
            0.5 * (image[3] + text[2]),
            0.5 * (image[4] + text[4]),
            0.0,
        )
    else:
        reference = reference_rows(kind, x, y, t, bias)[2:]
    for actual, expected_grad in zip(total_grads, reference):
        close(actual, expected_grad)


def largest_tensor(function, *args):
    """Elements of the largest array in the XLA HLO of loss + gradients."""
    hlo = function.experimental_get_compiler_ir(*args)(stage="hlo")
    sizes = [
        int(np.prod([int(d) for d in dims.split(",") if d]))
        for dims in re.findall(r"(?:f32|s32|pred|f64)\[([\d,]*)\]", hlo)
    ]
    return max(sizes)


def test_traced_graph_holds_no_tensor_larger_than_rows_by_block():
    """Forward and backward: nothing of `b x G`, only `b x block`."""
    batch, total, dim, block = 16, 64, 4, 24  # 64 = 24 + 24 + 16 (padded)
    x, y = random_pairs(total, dim=dim, seed=2)

    def traced(loss_function):
        @tf.function(jit_compile=True, autograph=False)
        def step(lx, ly, ax, ay, t, b):
            with tf.GradientTape() as tape:
                tape.watch([lx, ly, ax, ay, t, b])
                loss = loss_function(lx, ly, ax, ay, t, b)
            return loss, tape.gradient(loss, [lx, ly, ax, ay, t, b])

        return step

    def gathered(block_size, kind):
        def loss(lx, ly, ax, ay, t, b):
            arguments = dict(
                all_image_embeddings=ax,
                all_text_embeddings=ay,
                label_offset=16,
            )
            if kind == "sigmoid":
                return sigmoid_loss(
                    lx, ly, t, b, block_size=block_size, **arguments
                )
            if block_size is None:
                return contrastive_loss(lx, ly, t, **arguments) + 0 * b
            return (
                blockwise_contrastive_loss(
                    lx, ly, t, block_size=block_size, **arguments
                )
                + 0 * b
            )

        return loss

    args = [tf.constant(a) for a in (x[16:32], y[16:32], x, y)]
    args += [tf.constant(10.0), tf.constant(-10.0)]
    # Inputs are `G x D` = 256 elements; padded columns 72 x 4 = 288.
    assert total * dim < batch * block
    for kind in ("softmax", "sigmoid"):
        assert largest_tensor(traced(gathered(None, kind)), *args) >= (
            batch * total
        )
        blocked = traced(gathered(block, kind))
        assert largest_tensor(blocked, *args) <= batch * block
        # The compiled (XLA) function computes the same value.
        plain = traced(gathered(None, kind))(*args)[0]
        close(blocked(*args)[0], float(plain))


@pytest.mark.parametrize("block_size", [0, -1, 2.5, True, "8"])
def test_bad_block_size_is_rejected(block_size):
    x, y = random_pairs(3)
    with pytest.raises(ValueError, match="block_size"):
        sigmoid_loss(x, y, 10.0, -10.0, block_size=block_size)
    with pytest.raises(ValueError, match="block_size"):
        blockwise_contrastive_loss(x, y, 10.0, block_size=block_size)
