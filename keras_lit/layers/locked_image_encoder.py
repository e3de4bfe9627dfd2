import keras
from keras import ops

from keras_lit.compat import fuse_batch_normalization
from keras_lit.compat import set_trainable
from keras_lit.layers.nested_config import from_nested_config
from keras_lit.layers.preset_loading import load_image_encoder

POOLINGS = ("avg", "max", "cls", "none")
PIXEL_ROUNDINGS = (None, "floor", "round")


@keras.saving.register_keras_serializable(package="keras_lit")
class LockedImageEncoder(keras.layers.Layer):
    """A pretrained image backbone, locked, that returns pre-logits.

    The backbone is frozen (`trainable=False`) and always runs in inference
    mode: dropout is off and batch-norm statistics stay frozen, whatever
    `training` the caller passes. That is LiT's "L" image tower. Pass
    `locked=False` for the paper's "U" ablation (the backbone is fine-tuned).

    The encoder also knows what its backbone expects as input (`image_size`,
    `value_range`, `mean`, `std`), so that data pipelines and exported
    SavedModels preprocess raw images the same way (`preprocess`).

    Args:
        backbone: a KerasCV backbone, a KerasHub vision backbone (ViT, ResNet,
            DINOv2, ...) or any `keras.Model` mapping images to features.
        pooling: string. How to turn the backbone output into one vector:
            `"avg"` (global average of a feature map or of all tokens),
            `"max"`, `"cls"` (first token of a sequence, as for ViT) or
            `"none"` (the output is already `[batch, features]`).
            Defaults to `"avg"`.
        image_size: `(height, width)` the backbone expects. Defaults to the
            backbone's static input shape.
        value_range: `(low, high)` pixel range the backbone expects, e.g.
            `(0, 255)` for KerasCV backbones with `include_rescaling=True`
            or `(0, 1)`. Defaults to `(0, 255)`.
        mean: optional per-channel mean subtracted after scaling to
            `value_range` (e.g. ImageNet statistics).
        std: optional per-channel standard deviation divided after `mean`.
        head_dim: optional int. Adds a trainable linear image head (an
            ablation; the paper's best LiT setting has none). Defaults to
            `None`.
        locked: bool. Freeze the backbone. Defaults to `True`.
        antialias: bool. Antialiased resizing (`tf.image.resize`). `False`
            is plain bilinear interpolation, as Google's published LiT
            models were fed. Defaults to `True`.
        pixel_rounding: optional `"floor"` or `"round"`: resized pixels are
            rounded to whole values before rescaling (`"floor"` is what
            `tf.cast(resized, tf.uint8)` does in Google's LiT
            preprocessing). Defaults to `None` (no rounding).

    Call arguments:
        images: `[batch, height, width, 3]` float images already preprocessed
            (see `preprocess`).
        training: ignored by a locked backbone.

    Example:
    >>> import keras_cv
    >>> import numpy as np
    >>> backbone = keras_cv.models.ResNetV2Backbone(
    ...     stackwise_filters=[8, 16], stackwise_blocks=[2, 2],
    ...     stackwise_strides=[1, 2], include_rescaling=True,
    ...     input_shape=(32, 32, 3))
    >>> encoder = LockedImageEncoder(backbone, pooling="avg")
    >>> tuple(encoder(np.zeros((2, 32, 32, 3))).shape)
    (2, 64)
    """

    POOLINGS = POOLINGS

    def __init__(
        self,
        backbone,
        pooling="avg",
        image_size=None,
        value_range=(0, 255),
        mean=None,
        std=None,
        head_dim=None,
        locked=True,
        antialias=True,
        pixel_rounding=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pixel_rounding not in PIXEL_ROUNDINGS:
            raise ValueError(
                "`pixel_rounding` must be one of "
                f"{', '.join(map(repr, PIXEL_ROUNDINGS))}. "
                f"Received: pixel_rounding={pixel_rounding!r}"
            )
        if pooling not in POOLINGS:
            raise ValueError(
                f"`pooling` must be one of {', '.join(map(repr, POOLINGS))}. "
                f"Received: pooling={pooling!r}"
            )
        if not isinstance(backbone, keras.layers.Layer):
            raise ValueError(
                "`backbone` must be a Keras model or layer. "
                f"Received: backbone={backbone!r}"
            )
        if image_size is None:
            image_size = _static_image_size(backbone)
        if image_size is None or len(image_size) != 2:
            raise ValueError(
                "`image_size` must be `(height, width)`; the backbone's input "
                "shape does not fix it, so pass it explicitly. Received: "
                f"image_size={image_size!r}"
            )
        value_range = tuple(float(v) for v in value_range)
        if len(value_range) != 2 or not value_range[0] < value_range[1]:
            raise ValueError(
                "`value_range` must be `(low, high)` with low < high. "
                f"Received: value_range={value_range!r}"
            )
        for name, value in (("mean", mean), ("std", std)):
            if value is not None and len(value) != 3:
                raise ValueError(
                    f"`{name}` must have one value per RGB channel. "
                    f"Received: {name}={value!r}"
                )

        # === Layers ===
        self.backbone = backbone
        set_trainable(self.backbone, not locked)
        # Unlocked (Uu) steps train its batch norms: TF's fused kernel.
        fuse_batch_normalization(self.backbone)
        self.head = None
        if head_dim is not None:
            self.head = keras.layers.Dense(
                head_dim, name="image_head", dtype=self.dtype_policy
            )

        # === Config ===
        self.pooling = pooling
        self.image_size = tuple(int(v) for v in image_size)
        self.value_range = value_range
        self.mean = None if mean is None else tuple(float(v) for v in mean)
        self.std = None if std is None else tuple(float(v) for v in std)
        self.head_dim = head_dim
        self.antialias = bool(antialias)
        self.pixel_rounding = pixel_rounding
        self.feature_dim = _pooled_dim(backbone, pooling)
        self.output_dim = head_dim or self.feature_dim
        if self.head is not None:
            self.head.build((None, self.feature_dim))

    @classmethod
    def from_preset(
        cls,
        preset,
        pooling=None,
        image_size=None,
        value_range=None,
        mean=None,
        std=None,
        load_weights=True,
        **kwargs,
    ):
        """A locked image tower from a pretrained preset.

        Pooling and preprocessing come from the preset: the family's
        pre-logits (CLS token for ViT, DINOv2, DeiT and CLIP; SigLIP's own
        attention pooling; global average for CNNs) and the image size,
        value range and mean/std of the preset's image converter. Arguments
        passed here win.

        Args:
            preset: a recommended pair from `keras_lit.presets` (its image
                tower), a KerasHub preset name, a `kaggle://` or `hf://`
                handle, a KerasCV backbone preset name (these download, and
                are cached), or a local directory: a KerasHub or KerasCV
                preset written by `save_to_preset`, a Hugging Face model
                directory (`config.json` + `model.safetensors`), or a LiT
                preset (its trained image tower).
            pooling, image_size, value_range, mean, std: override what the
                preset implies; see the class arguments.
            load_weights: bool. `False` keeps random weights. Defaults to
                `True`.
            **kwargs: other arguments of `LockedImageEncoder` (`head_dim`,
                `locked`, `name`, ...).

        Raises `keras_lit.presets.PresetNetworkError` (one line) when the
        preset must be downloaded and there is no network.

        Example:
        >>> encoder = LockedImageEncoder.from_preset(
        ...     "vit_base_patch16_224_imagenet21k")  # doctest: +SKIP
        >>> encoder.pooling, encoder.image_size  # doctest: +SKIP
        ('cls', (224, 224))
        """
        return load_image_encoder(
            cls,
            preset,
            pooling=pooling,
            image_size=image_size,
            value_range=value_range,
            mean=mean,
            std=std,
            load_weights=load_weights,
            **kwargs,
        )

    @property
    def locked(self):
        return not self.backbone.trainable

    @locked.setter
    def locked(self, value):
        set_trainable(self.backbone, not value)

    def build(self, input_shape=None):
        self.built = True

    def preprocess(self, images):
        """Maps `[0, 255]` images (uint8 or float) to the backbone's input.

        Resizes to `image_size` (bilinear, antialiased unless `antialias` is
        off; no crop: see `keras_lit.data` for aspect-preserving crops),
        rounds to whole pixels if `pixel_rounding` says so, rescales to
        `value_range`, then applies `mean`/`std`. Pure TensorFlow, so it
        runs inside `tf.data` and inside exported SavedModels.
        """
        import tensorflow as tf

        images = tf.cast(images, "float32")
        if tuple(images.shape[-3:-1]) != self.image_size:
            images = tf.image.resize(
                images,
                self.image_size,
                method="bilinear",
                antialias=self.antialias,
            )
            images = tf.clip_by_value(images, 0.0, 255.0)
        if self.pixel_rounding == "floor":
            images = tf.floor(images)
        elif self.pixel_rounding == "round":
            images = tf.round(images)
        low, high = self.value_range
        if (low, high) != (0.0, 255.0):
            images = images * ((high - low) / 255.0) + low
        if self.mean is not None:
            images = images - tf.constant(self.mean, "float32")
        if self.std is not None:
            images = images / tf.constant(self.std, "float32")
        return images

    def extract_features(self, images, training=None):
        """Backbone plus pooling: the pre-logits, before any image head."""
        training = training if not self.locked else False
        inputs = getattr(self.backbone, "input", None)
        if isinstance(inputs, dict) and len(inputs) == 1:
            # DINOv2/SigLIP-style backbones take `{"images": ...}`.
            images = {next(iter(inputs)): images}
        outputs = self.backbone(images, training=training)
        if isinstance(outputs, dict):
            outputs = outputs.get("sequence_output", outputs.get("pooled"))
        return _pool(outputs, self.pooling)

    def project(self, features):
        """The optional trainable image head (identity without one)."""
        if self.head is None:
            return features
        return self.head(features)

    def call(self, images, training=None):
        return self.project(self.extract_features(images, training=training))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "pooling": self.pooling,
                "image_size": list(self.image_size),
                "value_range": list(self.value_range),
                "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std),
                "head_dim": self.head_dim,
                "locked": self.locked,
                "antialias": self.antialias,
                "pixel_rounding": self.pixel_rounding,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, ("backbone",))


def _static_image_size(backbone):
    try:
        shape = backbone.input_shape
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, dict):
        shape = next(iter(shape.values()))
    if isinstance(shape, list):
        shape = shape[0]
    if shape is None or len(shape) != 4 or None in shape[1:3]:
        return None
    return tuple(shape[1:3])


def _pooled_dim(backbone, pooling):
    outputs = backbone.output
    if isinstance(outputs, dict):
        outputs = outputs.get("sequence_output", outputs.get("pooled"))
    shape = tuple(outputs.shape)
    if pooling == "none" and len(shape) != 2:
        raise ValueError(
            "`pooling='none'` needs a backbone that returns `[batch, "
            f"features]`. Received backbone output shape {shape}; use "
            "`pooling='avg'` or `'cls'`."
        )
    if pooling == "cls" and len(shape) != 3:
        raise ValueError(
            "`pooling='cls'` needs a backbone that returns a token sequence "
            f"`[batch, tokens, features]`. Received output shape {shape}."
        )
    return int(shape[-1])


def _pool(outputs, pooling):
    if pooling == "none":
        return outputs
    if pooling == "cls":
        return outputs[:, 0, :]
    axes = tuple(range(1, len(outputs.shape) - 1))
    if pooling == "max":
        return ops.max(outputs, axis=axes)
    return ops.mean(outputs, axis=axes)
