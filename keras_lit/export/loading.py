"""Loading an export back into Python: `load` and `ServingSignatures`."""

import json
import os

import tensorflow as tf

from keras_lit.export.publishing import list_versions
from keras_lit.serving.protocol import METADATA_FILENAME


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
            for version in list_versions(path)
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
