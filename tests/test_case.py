"""Shared assertions, after keras-hub's TestCase (which is private there)."""

import os

import keras
import numpy as np


def assert_tree_allclose(actual, expected, rtol=1e-6, atol=1e-6):
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected)
        for key in expected:
            assert_tree_allclose(actual[key], expected[key], rtol, atol)
        return
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol
    )


def run_serialization_test(layer):
    """`get_config` -> `from_config` -> `get_config` is a fixed point."""
    config = keras.layers.serialize(layer)
    restored = keras.layers.deserialize(config)
    assert keras.layers.serialize(restored) == config
    return restored


def run_model_saving_test(model, inputs, tmp_path, call=None):
    """`.keras` round trip gives identical outputs and weights."""
    call = call or (lambda m: m(inputs))
    path = os.path.join(tmp_path, "model.keras")
    expected = call(model)
    model.save(path)
    restored = keras.saving.load_model(path)
    assert_tree_allclose(call(restored), expected, rtol=0, atol=0)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return restored
