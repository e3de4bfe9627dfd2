"""Towers and LiT models from presets: KerasHub, KerasCV and Hugging Face.

The machinery behind `LockedImageEncoder.from_preset`,
`TextEncoder.from_preset`, `LiTModel.from_preset` and
`LiTModel.save_to_preset`. A preset is one of:

- a recommended pair from `keras_lit.presets.LIT_PRESETS` (its image or
  text half);
- a KerasHub preset name (`"vit_base_patch16_224_imagenet21k"`), a
  `kaggle://` or `hf://` handle, or a local KerasHub preset directory
  (written by `save_to_preset`);
- a KerasCV backbone preset name (downloads, so online only) or a local
  KerasCV preset directory;
- a Hugging Face model directory (`config.json` + `model.safetensors`, plus
  `vocab.txt` for BERT-family text models), converted by KerasHub;
- a LiT preset written by `LiTModel.save_to_preset` (KerasHub's layout:
  `config.json`, `model.weights.h5`, `tokenizer.json` + `assets/tokenizer/`,
  `metadata.json`).

Remote presets go through `keras_lit.presets.network_guard`, so a missing
network gives a one-line `PresetNetworkError`.
"""

import datetime
import json
import os

import keras
import keras_hub
import tensorflow as tf

from keras_lit import presets
from keras_lit.layers.locked_image_encoder import POOLINGS as IMAGE_POOLINGS
from keras_lit.layers.locked_image_encoder import LockedImageEncoder
from keras_lit.layers.text_encoder import POOLINGS as TEXT_POOLINGS
from keras_lit.layers.text_encoder import TextEncoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
SENTENCE_POOLING_FILE = "1_Pooling/config.json"

# Vision families whose first output token is a CLS token (pre-logits).
CLS_TOKEN_FAMILIES = (
    "ViTBackbone",
    "DINOV2Backbone",
    "DINOV3Backbone",
    "DeiTBackbone",
    "CLIPVisionEncoder",
    "MetaCLIP2VisionEncoder",
)
# Vision families that pool themselves (SigLIP's attention-pooling head).
POOLED_FAMILIES = ("SigLIPVisionEncoder",)
# Hugging Face model types whose tokenizer is a BERT WordPiece `vocab.txt`.
WORDPIECE_MODEL_TYPES = ("bert", "distilbert")
# ImageNet-size default for KerasCV backbones built for variable sizes.
KERAS_CV_IMAGE_SIZE = (224, 224)


# --- Towers -----------------------------------------------------------------


def load_image_encoder(
    preset,
    pooling=None,
    image_size=None,
    value_range=None,
    mean=None,
    std=None,
    load_weights=True,
    cls=LockedImageEncoder,
    **kwargs,
):
    """See `LockedImageEncoder.from_preset`."""
    _check_pooling(pooling, IMAGE_POOLINGS)
    explicit = {
        "pooling": pooling,
        "image_size": image_size,
        "value_range": value_range,
        "mean": mean,
        "std": std,
    }
    registry = {}
    if presets.is_lit_preset_name(preset):
        registry = presets.get_preset(preset)["image"]
        preset = registry.pop("preset")
    preset = _check_preset(preset)
    with presets.network_guard(preset):
        config = _load_config(preset)
        kind = _config_kind(preset, config)
        if kind == "lit":
            return _lit_tower(
                preset, "image_encoder", explicit, kwargs, load_weights
            )
        if kind == "keras_cv":
            backbone = _load_keras_cv_backbone(preset, load_weights)
            converter = None
        else:
            backbone = _load_keras_hub_backbone(preset, load_weights)
            converter = _load_image_converter(preset)
    backbone = _vision_tower(backbone, preset)
    if "token_ids" in _input_names(backbone):
        raise ValueError(
            f"Preset {preset!r} holds a text backbone "
            f"({type(backbone).__name__}); load it with "
            "`TextEncoder.from_preset`."
        )

    # Explicit arguments > the preset's image converter > the registry
    # entry > what the backbone family implies.
    family = _family_preprocessing(backbone, kind)
    from_converter = converter_preprocessing(converter)
    options = {}
    for key in ("image_size", "value_range", "mean", "std"):
        for source in (explicit, from_converter, registry, family):
            if source.get(key) is not None:
                options[key] = source[key]
                break
    options["image_size"] = _check_image_size(
        backbone, preset, options.get("image_size"), explicit["image_size"]
    )
    if options.get("value_range") is None:
        options.pop("value_range", None)
    options["pooling"] = (
        pooling or registry.get("pooling") or default_pooling(backbone)
    )
    return cls(backbone, **options, **kwargs)


def load_text_encoder(
    preset,
    projection_dim=None,
    pooling=None,
    sequence_length=None,
    load_weights=True,
    cls=TextEncoder,
    **kwargs,
):
    """See `TextEncoder.from_preset`."""
    _check_pooling(pooling, TEXT_POOLINGS)
    registry = {}
    if presets.is_lit_preset_name(preset):
        registry = presets.get_preset(preset)["text"]
        preset = registry.pop("preset")
    preset = _check_preset(preset)
    with presets.network_guard(preset):
        config = _load_config(preset)
        kind = _config_kind(preset, config)
        if kind == "lit":
            explicit = {
                "projection_dim": projection_dim,
                "pooling": pooling,
                "sequence_length": sequence_length,
            }
            return _lit_tower(
                preset, "text_encoder", explicit, kwargs, load_weights
            )
        if kind == "keras_cv":
            raise ValueError(
                f"Preset {preset!r} holds a KerasCV image backbone; load it "
                "with `LockedImageEncoder.from_preset`."
            )
        if projection_dim is None:
            raise ValueError(
                "`projection_dim` is required: the width of the image "
                "embeddings the text tower projects to. Received: "
                "projection_dim=None"
            )
        backbone = _load_keras_hub_backbone(preset, load_weights)
        if isinstance(getattr(backbone, "vision_encoder", None), keras.Model):
            raise ValueError(
                f"Preset {preset!r} is a two-tower {type(backbone).__name__}"
                "; its text tower is not a LiT text backbone. Use its vision "
                "tower with `LockedImageEncoder.from_preset` and a text "
                "preset (e.g. 'bert_base_en_uncased') here."
            )
        if "token_ids" not in _input_names(backbone):
            raise ValueError(
                f"Preset {preset!r} holds {type(backbone).__name__}, which "
                "takes no `token_ids`: it is not a text backbone. Load image "
                "backbones with `LockedImageEncoder.from_preset`."
            )
        tokenizer = _load_tokenizer(preset, config)
        sentence_pooling = None
        if kind == "transformers":
            sentence_pooling = _sentence_transformers_pooling(preset)
    sequence_length = int(
        sequence_length or registry.get("sequence_length") or 16
    )
    max_length = getattr(backbone, "max_sequence_length", None)
    if max_length is not None and sequence_length > max_length:
        raise ValueError(
            f"`sequence_length` must be at most {max_length}, the longest "
            f"sequence the backbone of {preset!r} embeds. Received: "
            f"sequence_length={sequence_length}"
        )
    # The sentence-transformers pooling when the preset declares one, else
    # the first token (as big_vision's LiT BERT tower).
    pooling = pooling or registry.get("pooling") or sentence_pooling or "cls"
    return cls(
        backbone,
        tokenizer,
        projection_dim=projection_dim,
        pooling=pooling,
        sequence_length=sequence_length,
        **kwargs,
    )


def default_pooling(backbone):
    """The pre-logits pooling of a vision backbone family.

    CLS token for ViT-like models (ViT, DINOv2/v3, DeiT, CLIP's vision
    tower), none for models that pool themselves (SigLIP), global average
    for feature maps (CNNs) and for token sequences without a CLS token.
    """
    name = type(backbone).__name__
    if name in POOLED_FAMILIES:
        return "none"
    rank = len(_output_shape(backbone))
    if rank == 2:
        return "none"
    if name in CLS_TOKEN_FAMILIES and rank == 3:
        if getattr(backbone, "use_class_token", True):
            return "cls"
    return "avg"


def converter_preprocessing(converter):
    """`{"image_size", "value_range", "mean", "std"}` of a KerasHub converter.

    KerasHub converters compute `images * scale + offset` on `[0, 255]`
    pixels, with scalar or per-channel `scale` and `offset`. A scalar pair is
    a value range (`1 / 127.5, -1` is `(-1, 1)`); a per-channel pair is a
    `(0, 1)` range with per-channel `mean` and `std`.
    """
    if converter is None:
        return {}
    config = converter.get_config()
    options = {}
    if config.get("image_size") is not None:
        options["image_size"] = tuple(int(v) for v in config["image_size"])
    scale = _per_channel(config.get("scale"), 1.0)
    offset = _per_channel(config.get("offset"), 0.0)
    if scale is None or offset is None or 0.0 in scale:
        return options
    if len(set(scale)) == 1 and len(set(offset)) == 1 and scale[0] > 0:
        low = offset[0]
        options["value_range"] = (low, 255.0 * scale[0] + low)
        return options
    std = tuple(1.0 / (255.0 * s) for s in scale)
    options["value_range"] = (0.0, 1.0)
    options["std"] = std
    options["mean"] = tuple(-o * s for o, s in zip(offset, std))
    return options


# --- LiT model presets ------------------------------------------------------


def load_lit_model(preset, cls, load_weights=True, **kwargs):
    """See `LiTModel.from_preset`."""
    # Other formats (Google's LiT checkpoints) register their loader.
    load = presets.find_model_loader(preset)
    if load is not None:
        return load(preset, cls=cls, load_weights=load_weights, **kwargs)
    if presets.is_lit_preset_name(preset):
        image_encoder = load_image_encoder(preset, load_weights=load_weights)
        text_encoder = load_text_encoder(
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
    tokenizer = _tokenizer(model)
    if tokenizer is not None:
        # `tokenizer.json` and the vocabulary in `assets/tokenizer/`, as in
        # KerasHub presets.
        tokenizer.save_to_preset(preset_dir)
    metadata = {
        "keras_lit_version": _keras_lit_version(),
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


def load_model_preset(preset, cls=None, load_weights=True):
    """Reads a LiT preset written by `save_model_preset` (local or remote)."""
    preset = _check_preset(preset)
    with presets.network_guard(preset):
        config = _load_config(preset)
        kind = _config_kind(preset, config)
        if kind != "lit":
            name = config.get("class_name") or config.get("model_type")
            raise ValueError(
                f"Preset {preset!r} holds a {name} backbone, not a LiT "
                "model. Build one with `LiTModel(LockedImageEncoder."
                "from_preset(...), TextEncoder.from_preset(...))`, or pass a "
                f"recommended pair: {presets.list_presets()}."
            )
        model = keras.saving.deserialize_keras_object(config)
        if cls is not None and not isinstance(model, cls):
            raise ValueError(
                f"Preset {preset!r} holds a {type(model).__name__}, which "
                f"is not a {cls.__name__}."
            )
        tokenizer = _tokenizer(model)
        if tokenizer is not None and hasattr(tokenizer, "load_preset_assets"):
            tokenizer.load_preset_assets(preset)
        if load_weights:
            model.load_weights(_get_file(preset, WEIGHTS_FILE))
    return model


def read_metadata(preset):
    """The `metadata.json` of a preset as a dict (`{}` when absent)."""
    preset = _check_preset(preset)
    with presets.network_guard(preset):
        if not _file_exists(preset, METADATA_FILE):
            return {}
        path = _get_file(preset, METADATA_FILE)
    with open(path, encoding="utf-8") as file:
        return json.load(file)


# --- Helpers ----------------------------------------------------------------


def _check_pooling(pooling, choices):
    # Before any download: a typo should not cost a large transfer.
    if pooling is not None and pooling not in choices:
        raise ValueError(
            f"`pooling` must be one of {', '.join(map(repr, choices))}. "
            f"Received: pooling={pooling!r}"
        )


def _check_preset(preset):
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


def _get_file(preset, path):
    # Kaggle, Hugging Face, GCS and local paths, with KerasHub's caching.
    from keras_hub.src.utils.preset_utils import get_file

    return get_file(presets.kaggle_handle(preset) or preset, path)


def _file_exists(preset, path):
    if _not_in_offline_cache(preset, path):
        return False
    try:
        _get_file(preset, path)
    except FileNotFoundError:
        return False
    except Exception as error:
        if _uncached_offline(error):
            return False
        raise
    return True


def _uncached_offline(error):
    """An optional file missing from the cache of an offline preset."""
    return presets.loading_from_cache() and presets.is_network_error(error)


def _not_in_offline_cache(preset, path):
    """Offline, a Kaggle file never downloaded before counts as missing.

    (Hugging Face handles run in the hub's offline mode, which already
    answers from the cache alone.)
    """
    return (
        presets.loading_from_cache()
        and presets.remote_scheme(preset) == "kaggle"
        and not presets.is_cached(preset, path)
    )


def _load_config(preset):
    try:
        path = _get_file(preset, CONFIG_FILE)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Preset {preset!r} has no `{CONFIG_FILE}`: it is not a KerasHub "
            "preset or a Hugging Face model."
        ) from None
    with open(path, encoding="utf-8") as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"`{CONFIG_FILE}` of preset {preset!r} is not valid JSON: "
                f"{error}"
            ) from None


def _config_kind(preset, config):
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


def _load_keras_hub_backbone(preset, load_weights):
    return keras_hub.models.Backbone.from_preset(
        preset, load_weights=load_weights
    )


def _load_keras_cv_backbone(preset, load_weights):
    import keras_cv

    handle = presets.keras_cv_presets().get(preset, preset)
    return keras_cv.models.Backbone.from_preset(
        handle, load_weights=None if load_weights else False
    )


def _load_image_converter(preset):
    if _not_in_offline_cache(preset, "image_converter.json"):
        return None
    try:
        return keras_hub.layers.ImageConverter.from_preset(preset)
    except (FileNotFoundError, ValueError):
        # No `image_converter.json` (a bare backbone) or no converter
        # class for this backbone family.
        return None
    except Exception as error:
        if _uncached_offline(error):
            return None
        raise


def _load_tokenizer(preset, config):
    try:
        return keras_hub.tokenizers.Tokenizer.from_preset(preset)
    except (FileNotFoundError, KeyError, ValueError) as error:
        if config.get("model_type") not in WORDPIECE_MODEL_TYPES:
            raise ValueError(
                f"Could not load the tokenizer of preset {preset!r}: {error}"
            ) from None
    # A Hugging Face BERT directory without `tokenizer_config.json` (or
    # without `do_lower_case`): read `vocab.txt` and infer the casing.
    try:
        vocabulary_path = _get_file(preset, "vocab.txt")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Preset {preset!r} has no `vocab.txt`; a BERT-family Hugging "
            "Face directory needs it for its WordPiece tokenizer."
        ) from None
    with open(vocabulary_path, encoding="utf-8") as file:
        vocabulary = [line.rstrip("\n") for line in file]
    lowercase = not any(
        token != token.lower()
        for token in vocabulary
        if not (token.startswith("[") and token.endswith("]"))
    )
    return keras_hub.models.BertTokenizer(
        vocabulary=vocabulary, lowercase=lowercase
    )


def _sentence_transformers_pooling(preset):
    if not _file_exists(preset, SENTENCE_POOLING_FILE):
        return None
    with open(_get_file(preset, SENTENCE_POOLING_FILE)) as file:
        config = json.load(file)
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_max_tokens"):
        return "max"
    return "mean"


def _vision_tower(backbone, preset):
    """The vision half of a two-tower backbone (SigLIP, CLIP), else itself."""
    vision = getattr(backbone, "vision_encoder", None)
    if isinstance(vision, keras.Model):
        return vision
    return backbone


def _family_preprocessing(backbone, kind):
    options = {}
    if kind == "keras_cv":
        # KerasCV backbones rescale `[0, 255]` themselves when
        # `include_rescaling=True`, else expect `[0, 1]`.
        rescales = getattr(backbone, "include_rescaling", True)
        options["value_range"] = (0.0, 255.0) if rescales else (0.0, 1.0)
        options["image_size"] = KERAS_CV_IMAGE_SIZE
    return options


def _check_image_size(backbone, preset, image_size, explicit):
    static = _static_size(backbone)
    if static is None:
        return image_size
    if explicit is not None and tuple(explicit) != static:
        raise ValueError(
            f"The backbone of preset {preset!r} takes {static[0]}x"
            f"{static[1]} images. Received: image_size={tuple(explicit)}"
        )
    return static


def _static_size(backbone):
    inputs = getattr(backbone, "inputs", None)
    if not inputs:
        return None
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or None in shape[1:3]:
        return None
    return (int(shape[1]), int(shape[2]))


def _output_shape(backbone):
    outputs = backbone.output
    if isinstance(outputs, dict):
        outputs = outputs.get("sequence_output", outputs.get("pooled"))
    return tuple(outputs.shape)


def _input_names(backbone):
    inputs = getattr(backbone, "input", None)
    if isinstance(inputs, dict):
        return set(inputs)
    return set()


def _per_channel(value, default):
    if value is None:
        return (default,) * 3
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    value = tuple(float(v) for v in value)
    if len(value) == 1:
        return value * 3
    return value if len(value) == 3 else None


def _lit_tower(preset, attribute, explicit, kwargs, load_weights):
    """A trained tower of a LiT preset; only `locked` may change."""
    unsupported = sorted(
        key
        for key, value in {**explicit, **kwargs}.items()
        if value is not None and key not in ("locked", "projection_dim")
    )
    if unsupported:
        raise ValueError(
            f"Preset {preset!r} is a trained LiT model; its tower is loaded "
            f"as saved. Remove: {', '.join(unsupported)}"
        )
    model = load_model_preset(preset, load_weights=load_weights)
    tower = getattr(model, attribute)
    projection_dim = explicit.get("projection_dim")
    if projection_dim is not None and projection_dim != tower.projection_dim:
        raise ValueError(
            f"The text tower of LiT preset {preset!r} projects to "
            f"{tower.projection_dim}. Received: projection_dim="
            f"{projection_dim}"
        )
    if kwargs.get("locked") is not None:
        tower.locked = kwargs["locked"]
    return tower


def _tokenizer(model):
    tokenizer = getattr(model.text_encoder, "tokenizer", None)
    if hasattr(tokenizer, "save_to_preset"):
        return tokenizer
    return None


def _drop_keys(config, keys):
    if isinstance(config, dict):
        for key in keys:
            config.pop(key, None)
        for value in config.values():
            _drop_keys(value, keys)
    elif isinstance(config, list):
        for value in config:
            _drop_keys(value, keys)


def _keras_lit_version():
    from keras_lit.version import __version__

    return __version__
