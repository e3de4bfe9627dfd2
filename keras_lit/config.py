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
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(
                f"--set {key.strip()}: the value {value!r} is not valid YAML."
            ) from None
        set_key(config, key.strip(), parsed)
    check_types(config)
    return config


# Keys whose values must have a given kind; each is converted in place
# (e.g. "1e-3" -> 0.001, YAML reading that without a dot as a string).
_POSITIVE_INTS = (
    "train.steps",
    "train.global_batch_size",
    "train.steps_per_epoch",
    "train.checkpoint_every",
    "train.steps_per_execution",
    "text_tower.vocabulary_size",
    "text_tower.num_layers",
    "text_tower.num_heads",
    "text_tower.hidden_dim",
    "text_tower.intermediate_dim",
    "text_tower.sequence_length",
    "data.max_vocabulary_captions",
)
_NON_NEGATIVE_INTS = ("seed", "train.warmup_steps")
_NUMBERS = (
    "train.learning_rate",
    "train.weight_decay",
    "train.temperature_init",
    "train.clipnorm",
)
_BOOLS = (
    "image_tower.locked",
    "train.precompute",
    "train.mixed_precision",
    "train.checkpoints",
    "train.tensorboard",
)
_PAIRS = {"image_tower.image_size": "height, width"}
_OPTIONAL = ("train.warmup_steps", "train.clipnorm")


def check_types(config):
    """Checks the kind of every typed key; one-line `ConfigError`s.

    Run by `load_config`, so a wrong value is reported with its key before
    anything is built (e.g. `train.steps must be a positive integer.
    Received: 'many'`), not as a traceback from deep inside training.
    """

    def walk(dotted):
        node = config
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return None, None
        return node, parts[-1]

    def checked(dotted, convert, what):
        node, key = walk(dotted)
        if node is None or key not in node:
            return
        value = node[key]
        if value is None and dotted in _OPTIONAL:
            return
        try:
            node[key] = convert(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{dotted} must be {what}. Received: {value!r}"
            ) from None

    for dotted in _POSITIVE_INTS:
        checked(dotted, lambda v: _integer(v, 1), "a positive integer")
    for dotted in _NON_NEGATIVE_INTS:
        checked(dotted, lambda v: _integer(v, 0), "a non-negative integer")
    for dotted in _NUMBERS:
        checked(dotted, _number, "a number")
    for dotted in _BOOLS:
        checked(dotted, _boolean, "true or false")
    for dotted, names in _PAIRS.items():
        checked(
            dotted,
            _positive_pair,
            f"a list of two positive integers [{names}]",
        )


def _integer(value, minimum):
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            raise ValueError(value)
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise ValueError(value)
    return value


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(value)
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(value)
    return number


def _boolean(value):
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


def _positive_pair(value):
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(value)
    return [_integer(item, 1) for item in value]


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
