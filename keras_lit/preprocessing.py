"""Raw examples -> model inputs, in TensorFlow so it runs inside `tf.data`.

Raw examples are dicts `{"images": [B, H, W, 3] uint8 or float in [0, 255],
"texts": [B] string}`; precomputed examples carry `"image_embeddings"`
instead of `"images"`. After preprocessing the text side uses KerasHub's keys
`"token_ids"` and `"padding_mask"`, so the compiled step sees only numbers
with static shapes (a precondition for TPUs).
"""

import numpy as np
import tensorflow as tf

from keras_lit.layers.text_encoder import validate_texts

IMAGE_KEYS = ("images", "image_embeddings")
TEXT_KEYS = ("texts", "token_ids")


class LiTPreprocessor:
    """Maps a batch of raw LiT examples to model inputs.

    Args:
        image_encoder: the `LockedImageEncoder` whose `preprocess` is applied
            to `"images"`.
        text_encoder: the `TextEncoder` whose `tokenize` is applied to
            `"texts"`.

    Example:
    >>> preprocessor = LiTPreprocessor(image_encoder, text_encoder)
    >>> dataset = dataset.batch(32).map(preprocessor)  # doctest: +SKIP
    """

    def __init__(self, image_encoder, text_encoder):
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder

    def __call__(self, x):
        if not isinstance(x, dict):
            raise ValueError(
                "LiT examples must be dicts with keys 'images' (or "
                "'image_embeddings') and/or 'texts'. "
                f"Received: {type(x).__name__}"
            )
        outputs = {}
        if "images" in x:
            outputs["images"] = self.preprocess_images(x["images"])
        if "image_embeddings" in x:
            outputs["image_embeddings"] = tf.cast(
                x["image_embeddings"], "float32"
            )
        if "texts" in x:
            outputs.update(self.text_encoder.tokenize(x["texts"]))
        for key in ("token_ids", "padding_mask"):
            if key in x:
                outputs[key] = tf.cast(x[key], "int32")
        if not outputs:
            raise ValueError(
                "LiT examples need 'images', 'image_embeddings' or 'texts'. "
                f"Received keys: {sorted(x)}"
            )
        return outputs

    def preprocess_images(self, images):
        images = tf.convert_to_tensor(images)
        check_image_shape(images.shape)
        if not (images.dtype.is_floating or images.dtype.is_integer):
            raise ValueError(
                "`images` must be uint8 or float pixels in [0, 255]. "
                f"Received: dtype={images.dtype.name}"
            )
        return self.image_encoder.preprocess(images)


def check_image_shape(shape):
    """Raises a `ValueError` unless `shape` is `[batch, height, width, 3]`."""
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(
            "`images` must be a batch of RGB images with shape "
            f"[batch, height, width, 3]. Received: images.shape={shape}"
        )
    if shape[-1] is not None and shape[-1] != 3:
        raise ValueError(
            "`images` must have 3 (RGB) channels. "
            f"Received: images.shape={shape} with {shape[-1]} channels"
        )


def validate_examples(x):
    """Eager checks on in-memory examples (dict of arrays or lists).

    Raises a `ValueError` naming the key for: missing keys, an empty batch,
    image/text batches of different sizes, a bad image shape and non-string
    texts.
    """
    if not isinstance(x, dict):
        raise ValueError(
            "`x` must be a dict with keys 'images' (or 'image_embeddings') "
            f"and 'texts'. Received: {type(x).__name__}"
        )
    known = set(IMAGE_KEYS + TEXT_KEYS + ("padding_mask",))
    unknown = sorted(set(x) - known)
    if unknown:
        raise ValueError(
            f"Unknown keys {unknown} in LiT examples. Expected some of "
            f"{sorted(known)}."
        )
    sizes = {}
    for key, value in x.items():
        if key == "texts":
            value = validate_texts(value)
            sizes[key] = int(value.shape[0])
        else:
            value = np.asarray(value)
            if value.ndim == 0:
                raise ValueError(
                    f"`{key}` must be a batch. Received a scalar: {value!r}"
                )
            sizes[key] = int(value.shape[0])
        if key == "images":
            check_image_shape(np.shape(value))
        if key == "image_embeddings" and np.ndim(value) != 2:
            raise ValueError(
                "`image_embeddings` must be [batch, dim]. "
                f"Received: image_embeddings.shape={np.shape(value)}"
            )
    for key, size in sizes.items():
        if size == 0:
            raise ValueError(f"`{key}` is an empty batch (0 examples).")
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(sizes.items()))
        raise ValueError(
            "Image and text batches must have the same number of examples. "
            f"Received: {detail}"
        )
    return sizes
