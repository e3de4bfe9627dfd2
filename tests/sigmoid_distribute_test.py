"""Sigmoid-loss training on 1, 2 and 4 replicas equals one device.

The replicas also compute the loss in column blocks and cache text-tower
gradients over sub-batches (the plain one-device run does neither), so
the test covers how the three compose with MirroredStrategy on logical
CPU devices. SGD moves weights by the gradient itself: a wrong loss scale
or a missing gathered gradient shows.
"""

import contextlib

import keras
import numpy as np
import pytest
from conftest import make_lit_model
from distribute_test import StepLosses
from distribute_test import assert_weights_close
from distribute_test import cpus
from sigmoid_model_test import pairs

from keras_lit.distribute import get_strategy

pytestmark = pytest.mark.large

GLOBAL_BATCH_SIZE = 16
STEPS = 3


def fit_sigmoid(vocabulary, weights, strategy=None, **kwargs):
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = make_lit_model(vocabulary, loss="sigmoid", **kwargs)
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    steps = StepLosses()
    model.fit(
        pairs(STEPS * GLOBAL_BATCH_SIZE, seed=7),
        batch_size=GLOBAL_BATCH_SIZE,
        shuffle=False,
        verbose=0,
        callbacks=[steps],
    )
    return model, steps.losses


@pytest.fixture(scope="module")
def sigmoid_weights(vocabulary):
    keras.utils.set_random_seed(21)
    return make_lit_model(vocabulary, loss="sigmoid").get_weights()


@pytest.fixture(scope="module")
def one_device(vocabulary, sigmoid_weights):
    return fit_sigmoid(vocabulary, sigmoid_weights)


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_sigmoid_replicas_match_one_device(
    replicas, vocabulary, sigmoid_weights, one_device
):
    expected_model, expected_losses = one_device
    strategy = get_strategy("mirrored", devices=cpus(replicas))
    # 16 / R local rows in sub-batches of 3 (uneven), blocks of 3 columns.
    model, losses = fit_sigmoid(
        vocabulary, sigmoid_weights, strategy, text_sub_batch=3
    )
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    assert_weights_close(
        [w.path for w in model.trainable_weights],
        [np.asarray(w) for w in model.trainable_weights],
        [np.asarray(w) for w in expected_model.trainable_weights],
        atol=1e-7,
    )
    np.testing.assert_allclose(
        float(model.temperature), float(expected_model.temperature), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(model.head.bias),
        np.asarray(expected_model.head.bias),
        rtol=1e-5,
    )
    assert np.asarray(model.head.bias) != -10.0  # the bias trained
