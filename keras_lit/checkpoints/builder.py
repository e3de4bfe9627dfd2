"""Keras towers for a LiT architecture, from library parts.

- Image: `keras_lit.layers.ViTBackbone` (KerasHub's ViT with the tanh GELU
  of Flax) in a `LockedImageEncoder` that reads the [CLS] token and feeds it
  images as Google's LiT code does (plain bilinear resize, floored to whole
  pixels, `x / 255 * 2 - 1`).
- BERT text towers: KerasHub's `BertBackbone` (post-LN, tanh GELU, LN eps
  1e-12), cut at its sequence output: LiT reads the [CLS] hidden state and
  has no pooler, so the pooler's weights are left out.
- Text-transformer towers (L16S/L16Ti): the project's
  `TransformerTextBackbone` with the tanh GELU, LN eps 1e-6, no attention
  mask and the last position read out.
"""

import math

import keras
import keras_hub

from keras_lit.layers.locked_image_encoder import LockedImageEncoder
from keras_lit.layers.text_encoder import TextEncoder
from keras_lit.layers.transformer_text_backbone import TransformerTextBackbone
from keras_lit.layers.vit_backbone import ViTBackbone

MAX_TEMPERATURE = 100.0


def build_image_encoder(image):
    """A locked ViT image tower for the `"image"` part of an architecture."""
    size = image["image_size"]
    backbone = ViTBackbone(
        image_shape=(size, size, 3),
        patch_size=image["patch_size"],
        num_layers=image["num_layers"],
        num_heads=image["num_heads"],
        hidden_dim=image["hidden_dim"],
        mlp_dim=image["mlp_dim"],
        layer_norm_epsilon=1e-6,
        mlp_activation="gelu_approximate",
        name="lit_vit",
    )
    return LockedImageEncoder(
        backbone,
        pooling="cls",
        image_size=(size, size),
        value_range=(-1.0, 1.0),
        head_dim=image["head_dim"],
        antialias=False,
        pixel_rounding="floor",
        name="image_encoder",
    )


def build_text_backbone(text):
    """The text backbone for the `"text"` part of an architecture."""
    if text["kind"] == "bert":
        bert = keras_hub.models.BertBackbone(
            vocabulary_size=text["vocabulary_size"],
            num_layers=text["num_layers"],
            num_heads=text["num_heads"],
            hidden_dim=text["hidden_dim"],
            intermediate_dim=text["intermediate_dim"],
            dropout=0.0,
            max_sequence_length=text["max_sequence_length"],
            num_segments=text["num_segments"],
        )
        # LiT reads the last layer at [CLS] and has no pooler: keep the
        # layers up to the sequence output only.
        return keras.Model(
            bert.input, bert.output["sequence_output"], name="lit_bert"
        )
    return TransformerTextBackbone(
        vocabulary_size=text["vocabulary_size"],
        num_layers=text["num_layers"],
        num_heads=text["num_heads"],
        hidden_dim=text["hidden_dim"],
        intermediate_dim=text["intermediate_dim"],
        max_sequence_length=text["max_sequence_length"],
        activation="gelu_approximate",
        layer_norm_epsilon=1e-6,
        use_padding_mask=False,
        name="lit_text_transformer",
    )


def build_text_encoder(architecture, tokenizer, packing):
    """A `TextEncoder` around `build_text_backbone`, with LiT's packing."""
    text = architecture["text"]
    return TextEncoder(
        build_text_backbone(text),
        tokenizer,
        projection_dim=architecture["embedding_dim"],
        pooling="cls" if text["kind"] == "bert" else "last",
        sequence_length=architecture["sequence_length"],
        name="text_encoder",
        **packing,
    )


def build_lit_model(cls, architecture, tokenizer, packing, temperature=10.0):
    """An untrained `cls` (a `LiTModel`) with the towers of `architecture`.

    Args:
        cls: the model class (`keras_lit.models.LiTModel`).
        architecture: see `keras_lit.checkpoints.infer_architecture`.
        tokenizer, packing: see `keras_lit.checkpoints.load_tokenizer`.
        temperature: the logit scale `exp(t)`; the clamp is raised above
            100 when a checkpoint's scale is larger.
    """
    return cls(
        build_image_encoder(architecture["image"]),
        build_text_encoder(architecture, tokenizer, packing),
        temperature_init=float(temperature),
        max_temperature=max(MAX_TEMPERATURE, float(temperature)),
    )


def temperature_of(log_temperature):
    """`exp(t)` as a Python float, for `build_lit_model`."""
    return math.exp(float(log_temperature))
