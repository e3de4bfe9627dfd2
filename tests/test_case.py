"""The test harness, after keras-hub's TestCase (which is private there).

- `run_layer_test`: build and call a layer, check its output shape and its
  trainable / non-trainable weight counts, and that `get_config` round-trips
  to a layer that gives the same outputs with the same weights.
- `run_serialization_test`: `serialize -> deserialize -> serialize` is a
  fixed point.
- `run_model_saving_test`: a `.keras` round trip gives identical outputs and
  weights.
- `run_export_test`: a SavedModel reloaded with `tf.saved_model.load` gives
  the expected outputs from its signatures.
"""

import os

import keras
import numpy as np
import tensorflow as tf


def assert_tree_allclose(actual, expected, rtol=1e-6, atol=1e-6):
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected)
        for key in expected:
            assert_tree_allclose(actual[key], expected[key], rtol, atol)
        return
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol
    )


def _call(layer, input_data, call_kwargs):
    if isinstance(input_data, tuple):
        return layer(*input_data, **call_kwargs)
    return layer(input_data, **call_kwargs)


def _shapes(outputs):
    if isinstance(outputs, dict):
        return {key: _shapes(value) for key, value in outputs.items()}
    return tuple(outputs.shape)


def run_layer_test(
    cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    call_kwargs=None,
):
    """Builds `cls(**init_kwargs)`, calls it, checks it; returns both.

    Args:
        cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: the call's input; a tuple is passed as several
            positional arguments.
        expected_output_shape: a shape tuple, or a dict of them.
        expected_num_trainable_weights: int, or `None` to skip.
        expected_num_non_trainable_weights: int, or `None` to skip.
        call_kwargs: dict of extra call arguments (e.g. `training`).

    Returns:
        `(layer, outputs)`.
    """
    call_kwargs = call_kwargs or {}
    layer = cls(**init_kwargs)
    outputs = _call(layer, input_data, call_kwargs)
    assert _shapes(outputs) == expected_output_shape
    for weights, expected in (
        (layer.trainable_weights, expected_num_trainable_weights),
        (layer.non_trainable_weights, expected_num_non_trainable_weights),
    ):
        if expected is not None:
            paths = [weight.path for weight in weights]
            assert len(weights) == expected, paths
    # The config rebuilds the same layer: same weights, same outputs.
    restored = run_serialization_test(layer)
    restored.set_weights(layer.get_weights())
    assert len(restored.trainable_weights) == len(layer.trainable_weights)
    assert_tree_allclose(
        _call(restored, input_data, call_kwargs), outputs, rtol=0, atol=0
    )
    return layer, outputs


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


def run_export_test(export_dir, signatures, rtol=1e-6, atol=1e-6):
    """Reloads a SavedModel and checks what its signatures return.

    Args:
        export_dir: the SavedModel directory.
        signatures: `{name: (inputs, expected)}`; `inputs` is a dict of
            keyword arguments, `expected` a dict of outputs (compared with
            `rtol`/`atol`) or a callable that checks the outputs.

    Returns:
        The loaded SavedModel.
    """
    loaded = tf.saved_model.load(os.fspath(export_dir))
    assert set(signatures) <= set(loaded.signatures)
    for name, (inputs, expected) in signatures.items():
        outputs = loaded.signatures[name](**inputs)
        outputs = {key: value.numpy() for key, value in outputs.items()}
        if callable(expected):
            expected(outputs)
        else:
            assert_tree_allclose(outputs, expected, rtol=rtol, atol=atol)
    return loaded
