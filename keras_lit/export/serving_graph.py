"""The traced bodies of the exported signatures, around one `LiTModel`.

`ServingGraph.embed_image`, `embed_text`, `zero_shot` and `classify` take
and return exactly what `keras_lit.serving.protocol.SIGNATURES` lists;
`export_for_serving` traces them into the SavedModel. Input checks come from
`image_checks` and `text_checks`; prompt filling and averaging are the TF
twins in `keras_lit.zero_shot.weights`.
"""

import numpy as np
import tensorflow as tf

from keras_lit import image_ops
from keras_lit.export.image_checks import decode_checked_image
from keras_lit.export.image_checks import require
from keras_lit.export.text_checks import check_texts
from keras_lit.image_header import IMAGE_FORMATS
from keras_lit.version import __version__
from keras_lit.zero_shot.weights import average_prompt_embeddings_tf
from keras_lit.zero_shot.weights import format_prompts_tf


class ServingGraph:
    """The traced bodies of the signatures, built around one `LiTModel`."""

    def __init__(
        self,
        model,
        templates,
        max_pixels,
        max_text_bytes,
        resize,
        class_names,
        class_weights,
        top_k,
        max_class_names=None,
        max_class_names_bytes=None,
    ):
        self.model = model
        self.max_class_names = max_class_names
        self.max_class_names_bytes = max_class_names_bytes
        self.templates = list(templates)
        self.max_pixels = max_pixels
        self.max_text_bytes = max_text_bytes
        self.resize = resize
        self.image_size = tuple(model.image_encoder.image_size)
        self.embedding_dim = int(model.embedding_dim)
        self.sequence_length = int(model.text_encoder.sequence_length)
        self.class_names = None
        self.class_weights = None
        self.num_classes = 0
        self.top_k = 0
        if class_names is not None:
            self.num_classes = len(class_names)
            self.top_k = min(top_k, self.num_classes)
            self.class_names = tf.Variable(
                class_names, dtype=tf.string, trainable=False, name="classes"
            )
            self.class_weights = tf.Variable(
                np.asarray(class_weights, "float32"),
                trainable=False,
                name="class_weights",
            )

    # --- Signatures -------------------------------------------------------

    def embed_image(self, image_bytes):
        return {"embeddings": self._embed_images(image_bytes)}

    def embed_text(self, texts):
        texts = self._check_texts(texts, "texts", allow_empty_strings=True)
        return {"embeddings": self._embed_texts(texts)}

    def zero_shot(self, image_bytes, class_names):
        class_names = check_texts(
            class_names,
            "class_names",
            self.max_text_bytes,
            self.sequence_length,
            allow_empty_strings=False,
            max_count=self.max_class_names,
            max_total_bytes=self.max_class_names_bytes,
        )
        weights = self._class_weights(class_names)
        probabilities = self._probabilities(image_bytes, weights)
        top_index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "top_class": tf.gather(class_names, top_index),
            "top_index": top_index,
        }

    def classify(self, image_bytes):
        probabilities = self._probabilities(image_bytes, self.class_weights)
        probabilities = tf.ensure_shape(probabilities, [None, self.num_classes])
        top_scores, top_indices = tf.math.top_k(probabilities, k=self.top_k)
        return {
            "probabilities": probabilities,
            "top_classes": tf.gather(self.class_names, top_indices),
            "top_scores": top_scores,
            "top_indices": top_indices,
        }

    # --- Pieces -----------------------------------------------------------

    def _probabilities(self, image_bytes, class_weights):
        image_embeddings = self._embed_images(image_bytes)
        cosines = tf.matmul(image_embeddings, class_weights, transpose_b=True)
        # Softmax over classes, or SigLIP's per-pair sigmoid (with bias).
        return self.model.head.probabilities(cosines)

    def _embed_images(self, image_bytes):
        images = self._decode_images(image_bytes)
        outputs = self.model({"images": images}, training=False)
        return outputs["image_embeddings"]

    def _embed_texts(self, texts):
        tokens = self.model.text_encoder.tokenize(texts)
        outputs = self.model(tokens, training=False)
        return outputs["text_embeddings"]

    def _class_weights(self, class_names):
        """`[K]` names -> `[K, D]` prompt-ensembled, re-normalised weights.

        The rule of `keras_lit.zero_shot.build_zero_shot_weights`: fill
        every template, canonicalise, embed, normalise, average over the
        templates and normalise again.
        """
        prompts = format_prompts_tf(class_names, self.templates)
        return average_prompt_embeddings_tf(
            self._embed_texts(prompts), len(self.templates)
        )

    def _decode_images(self, image_bytes):
        with tf.name_scope("image_bytes"):
            check = require(
                tf.size(image_bytes) > 0,
                tf.constant(
                    "image_bytes: empty batch; send at least one encoded image"
                ),
            )
            with tf.control_dependencies([check]):
                indices = tf.range(tf.size(image_bytes))
            height, width = self.image_size
            return tf.map_fn(
                lambda args: self._decode_image(*args),
                (indices, image_bytes),
                fn_output_signature=tf.TensorSpec(
                    [height, width, 3], tf.float32
                ),
            )

    def _decode_image(self, index, data):
        """One encoded image -> the backbone's `[H, W, 3]` float input."""
        return self._resize(decode_checked_image(index, data, self.max_pixels))

    def _resize(self, image):
        encoder = self.model.image_encoder
        if self.resize == "crop":
            # As keras_lit.data does: aspect-preserving crop, whole pixels.
            image = image_ops.resize_and_crop(image, self.image_size)
            image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
        # `preprocess` resizes to `image_size` if needed, as
        # `model.encode_images` does (a same-size bilinear resize is exactly
        # the identity), then rescales to the backbone's range.
        return encoder.preprocess(image[None])[0]

    def _check_texts(self, texts, name, allow_empty_strings):
        return check_texts(
            texts,
            name,
            self.max_text_bytes,
            self.sequence_length,
            allow_empty_strings,
        )

    # --- Export-time helpers ------------------------------------------------

    def metadata(self):
        metadata = {
            "keras_lit_version": __version__,
            "image_backbone": _class_path(self.model.image_encoder.backbone),
            "image_size": list(self.image_size),
            "embedding_dim": self.embedding_dim,
            "sequence_length": self.sequence_length,
            "templates": self.templates,
            "temperature": float(self.model.temperature),
            "loss": self.model.loss_name,
            "max_pixels": self.max_pixels,
            "max_text_bytes": self.max_text_bytes,
            "max_class_names": self.max_class_names,
            "max_class_names_bytes": self.max_class_names_bytes,
            "resize": self.resize,
            "image_formats": list(IMAGE_FORMATS),
        }
        if self.class_names is not None:
            metadata["class_names"] = [
                name.decode("utf-8") for name in self.class_names.numpy()
            ]
            metadata["top_k"] = self.top_k
        return metadata

    def warmup_images(self):
        """Two generated images: a larger JPEG and a PNG at `image_size`."""
        height, width = self.image_size
        large = _pattern(height * 2 + 3, width * 2 + 5)
        small = _pattern(height, width)
        return [
            tf.io.encode_jpeg(large, quality=90).numpy(),
            tf.io.encode_png(small).numpy(),
        ]


def _pattern(height, width):
    """A deterministic colour-gradient test card, uint8 `[H, W, 3]`."""
    rows = np.linspace(0, 255, height)[:, None] * np.ones((1, width))
    columns = np.ones((height, 1)) * np.linspace(0, 255, width)[None, :]
    image = np.stack([rows, columns, 255 - (rows + columns) / 2], axis=-1)
    return tf.constant(image.astype("uint8"))


def _class_path(layer):
    """`"<top package>.<class>"`, e.g. `"keras_hub.EfficientNetBackbone"`."""
    cls = type(layer)
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"
