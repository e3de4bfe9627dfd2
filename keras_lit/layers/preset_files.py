"""Reading the files of a preset: local, Kaggle, Hugging Face, GCS.

Shared by the tower loaders (`keras_lit.layers.preset_loading`) and the LiT
model presets (`keras_lit.models.lit_presets`). A keras_lit preset uses
KerasHub's layout: `config.json`, `model.weights.h5`, `tokenizer.json` +
`assets/tokenizer/`, `metadata.json`. Remote presets go through
`keras_lit.presets.network_guard`, so a missing network gives a one-line
`PresetNetworkError`.
"""

import json
import os

import keras

from keras_lit import presets
from keras_lit.compat import get_preset_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


def check_preset(preset):
    if isinstance(preset, os.PathLike):
        preset = os.fspath(preset)
    if not isinstance(preset, str) or not preset:
        raise ValueError(
            "A preset must be a name, a 'kaggle://' or 'hf://' handle, or a "
            f"local directory. Received: preset={preset!r}"
        )
    expanded = os.path.expanduser(preset)
    if os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise ValueError(
                "A local preset must be a directory holding `config.json`. "
                f"Received a file: preset={preset!r}"
            )
        if not os.path.exists(os.path.join(expanded, CONFIG_FILE)):
            raise FileNotFoundError(
                f"No `{CONFIG_FILE}` in the preset directory {preset!r}. "
                "Expected a directory written by `save_to_preset()` or a "
                "Hugging Face model directory (config.json + "
                "model.safetensors)."
            )
        return expanded
    if presets.remote_scheme(preset) is not None:
        return preset
    if "://" in preset:
        raise ValueError(
            "Unsupported preset handle. Expected 'kaggle://', 'hf://', "
            f"'gs://' or 'modelscope://'. Received: preset={preset!r}"
        )
    if presets.looks_like_path(preset):
        raise FileNotFoundError(
            f"Preset directory not found: {preset!r}. Check the path, or "
            "pass a KerasHub preset name or a 'kaggle://'/'hf://' handle."
        )
    raise ValueError(
        f"Unknown preset {preset!r}. Expected a recommended LiT pair "
        f"({', '.join(presets.list_presets())}), a KerasHub or KerasCV "
        "preset name (see `keras_hub.models.Backbone.presets`), a "
        "'kaggle://' or 'hf://' handle, or a local preset directory."
    )


def get_file(preset, path):
    # Kaggle, Hugging Face, GCS and local paths, with KerasHub's caching.
    return get_preset_file(presets.kaggle_handle(preset) or preset, path)


def file_exists(preset, path):
    if not_in_offline_cache(preset, path):
        return False
    try:
        get_file(preset, path)
    except FileNotFoundError:
        return False
    except Exception as error:
        if uncached_offline(error):
            return False
        raise
    return True


def uncached_offline(error):
    """An optional file missing from the cache of an offline preset."""
    return presets.loading_from_cache() and presets.is_network_error(error)


def not_in_offline_cache(preset, path):
    """Offline, a Kaggle file never downloaded before counts as missing.

    (Hugging Face handles run in the hub's offline mode, which already
    answers from the cache alone.)
    """
    return (
        presets.loading_from_cache()
        and presets.remote_scheme(preset) == "kaggle"
        and not presets.is_cached(preset, path)
    )


def required_file(preset, path, why):
    """The local path of `path` in `preset`; `why` ends the error message."""
    try:
        return get_file(preset, path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Preset {preset!r} has no `{path}`{why}"
        ) from None


def load_config(preset):
    path = required_file(
        preset,
        CONFIG_FILE,
        ": it is not a KerasHub preset or a Hugging Face model.",
    )
    with open(path, encoding="utf-8") as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"`{CONFIG_FILE}` of preset {preset!r} is not valid JSON: "
                f"{error}"
            ) from None


def config_kind(preset, config):
    """`"lit"`, `"keras_cv"`, `"keras_hub"`, `"transformers"` or `"timm"`."""
    name = config.get("registered_name")
    if isinstance(name, str):
        if name.startswith("keras_lit>"):
            return "lit"
        if name.startswith("keras_cv"):
            return "keras_cv"
        return "keras_hub"
    if "model_type" in config:
        return "transformers"
    if "architecture" in config:
        return "timm"
    raise ValueError(
        f"Unrecognised `{CONFIG_FILE}` in preset {preset!r}: expected a "
        "KerasHub/KerasCV preset (with `registered_name`) or a Hugging Face "
        "model config (with `model_type`)."
    )


def read_metadata(preset):
    """The `metadata.json` of a preset as a dict (`{}` when absent)."""
    preset = check_preset(preset)
    with presets.network_guard(preset):
        if not file_exists(preset, METADATA_FILE):
            return {}
        path = get_file(preset, METADATA_FILE)
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def load_saved_preset(preset, load_weights=True):
    """The object a keras_lit preset holds (a `LiTModel`), weights loaded.

    Deserialised by its registered name, so this module needs no import of
    the class it builds.
    """
    preset = check_preset(preset)
    with presets.network_guard(preset):
        config = load_config(preset)
        kind = config_kind(preset, config)
        if kind != "lit":
            name = config.get("class_name") or config.get("model_type")
            raise ValueError(
                f"Preset {preset!r} holds a {name} backbone, not a LiT "
                "model. Build one with `LiTModel(LockedImageEncoder."
                "from_preset(...), TextEncoder.from_preset(...))`, or pass a "
                f"recommended pair: {presets.list_presets()}."
            )
        model = keras.saving.deserialize_keras_object(config)
        tokenizer = saved_tokenizer(model)
        if tokenizer is not None and hasattr(tokenizer, "load_preset_assets"):
            tokenizer.load_preset_assets(preset)
        if load_weights:
            model.load_weights(get_file(preset, WEIGHTS_FILE))
    return model


def saved_tokenizer(model):
    tokenizer = getattr(model.text_encoder, "tokenizer", None)
    if hasattr(tokenizer, "save_to_preset"):
        return tokenizer
    return None
