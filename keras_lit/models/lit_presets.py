"""LiT model presets: save a `LiTModel` in KerasHub's layout, load it back.

The machinery behind `LiTModel.save_to_preset` and `LiTModel.from_preset`.
A LiT preset holds `config.json` (the model config, both towers included),
`model.weights.h5`, the tokenizer (`tokenizer.json` + `assets/tokenizer/`)
and `metadata.json`. `LiTModel.from_preset` also takes the name of a
recommended pair (`keras_lit.presets.LIT_PRESETS`), which builds an untrained
model from both pretrained towers.
"""

import datetime
import json
import os

import keras
import keras_hub
import tensorflow as tf

from keras_lit import presets
from keras_lit.layers.locked_image_encoder import LockedImageEncoder
from keras_lit.layers.preset_files import CONFIG_FILE
from keras_lit.layers.preset_files import METADATA_FILE
from keras_lit.layers.preset_files import WEIGHTS_FILE
from keras_lit.layers.preset_files import load_saved_preset
from keras_lit.layers.preset_files import saved_tokenizer
from keras_lit.layers.text_encoder import TextEncoder
from keras_lit.version import __version__


def load_lit_model(preset, cls, load_weights=True, **kwargs):
    """See `LiTModel.from_preset`."""
    # Other formats (Google's LiT checkpoints) register their loader.
    load = presets.find_model_loader(preset)
    if load is not None:
        return load(preset, cls=cls, load_weights=load_weights, **kwargs)
    if presets.is_lit_preset_name(preset):
        image_encoder = LockedImageEncoder.from_preset(
            preset, load_weights=load_weights
        )
        text_encoder = TextEncoder.from_preset(
            preset,
            projection_dim=image_encoder.output_dim,
            load_weights=load_weights,
        )
        return cls(image_encoder, text_encoder, **kwargs)
    if kwargs:
        raise ValueError(
            "A saved LiT preset is loaded as saved; arguments apply only to "
            "a recommended pair. Received: "
            f"{', '.join(sorted(kwargs))}"
        )
    return load_model_preset(preset, cls=cls, load_weights=load_weights)


def load_model_preset(preset, cls=None, load_weights=True):
    """Reads a LiT preset written by `save_model_preset` (local or remote)."""
    model = load_saved_preset(preset, load_weights=load_weights)
    if cls is not None and not isinstance(model, cls):
        raise ValueError(
            f"Preset {preset!r} holds a {type(model).__name__}, which "
            f"is not a {cls.__name__}."
        )
    return model


def save_model_preset(model, preset_dir):
    """Writes `model` in KerasHub's preset layout; see `LiTModel`."""
    if not isinstance(preset_dir, (str, os.PathLike)):
        raise ValueError(
            "`preset_dir` must be a directory path. "
            f"Received: preset_dir={preset_dir!r}"
        )
    preset_dir = os.fspath(preset_dir)
    if os.path.isfile(preset_dir):
        raise ValueError(
            "`preset_dir` must be a directory, not a file. "
            f"Received: preset_dir={preset_dir!r}"
        )
    os.makedirs(preset_dir, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    _drop_keys(config, ("compile_config", "build_config"))
    with open(os.path.join(preset_dir, CONFIG_FILE), "w") as file:
        json.dump(config, file, indent=4)
    model.save_weights(os.path.join(preset_dir, WEIGHTS_FILE))
    tokenizer = saved_tokenizer(model)
    if tokenizer is not None:
        # `tokenizer.json` and the vocabulary in `assets/tokenizer/`, as in
        # KerasHub presets.
        tokenizer.save_to_preset(preset_dir)
    metadata = {
        "keras_lit_version": __version__,
        "keras_version": keras.version(),
        "keras_hub_version": keras_hub.__version__,
        "tensorflow_version": tf.__version__,
        "class_name": type(model).__name__,
        "parameter_count": model.count_params(),
        "image_size": list(model.image_encoder.image_size),
        "embedding_dim": int(model.image_encoder.output_dim),
        "sequence_length": model.text_encoder.sequence_length,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }
    with open(os.path.join(preset_dir, METADATA_FILE), "w") as file:
        json.dump(metadata, file, indent=4)
    return preset_dir


def _drop_keys(config, keys):
    if isinstance(config, dict):
        for key in keys:
            config.pop(key, None)
        for value in config.values():
            _drop_keys(value, keys)
    elif isinstance(config, list):
        for value in config:
            _drop_keys(value, keys)
