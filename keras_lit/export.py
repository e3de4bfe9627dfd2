"""SavedModels for TensorFlow Serving that take image bytes and raw strings.

`export_for_serving` writes `<export_dir>/<version>/`, a SavedModel whose
signatures take what a client has, encoded image files and text, and do all
the work in the graph: header checks, decoding, resizing, the backbone's
normalisation, tokenisation, both towers, L2 normalisation and the zero-shot
head. No Python runs at serving time.

Signatures (`N` images, `K` texts or class names, `C` baked classes):

- `embed_image`: `image_bytes` string[N] -> `embeddings` float32[N, D].
- `embed_text`: `texts` string[K] -> `embeddings` float32[K, D].
- `zero_shot`: `image_bytes` string[N], `class_names` string[K] ->
  `probabilities` float32[N, K], `top_class` string[N], `top_index` int32[N].
- `classify`: `image_bytes` string[N] -> `probabilities` float32[N, C],
  `top_classes` string[N, k], `top_scores` float32[N, k], `top_indices`
  int32[N, k].

`classify` exists only when `class_names` are given at export (their
prompt-ensembled weights are baked in); `serving_default` is `classify` then,
`embed_image` otherwise. Bad input fails the request with an
`InvalidArgument` error that names the input, the element and the reason,
e.g. `image_bytes[1]: truncated JPEG ...`.

The export loads in any TensorFlow that has the TF Text ops registered:
stock TF Serving, or Python after `import tensorflow_text` (see `load`).
"""

import json
import os
import re
import shutil
import uuid

import numpy as np
import tensorflow as tf

from keras_lit import image_ops
from keras_lit.version import __version__

SIGNATURE_KEYS = ("embed_image", "embed_text", "zero_shot", "classify")
DEFAULT_TEMPLATES = ("a photo of a {}.",)
DEFAULT_MAX_TEXT_BYTES = 4096
RESIZE_MODES = ("stretch", "crop")
WARMUP_FILENAME = "tf_serving_warmup_requests"
METADATA_FILENAME = "keras_lit_export.json"
BATCHING_FILENAME = "batching_params.pbtxt"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many.
IMAGE_FORMATS = "JPEG, PNG, GIF, BMP or WebP"


def export_for_serving(
    model,
    export_dir,
    version=None,
    class_names=None,
    templates=None,
    top_k=5,
    max_pixels=image_ops.DEFAULT_MAX_PIXELS,
    max_text_bytes=DEFAULT_MAX_TEXT_BYTES,
    resize="crop",
    batching_parameters=None,
):
    """Writes a TF Serving SavedModel version that takes bytes and strings.

    The version directory appears atomically: everything is written to a
    hidden temporary directory inside `export_dir` (a name TF Serving
    ignores), then renamed to `<export_dir>/<version>`. A server polling
    `export_dir` never sees a half-written version.

    Args:
        model: a `keras_lit.models.LiTModel`.
        export_dir: local directory holding the model's versions (TF
            Serving's `base_path`). Created if missing.
        version: optional positive int. Defaults to one more than the
            largest existing version (or `1`). An existing version is never
            overwritten.
        class_names: optional list of class names. Adds the `classify`
            signature with their zero-shot weights baked in, and makes it
            `serving_default`.
        templates: prompt templates containing `{}` (or a prompt-set name
            from `keras_lit.zero_shot`), used both for the baked weights and
            by `zero_shot`. Defaults to `keras_lit.zero_shot`'s default set.
        top_k: int. Labels returned per image by `classify` (capped at the
            number of classes). Defaults to `5`.
        max_pixels: int. Images whose header claims more pixels are refused
            before decoding (decompression bombs). Defaults to 50 million.
        max_text_bytes: int or `None`. Longer texts and class names are
            refused with an `InvalidArgument` error (only the first
            `sequence_length` tokens would be used anyway, and tokenising a
            huge string costs time). `None` truncates silently instead.
            Defaults to `4096`.
        resize: `"crop"` resizes the shorter side and centre-crops to the
            tower's `image_size`, then rounds to whole pixel values: exactly
            what `keras_lit.data` feeds in training and what zero-shot
            evaluation and `keras-lit classify` use. `"stretch"` resizes to
            `image_size` ignoring the aspect ratio, exactly as
            `model.encode_images` does with raw images. Defaults to
            `"crop"`.
        batching_parameters: optional text-format `BatchingParameters`
            written into the version as `batching_params.pbtxt`, which TF
            Serving reads with `--enable_per_model_batching_parameters`.

    Returns:
        The path of the new version directory.

    Example:
    >>> path = export_for_serving(model, "/models/lit",
    ...                           class_names=["cat", "dog"])  # doctest: +SKIP
    >>> signatures = load(path)  # doctest: +SKIP
    >>> images = tf.constant([jpeg_bytes])  # doctest: +SKIP
    >>> signatures["classify"](image_bytes=images)  # doctest: +SKIP
    """
    from keras import export as keras_export

    from keras_lit.models.lit_model import LiTModel

    if not isinstance(model, LiTModel):
        raise ValueError(
            "`model` must be a keras_lit.models.LiTModel. "
            f"Received: {type(model).__name__}"
        )
    export_dir = _local_directory(export_dir)
    if version is not None:
        version = _check_version(version)
        if os.path.exists(os.path.join(export_dir, str(version))):
            raise ValueError(
                f"Version {version} already exists in {export_dir!r}; "
                "versions are never overwritten. Pass another `version` or "
                "leave it as None to use the next free number."
            )
    templates = _resolve_templates(templates)
    top_k = _positive_int("top_k", top_k)
    max_pixels = _positive_int("max_pixels", max_pixels)
    if max_text_bytes is not None:
        max_text_bytes = _positive_int("max_text_bytes", max_text_bytes)
    if resize not in RESIZE_MODES:
        raise ValueError(
            f"`resize` must be one of {', '.join(map(repr, RESIZE_MODES))}. "
            f"Received: resize={resize!r}"
        )
    if batching_parameters is not None and not isinstance(
        batching_parameters, str
    ):
        raise ValueError(
            "`batching_parameters` must be a text-format BatchingParameters "
            "string, e.g. 'max_batch_size { value: 32 }'. Received: "
            f"{type(batching_parameters).__name__}"
        )
    class_weights = None
    if class_names is not None:
        from keras_lit.zero_shot.weights import build_zero_shot_weights
        from keras_lit.zero_shot.weights import validate_class_names

        class_names = validate_class_names(class_names)
        class_weights = build_zero_shot_weights(
            model, class_names, templates, verbose=0
        )

    graph = _ServingGraph(
        model,
        templates=templates,
        max_pixels=max_pixels,
        max_text_bytes=max_text_bytes,
        resize=resize,
        class_names=class_names,
        class_weights=class_weights,
        top_k=top_k,
    )
    archive = keras_export.ExportArchive()
    archive.track(model)
    image_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    text_spec = tf.TensorSpec([None], tf.string, name="texts")
    class_spec = tf.TensorSpec([None], tf.string, name="class_names")
    if class_names is not None:
        # Registered first: ExportArchive aliases it as `serving_default`.
        archive.add_variable_collection(
            "classify_variables", [graph.class_weights, graph.class_names]
        )
        archive.add_endpoint("classify", graph.classify, [image_spec])
    archive.add_endpoint("embed_image", graph.embed_image, [image_spec])
    archive.add_endpoint("embed_text", graph.embed_text, [text_spec])
    archive.add_endpoint("zero_shot", graph.zero_shot, [image_spec, class_spec])

    os.makedirs(export_dir, exist_ok=True)
    temporary = os.path.join(
        export_dir, f".keras-lit-export-{uuid.uuid4().hex}.tmp"
    )
    try:
        archive.write_out(temporary, verbose=False)
        metadata = graph.metadata()
        metadata["signatures"], metadata["custom_ops"] = _read_saved_model(
            temporary
        )
        extra = os.path.join(temporary, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, METADATA_FILENAME), "w") as file:
            json.dump(metadata, file, indent=2)
        _write_warmup_requests(
            os.path.join(extra, WARMUP_FILENAME), metadata["signatures"], graph
        )
        if batching_parameters is not None:
            with open(os.path.join(temporary, BATCHING_FILENAME), "w") as f:
                f.write(batching_parameters.rstrip("\n") + "\n")
        return _publish(temporary, export_dir, version)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def load(path):
    """Loads an export for calling its signatures in Python.

    Imports `tensorflow_text` first, so the tokenizer ops are registered (TF
    Serving links them in; plain TensorFlow does not).

    Args:
        path: a version directory, or a model base directory (the largest
            version is loaded).

    Returns:
        A `ServingSignatures` mapping from signature key to a concrete
        function, called by keyword:
        `load(path)["embed_text"](texts=tf.constant(["a cat"]))`.
    """
    import tensorflow_text  # noqa: F401  (registers the TF Text ops)

    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"No export at {path!r}: the path does not exist.")
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        versions = [
            version
            for version in _versions(path)
            if tf.io.gfile.exists(
                os.path.join(path, str(version), "saved_model.pb")
            )
        ]
        if not versions:
            raise ValueError(
                f"{path!r} holds neither a saved_model.pb nor numbered "
                "version directories. Pass the directory that "
                "`export_for_serving` returned, or its parent."
            )
        path = os.path.join(path, str(max(versions)))
    return ServingSignatures(path, tf.saved_model.load(path))


class ServingSignatures(dict):
    """Signature key -> concrete function, keeping the SavedModel alive.

    Attributes:
        path: the version directory that was loaded.
        saved_model: the object `tf.saved_model.load` returned (it owns the
            variables the signatures read).
        metadata: the export's `assets.extra/keras_lit_export.json`, or
            `{}` for SavedModels written by other tools.
    """

    def __init__(self, path, saved_model):
        super().__init__(saved_model.signatures)
        self.path = path
        self.saved_model = saved_model
        metadata_path = os.path.join(path, "assets.extra", METADATA_FILENAME)
        self.metadata = {}
        if tf.io.gfile.exists(metadata_path):
            with tf.io.gfile.GFile(metadata_path) as file:
                self.metadata = json.load(file)


class _ServingGraph:
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
    ):
        self.model = model
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
        class_names = self._check_texts(
            class_names, "class_names", allow_empty_strings=False
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

        The same rule as `keras_lit.zero_shot.build_zero_shot_weights`: fill
        every template, canonicalise, embed, normalise, average over the
        templates and normalise again.
        """
        from keras_lit.zero_shot.weights import canonicalize_text_tf

        prompts = []
        for template in self.templates:
            parts = template.split("{}")
            pieces = [parts[0]]
            for part in parts[1:]:
                pieces += [class_names, part]
            prompts.append(tf.strings.join(pieces))
        prompts = tf.reshape(tf.stack(prompts, axis=1), [-1])  # class-major
        embeddings = self._embed_texts(canonicalize_text_tf(prompts))
        embeddings = tf.reshape(
            embeddings, [-1, len(self.templates), self.embedding_dim]
        )
        return tf.math.l2_normalize(tf.reduce_mean(embeddings, axis=1), -1)

    def _decode_images(self, image_bytes):
        with tf.name_scope("image_bytes"):
            check = _require(
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
        where = tf.strings.format("image_bytes[{}]", index)
        length = tf.strings.length(data)
        image_format = []

        def not_empty():
            return (
                length > 0,
                where + ": empty string; expected the bytes of an encoded "
                f"{IMAGE_FORMATS} image",
            )

        def known_format():
            image_format.append(_image_format(data))
            return (
                tf.not_equal(image_format[0], ""),
                where
                + f": not a {IMAGE_FORMATS} image ("
                + tf.strings.as_string(length)
                + " bytes with no known image signature); send the raw "
                "file bytes (REST clients: base64 in a b64 object)",
            )

        def complete():
            return (
                _is_complete(data, image_format[0]),
                where
                + ": truncated "
                + image_format[0]
                + " ("
                + tf.strings.as_string(length)
                + " bytes; the end of the file is missing)",
            )

        size = []

        def readable_header():
            size.extend(image_ops.image_header_size(data))
            return (
                (size[0] > 0) & (size[1] > 0),
                where
                + ": unreadable "
                + image_format[0]
                + " header (corrupt or truncated)",
            )

        def within_limit():
            return (
                size[0] * size[1] <= self.max_pixels,
                where
                + tf.strings.format(
                    ": header claims {}x{} pixels, over the limit of "
                    "max_pixels={} set at export; refused before decoding "
                    "(possible decompression bomb)",
                    (size[0], size[1], self.max_pixels),
                ),
            )

        image = _checked(
            [not_empty, known_format, complete, readable_header, within_limit],
            lambda: tf.io.decode_image(
                data, channels=3, expand_animations=False
            ),
        )
        image.set_shape([None, None, 3])
        return self._resize(image)

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
        """Asserts on a `[K]` string input; returns it behind the checks.

        Each check runs only once the previous ones passed, so a 100 kB
        string is refused on its length before any regex or tokenizer
        touches it.
        """
        noun = "text" if name == "texts" else "class name"
        empty_batch = "empty batch" if name == "texts" else "empty list"

        def first(failed):
            return tf.argmax(tf.cast(failed, tf.int32), output_type=tf.int32)

        def not_empty():
            return (
                tf.size(texts) > 0,
                tf.constant(f"{name}: {empty_batch}; send at least one {noun}"),
            )

        def short_enough():
            lengths = tf.strings.length(texts)
            too_long = lengths > self.max_text_bytes
            index = first(too_long)
            return (
                tf.logical_not(tf.reduce_any(too_long)),
                tf.strings.format(
                    name + "[{}]: {} bytes, over the limit of "
                    "max_text_bytes={} set at export (only the first {} "
                    "tokens are used); shorten the " + noun,
                    (
                        index,
                        tf.gather(lengths, index),
                        self.max_text_bytes,
                        self.sequence_length,
                    ),
                ),
            )

        def valid_utf8():
            # Invalid UTF-8 would fail inside the tokenizer without a name.
            valid = tf.equal(
                tf.strings.unicode_transcode(
                    texts, "UTF-8", "UTF-8", errors="ignore"
                ),
                texts,
            )
            return (
                tf.reduce_all(valid),
                tf.strings.format(
                    name + "[{}]: not valid UTF-8 text",
                    first(tf.logical_not(valid)),
                ),
            )

        def has_words():
            from keras_lit.zero_shot.weights import canonicalize_text_tf

            empty = tf.equal(canonicalize_text_tf(texts), "")
            return (
                tf.logical_not(tf.reduce_any(empty)),
                tf.strings.format(
                    name + "[{}]: no words left once lower-cased and "
                    "stripped of punctuation; send a real " + noun,
                    first(empty),
                ),
            )

        checks = [not_empty]
        if self.max_text_bytes is not None:
            checks.append(short_enough)
        checks.append(valid_utf8)
        if not allow_empty_strings:
            checks.append(has_words)
        return _checked(checks, lambda: tf.identity(texts))

    # --- Export-time helpers ------------------------------------------------

    def metadata(self):
        metadata = {
            "keras_lit_version": __version__,
            "image_size": list(self.image_size),
            "embedding_dim": self.embedding_dim,
            "sequence_length": self.sequence_length,
            "templates": self.templates,
            "temperature": float(self.model.temperature),
            "loss": self.model.loss_name,
            "max_pixels": self.max_pixels,
            "max_text_bytes": self.max_text_bytes,
            "resize": self.resize,
            "image_formats": IMAGE_FORMATS.replace(" or", ",").split(", "),
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


def _write_warmup_requests(path, signatures, graph):
    """Writes one `PredictionLog` per signature as TF Serving's warmup file.

    The images are generated (a JPEG and a PNG), never downloaded; texts and
    class names are fixed phrases. TF Serving replays these records when it
    loads the version, before it reports the version AVAILABLE.
    """
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    images = graph.warmup_images()
    values = {
        "image_bytes": images,
        "texts": [b"a photo of a cat.", b"a diagram"],
        "class_names": [b"cat", b"dog", b"bird"],
    }
    records = 0
    with tf.io.TFRecordWriter(path) as writer:
        for key, signature in sorted(signatures.items()):
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = key
            for name in signature["inputs"]:
                request.inputs[name].CopyFrom(
                    tf.make_tensor_proto(values[name], dtype=tf.string)
                )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
            records += 1
    if records > MAX_WARMUP_RECORDS:  # pragma: no cover (4 or 5 records)
        raise AssertionError(f"{records} warmup records; TF Serving reads 1000")
    return records


# --- Graph helpers ----------------------------------------------------------


def _require(condition, message):
    """An assert whose whole error text is `message` (a string tensor)."""
    return tf.debugging.Assert(condition, [message], summarize=1)


def _checked(checks, make_output):
    """Runs checks in order, then builds the output behind them.

    Each check is a function returning `(condition, message)`; it is built
    under the control dependencies of the previous check's assert, so a
    later check (a header parse, a regex over a long string) never runs on
    input that an earlier check refused, and the first failing check is the
    error a client sees.
    """
    dependencies = []
    for check in checks:
        with tf.control_dependencies(dependencies):
            condition, message = check()
            dependencies = [_require(condition, message)]
    with tf.control_dependencies(dependencies):
        return make_output()


def _image_format(data):
    """ "JPEG", "PNG", "GIF", "BMP", "WebP" from the magic bytes, else ""."""
    # Padded so that every prefix below exists, however short `data` is.
    head = tf.strings.substr(data, 0, 12) + b"\x00" * 12
    formats = [
        (tf.strings.substr(head, 0, 3), b"\xff\xd8\xff", "JPEG"),
        (tf.strings.substr(head, 0, 8), b"\x89PNG\r\n\x1a\n", "PNG"),
        (tf.strings.substr(head, 0, 6), b"GIF87a", "GIF"),
        (tf.strings.substr(head, 0, 6), b"GIF89a", "GIF"),
        (tf.strings.substr(head, 0, 2), b"BM", "BMP"),
    ]
    result = tf.where(
        tf.equal(tf.strings.substr(head, 0, 4), b"RIFF")
        & tf.equal(tf.strings.substr(head, 8, 4), b"WEBP"),
        "WebP",
        "",
    )
    for prefix, magic, name in reversed(formats):
        result = tf.where(tf.equal(prefix, magic), name, result)
    return result


def _is_complete(data, image_format):
    """False when the end of a JPEG, PNG, WebP or BMP file is missing."""
    length = tf.strings.length(data)

    def byte_values():
        return tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)

    def jpeg():
        def scan():
            # The last end-of-image marker (FF D9) must follow the last
            # start-of-scan (FF DA). Entropy-coded data never holds FF D9
            # (FF is stuffed as FF 00), so only a cut-off file fails.
            # Trailing bytes after the marker are fine.
            values = byte_values()
            marker = tf.equal(values[:-1], 0xFF)
            positions = tf.range(tf.size(values) - 1)
            last_end = tf.reduce_max(
                tf.where(marker & tf.equal(values[1:], 0xD9), positions, -1)
            )
            last_scan = tf.reduce_max(
                tf.where(marker & tf.equal(values[1:], 0xDA), positions, -2)
            )
            return (last_scan >= 0) & (last_end > last_scan)

        ends_cleanly = tf.equal(
            tf.strings.substr(data, tf.maximum(length - 2, 0), 2), b"\xff\xd9"
        )
        return tf.cond(ends_cleanly, lambda: tf.constant(True), scan)

    def png():
        def scan():
            values = byte_values()
            name = [ord(c) for c in "IEND"]
            found = tf.equal(values[: tf.size(values) - 3], name[0])
            for offset in range(1, 4):
                end = tf.size(values) - 3 + offset
                found &= tf.equal(values[offset:end], name[offset])
            return tf.reduce_any(found)

        ends_cleanly = tf.equal(
            tf.strings.substr(data, tf.maximum(length - 8, 0), 4), b"IEND"
        )
        return tf.cond(ends_cleanly, lambda: tf.constant(True), scan)

    def declares_at_most_length(offset, extra):
        # A little-endian uint32 size in the header, plus `extra` bytes.
        def compare():
            raw = tf.strings.substr(data, offset, 4)
            values = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)
            weights = tf.constant([1, 256, 65536, 16777216], tf.int64)
            declared = tf.reduce_sum(values * weights) + extra
            return declared <= tf.cast(length, tf.int64)

        return tf.cond(
            length >= offset + 4, compare, lambda: tf.constant(False)
        )

    def webp():
        return declares_at_most_length(4, 8)  # RIFF size excludes 8 bytes.

    def bmp():
        return declares_at_most_length(2, 0)

    return tf.case(
        [
            (tf.equal(image_format, "JPEG"), jpeg),
            (tf.equal(image_format, "PNG"), png),
            (tf.equal(image_format, "WebP"), webp),
            (tf.equal(image_format, "BMP"), bmp),
        ],
        default=lambda: tf.constant(True),
        exclusive=True,
    )


def _pattern(height, width):
    """A deterministic colour-gradient test card, uint8 `[H, W, 3]`."""
    rows = np.linspace(0, 255, height)[:, None] * np.ones((1, width))
    columns = np.ones((height, 1)) * np.linspace(0, 255, width)[None, :]
    image = np.stack([rows, columns, 255 - (rows + columns) / 2], axis=-1)
    return tf.constant(image.astype("uint8"))


# --- Files and arguments ----------------------------------------------------


def _read_saved_model(path):
    """The signature table and the non-core ops of a SavedModel on disk.

    Returns `({key: {"method", "inputs": {name: {"dtype", "shape"}},
    "outputs": {...}}}, [op names])`; the ops are those the server must
    link in besides TensorFlow's (TF Text's tokenizer ops here).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    (meta_graph,) = saved_model.meta_graphs
    op_types = {node.op for node in meta_graph.graph_def.node}
    for function in meta_graph.graph_def.library.function:
        op_types |= {node.op for node in function.node_def}
    # `tf.raw_ops` lists TensorFlow's own ops, even when TF Text's are
    # registered in this process too.
    custom_ops = sorted(op for op in op_types if not hasattr(tf.raw_ops, op))
    table = {}
    for key, signature in sorted(meta_graph.signature_def.items()):
        if key.startswith("__"):
            continue
        table[key] = {
            "method": signature.method_name,
            "inputs": _tensor_specs(signature.inputs),
            "outputs": _tensor_specs(signature.outputs),
        }
    return table, custom_ops


def _tensor_specs(tensor_infos):
    specs = {}
    for name, info in sorted(tensor_infos.items()):
        specs[name] = {
            "dtype": tf.dtypes.as_dtype(info.dtype).name,
            "shape": [
                None if dim.size < 0 else int(dim.size)
                for dim in info.tensor_shape.dim
            ],
        }
    return specs


def _publish(temporary, export_dir, version):
    """Renames the finished temporary directory to its version number."""
    while True:
        number = version if version is not None else _next_version(export_dir)
        target = os.path.join(export_dir, str(number))
        if os.path.exists(target):
            if version is not None:
                raise ValueError(
                    f"Version {version} appeared in {export_dir!r} while "
                    "exporting; versions are never overwritten."
                )
            continue
        try:
            os.rename(temporary, target)
        except OSError:
            if version is not None or not os.path.exists(target):
                raise
            continue  # Another exporter took this number first.
        return target


def _next_version(export_dir):
    versions = _versions(export_dir)
    return max(versions) + 1 if versions else 1


def _versions(export_dir):
    """Integer-named subdirectories: what TF Serving treats as versions."""
    versions = []
    for name in tf.io.gfile.listdir(export_dir):
        name = name.rstrip("/")
        if re.fullmatch(r"[0-9]+", name) and tf.io.gfile.isdir(
            os.path.join(export_dir, name)
        ):
            versions.append(int(name))
    return versions


def _local_directory(export_dir):
    if not isinstance(export_dir, (str, os.PathLike)):
        raise ValueError(
            "`export_dir` must be a directory path. "
            f"Received: {type(export_dir).__name__}"
        )
    export_dir = os.fspath(export_dir)
    if "://" in export_dir:
        raise ValueError(
            "`export_dir` must be a local directory: versions are published "
            "with an atomic rename, which object stores do not offer. Export "
            "locally, then copy the version directory to remote storage. "
            f"Received: export_dir={export_dir!r}"
        )
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ValueError(
            f"`export_dir` must be a directory. Received a file: {export_dir!r}"
        )
    return export_dir


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)):
        raise ValueError(
            "`version` must be a positive int (TF Serving reads version "
            f"directories as numbers). Received: version={version!r}"
        )
    if version < 1:
        raise ValueError(
            f"`version` must be a positive int. Received: version={version}"
        )
    return int(version)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"`{name}` must be a positive int. Received: {name}={value!r}"
        )
    if value < 1:
        raise ValueError(
            f"`{name}` must be a positive int. Received: {name}={value}"
        )
    return int(value)


def _resolve_templates(templates):
    """Templates as a list; prompt-set names go through keras_lit.zero_shot."""
    try:
        from keras_lit.zero_shot.prompts import resolve_templates
    except ImportError:  # The prompt sets are not installed in this tree.
        resolve_templates = None
    if resolve_templates is not None:
        templates = resolve_templates(templates)
    elif templates is None:
        templates = list(DEFAULT_TEMPLATES)
    from keras_lit.zero_shot.weights import validate_templates

    return validate_templates(templates)
