"""Run configurations for `keras-lit train`: code or YAML, plus overrides.

A config is a nested dict. `DEFAULT_CONFIG` lists every key; a YAML file or
a Python file defining `get_config()` overrides some of them, and
`--set section.key=value` overrides (values parsed as YAML) go last. Unknown
keys are refused with the list of known ones, so a typo never passes
silently. `smoke=True` shrinks a run for CI (big_vision's `runlocal`).
"""

import copy
import importlib.util
import os

import yaml

DEFAULT_CONFIG = {
    "output_dir": "lit_runs/train",
    "seed": 0,
    "image_tower": {
        # One of: "keras_cv" (a KerasCV backbone class built directly),
        # "keras_file" (a saved Keras image backbone or LockedImageEncoder)
        # or "preset" (see keras_lit.presets).
        "source": "keras_cv",
        "keras_cv_class": "ResNetV2Backbone",
        "keras_cv_args": {
            "stackwise_filters": [16, 32, 64],
            "stackwise_blocks": [2, 2, 2],
            "stackwise_strides": [1, 2, 2],
            "include_rescaling": True,
        },
        "keras_file": None,
        "preset": None,
        "pooling": "avg",
        "image_size": [64, 64],
        "value_range": [0, 255],
        "locked": True,
        "head_dim": None,
    },
    "text_tower": {
        # "scratch" (a transformer with a WordPiece vocabulary learned from
        # the training captions) or "preset" (KerasHub or HF BERT dir).
        "source": "scratch",
        "preset": None,
        "vocabulary_size": 1000,
        "num_layers": 2,
        "num_heads": 2,
        "hidden_dim": 64,
        "intermediate_dim": 128,
        "sequence_length": 16,
        "pooling": "mean",
    },
    "data": {
        # "tfrecord" (glob of shards), "csv", "folder" or "precomputed".
        "format": "tfrecord",
        "train": None,
        "image_column": "image",
        "text_column": "caption",
        "captions_file": None,
        "augment": None,
        "max_vocabulary_captions": 100000,
    },
    "train": {
        "strategy": "auto",
        "global_batch_size": 128,
        "steps": 1000,
        "steps_per_epoch": 100,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "warmup_steps": None,  # default: 3% of steps, at least 1
        "schedule": "cosine",  # or "constant"
        "clipnorm": 1.0,
        "temperature_init": 10.0,
        "precompute": True,
        "precompute_dtype": "float32",
        "mixed_precision": False,
        "checkpoints": True,
        "checkpoint_every": 100,  # steps between backups (exact resume)
        "batch_log": None,  # debugging: a file of one line per batch read
        "tensorboard": True,
        "jit_compile": "auto",
        "steps_per_execution": 1,
    },
}

SMOKE_OVERRIDES = {
    "train.steps": 4,
    "train.steps_per_epoch": 2,
    "train.global_batch_size": 8,
    "text_tower.num_layers": 1,
    "text_tower.hidden_dim": 32,
    "text_tower.intermediate_dim": 64,
    "data.max_vocabulary_captions": 2000,
}


class ConfigError(ValueError):
    """A bad config: one line naming the key and what was wrong."""


def load_config(path=None, overrides=(), smoke=False):
    """DEFAULT_CONFIG, updated from `path` (YAML or .py), then overrides.

    Args:
        path: optional YAML file or Python file with `get_config()`.
        overrides: iterable of `"section.key=value"` strings (YAML values).
        smoke: bool. Shrink the run for a quick check.
    """
    config = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        merge(config, read_config_file(path), source=str(path))
    if smoke:
        for key, value in SMOKE_OVERRIDES.items():
            set_key(config, key, value)
    for override in overrides:
        if "=" not in override:
            raise ConfigError(
                f"Overrides must look like section.key=value. Received: "
                f"{override!r}"
            )
        key, value = override.split("=", 1)
        set_key(config, key.strip(), yaml.safe_load(value))
    return config


def read_config_file(path):
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path}")
    if str(path).endswith(".py"):
        spec = importlib.util.spec_from_file_location("lit_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ConfigError(f"{path} must define get_config() -> dict.")
        loaded = module.get_config()
    else:
        with open(path, encoding="utf-8") as file:
            try:
                loaded = yaml.safe_load(file) or {}
            except yaml.YAMLError as error:
                line = getattr(error, "problem_mark", None)
                where = f" (line {line.line + 1})" if line else ""
                raise ConfigError(f"{path} is not valid YAML{where}.") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of config sections.")
    return loaded


def merge(config, updates, source, prefix=""):
    for key, value in updates.items():
        name = f"{prefix}{key}"
        if key not in config:
            known = ", ".join(sorted(config))
            raise ConfigError(
                f"Unknown config key '{name}' in {source}. Known keys here: "
                f"{known}"
            )
        if isinstance(config[key], dict) and key not in _FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"Config key '{name}' must be a mapping. Received: "
                    f"{value!r}"
                )
            merge(config[key], value, source, prefix=f"{name}.")
        else:
            config[key] = value


def set_key(config, dotted, value):
    parts = dotted.split(".")
    node = config
    for index, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise ConfigError(
                f"Unknown config key '{'.'.join(parts[: index + 1])}'. "
                f"Known keys: {', '.join(sorted(node))}"
            )
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(
            f"Unknown config key '{dotted}'. Known keys here: "
            f"{', '.join(sorted(node))}"
        )
    node[parts[-1]] = value


# Sections whose contents are passed through as keyword arguments.
_FREE_FORM = {"keras_cv_args"}
