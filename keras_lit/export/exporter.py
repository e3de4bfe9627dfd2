"""`export_for_serving`: a LiTModel -> a TF Serving SavedModel version."""

import os
import shutil
import uuid

import numpy as np
import tensorflow as tf

from keras_lit.export import publishing
from keras_lit.export.serving_graph import ServingGraph
from keras_lit.image_ops import DEFAULT_MAX_PIXELS
from keras_lit.serving import protocol
from keras_lit.serving import signature_defs

DEFAULT_MAX_TEXT_BYTES = 4096
# `zero_shot` embeds every class name once per template: bounded per call.
DEFAULT_MAX_CLASS_NAMES = 1000
DEFAULT_MAX_CLASS_NAMES_BYTES = 65536
RESIZE_MODES = ("stretch", "crop")


def export_for_serving(
    model,
    export_dir,
    version=None,
    class_names=None,
    templates=None,
    top_k=5,
    max_pixels=DEFAULT_MAX_PIXELS,
    max_text_bytes=DEFAULT_MAX_TEXT_BYTES,
    resize="crop",
    batching_parameters=None,
    max_class_names=DEFAULT_MAX_CLASS_NAMES,
    max_class_names_bytes=DEFAULT_MAX_CLASS_NAMES_BYTES,
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
        max_class_names: int or `None`. `zero_shot` refuses more class
            names per call with an `InvalidArgument` error (each name is
            embedded once per template, so this bounds the work of one
            request). `None` removes the limit. Defaults to `1000` (ImageNet
            fits).
        max_class_names_bytes: int or `None`. The same for the names' total
            size in bytes. Defaults to `65536`.

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
    export_dir = publishing.local_directory(export_dir)
    if version is not None:
        version = positive_int(
            "version",
            version,
            " (TF Serving reads version directories as numbers)",
        )
        publishing.check_new_version(export_dir, version)
    templates = _resolve_templates(templates)
    top_k = positive_int("top_k", top_k)
    max_pixels = positive_int("max_pixels", max_pixels)
    if max_text_bytes is not None:
        max_text_bytes = positive_int("max_text_bytes", max_text_bytes)
    if max_class_names is not None:
        max_class_names = positive_int("max_class_names", max_class_names)
    if max_class_names_bytes is not None:
        max_class_names_bytes = positive_int(
            "max_class_names_bytes", max_class_names_bytes
        )
    _check_resize(resize)
    _check_batching_parameters(batching_parameters)
    graph = ServingGraph(
        model,
        templates=templates,
        max_pixels=max_pixels,
        max_text_bytes=max_text_bytes,
        resize=resize,
        top_k=top_k,
        max_class_names=max_class_names,
        max_class_names_bytes=max_class_names_bytes,
        **_class_weights(model, class_names, templates),
    )
    archive = _archive(keras_export.ExportArchive(), model, graph)
    os.makedirs(export_dir, exist_ok=True)
    temporary = os.path.join(
        export_dir, f".keras-lit-export-{uuid.uuid4().hex}.tmp"
    )
    try:
        archive.write_out(temporary, verbose=False)
        metadata = graph.metadata()
        metadata["signatures"] = _checked_signatures(temporary, graph)
        metadata["custom_ops"] = signature_defs.read_custom_ops(temporary)
        publishing.write_extras(
            temporary, metadata, graph.warmup_images(), batching_parameters
        )
        return publishing.publish(temporary, export_dir, version)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def _archive(archive, model, graph):
    """An `ExportArchive` with one endpoint per signature of the table."""
    archive.track(model)
    keys = ["embed_image", "embed_text", "zero_shot"]
    if graph.class_names is not None:
        # Registered first: ExportArchive aliases it as `serving_default`.
        keys.insert(0, "classify")
        archive.add_variable_collection(
            "classify_variables", [graph.class_weights, graph.class_names]
        )
    for key in keys:
        specs = [
            tf.TensorSpec([None], spec.dtype, name=name)
            for name, spec in protocol.SIGNATURES[key].inputs.items()
        ]
        archive.add_endpoint(key, getattr(graph, key), specs)
    return archive


def _checked_signatures(version_dir, graph):
    """The SavedModel's signature table, checked against `SIGNATURES`."""
    table = signature_defs.signature_table(
        signature_defs.read_signature_defs(version_dir), method=True
    )
    keys = [key for key in table if key != protocol.DEFAULT_SIGNATURE]
    sizes = {"D": graph.embedding_dim, "C": graph.num_classes, "k": graph.top_k}
    expected = protocol.expected_signature_table(keys, sizes)
    if table != expected:  # pragma: no cover (a bug in this package)
        raise AssertionError(
            "The exported signatures differ from "
            f"keras_lit.serving.protocol.SIGNATURES: {table} != {expected}"
        )
    return table


def _class_weights(model, class_names, templates):
    """`{"class_names", "class_weights"}` for the `classify` signature."""
    if class_names is None:
        return {"class_names": None, "class_weights": None}
    from keras_lit.zero_shot.weights import build_zero_shot_weights
    from keras_lit.zero_shot.weights import validate_class_names

    class_names = validate_class_names(class_names)
    weights = build_zero_shot_weights(model, class_names, templates, verbose=0)
    return {"class_names": class_names, "class_weights": weights}


def positive_int(name, value, hint=""):
    """`value` as an int >= 1, or a `ValueError` naming `name`."""
    is_int = isinstance(value, (int, np.integer)) and not isinstance(
        value, bool
    )
    if not is_int or value < 1:
        shown = int(value) if is_int else repr(value)
        raise ValueError(
            f"`{name}` must be a positive int{hint}. Received: {name}={shown}"
        )
    return int(value)


def _check_resize(resize):
    if resize in RESIZE_MODES:
        return
    choices = ", ".join(map(repr, RESIZE_MODES))
    raise ValueError(
        f"`resize` must be one of {choices}. Received: resize={resize!r}"
    )


def _check_batching_parameters(batching_parameters):
    if batching_parameters is not None and not isinstance(
        batching_parameters, str
    ):
        raise ValueError(
            "`batching_parameters` must be a text-format BatchingParameters "
            "string, e.g. 'max_batch_size { value: 32 }'. Received: "
            f"{type(batching_parameters).__name__}"
        )


def _resolve_templates(templates):
    """Templates as a list; prompt-set names go through keras_lit.zero_shot."""
    from keras_lit.zero_shot.prompts import resolve_templates
    from keras_lit.zero_shot.weights import validate_templates

    return validate_templates(resolve_templates(templates))
