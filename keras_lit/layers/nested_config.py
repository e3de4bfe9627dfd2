"""`from_config` for layers whose config holds other serialised layers."""

import copy

import keras


def from_nested_config(cls, config, layer_keys):
    """`cls(**config)` with the serialised layers under `layer_keys` rebuilt.

    Deserialising pops keys from nested dicts (a Functional backbone consumes
    its config), so this works on a deep copy and never touches the caller's.
    """
    config = copy.deepcopy(config)
    for key in layer_keys:
        config[key] = keras.layers.deserialize(config[key])
    return cls(**config)
