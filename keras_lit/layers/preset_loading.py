"""Towers from presets: KerasHub, KerasCV and Hugging Face.

The machinery behind `LockedImageEncoder.from_preset` and
`TextEncoder.from_preset`. As KerasHub's loaders, each loader is handed the
class it builds and imports no tower. A preset is one of:

- a recommended pair from `keras_lit.presets.LIT_PRESETS` (its image or
  text half);
- a KerasHub preset name (`"vit_base_patch16_224_imagenet21k"`), a
  `kaggle://` or `hf://` handle, or a local KerasHub preset directory
  (written by `save_to_preset`);
- a KerasCV backbone preset name (downloads, so online only) or a local
  KerasCV preset directory;
- a Hugging Face model directory (`config.json` + `model.safetensors`, plus
  `vocab.txt` for BERT-family text models), converted by KerasHub;
- a LiT preset written by `LiTModel.save_to_preset` (one of its trained
  towers; see `keras_lit.models.lit_presets`).

Remote presets go through `keras_lit.presets.network_guard`, so a missing
network gives a one-line `PresetNetworkError`.
"""

import json

import keras
import keras_hub

from keras_lit import presets
from keras_lit.layers.preset_files import check_preset
from keras_lit.layers.preset_files import config_kind
from keras_lit.layers.preset_files import file_exists
from keras_lit.layers.preset_files import get_file
from keras_lit.layers.preset_files import load_config
from keras_lit.layers.preset_files import load_saved_preset
from keras_lit.layers.preset_files import not_in_offline_cache
from keras_lit.layers.preset_files import required_file
from keras_lit.layers.preset_files import uncached_offline

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


def load_image_encoder(cls, preset, load_weights=True, **kwargs):
    """See `LockedImageEncoder.from_preset`; `cls` is the class to build.

    `kwargs` holds the `from_preset` options (`None` = from the preset) and
    any other `cls` arguments.
    """
    explicit = {
        key: kwargs.pop(key, None)
        for key in ("pooling", "image_size", "value_range", "mean", "std")
    }
    pooling = explicit["pooling"]
    _check_pooling(pooling, cls.POOLINGS)
    registry, preset = _registry_entry(preset, "image")
    with presets.network_guard(preset):
        config, kind = _read_config(preset)
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


def load_text_encoder(cls, preset, load_weights=True, **kwargs):
    """See `TextEncoder.from_preset`; `cls` is the class to build.

    `kwargs` holds the `from_preset` options (`projection_dim`, `pooling`,
    `sequence_length`; `None` = from the preset) and other `cls` arguments.
    """
    projection_dim = kwargs.pop("projection_dim", None)
    pooling = kwargs.pop("pooling", None)
    sequence_length = kwargs.pop("sequence_length", None)
    _check_pooling(pooling, cls.POOLINGS)
    registry, preset = _registry_entry(preset, "text")
    with presets.network_guard(preset):
        config, kind = _read_config(preset)
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
    options = {"pooling": pooling, "sequence_length": sequence_length}
    return cls(backbone, tokenizer, projection_dim, **options, **kwargs)


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


# --- Helpers ----------------------------------------------------------------


def _registry_entry(preset, half):
    """`(registry entry, preset)`: a recommended pair's `half`, if named."""
    registry = {}
    if presets.is_lit_preset_name(preset):
        registry = presets.get_preset(preset)[half]
        preset = registry.pop("preset")
    return registry, check_preset(preset)


def _read_config(preset):
    config = load_config(preset)
    return config, config_kind(preset, config)


def _check_pooling(pooling, choices):
    # Before any download: a typo should not cost a large transfer.
    if pooling is not None and pooling not in choices:
        raise ValueError(
            f"`pooling` must be one of {', '.join(map(repr, choices))}. "
            f"Received: pooling={pooling!r}"
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
    if not_in_offline_cache(preset, "image_converter.json"):
        return None
    try:
        return keras_hub.layers.ImageConverter.from_preset(preset)
    except (FileNotFoundError, ValueError):
        # No `image_converter.json` (a bare backbone) or no converter
        # class for this backbone family.
        return None
    except Exception as error:
        if uncached_offline(error):
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
    vocabulary_path = required_file(
        preset,
        "vocab.txt",
        "; a BERT-family Hugging Face directory needs it for its WordPiece "
        "tokenizer.",
    )
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
    if not file_exists(preset, SENTENCE_POOLING_FILE):
        return None
    with open(get_file(preset, SENTENCE_POOLING_FILE)) as file:
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
    model = load_saved_preset(preset, load_weights=load_weights)
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
