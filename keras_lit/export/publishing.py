"""Publishing an export: numbered versions, metadata and TF Serving warmup.

TF Serving polls a model's base directory and serves its integer-named
subdirectories. A version is written into a hidden temporary directory
inside the base directory (a name TF Serving ignores) and renamed into
place, so the server never sees a half-written version.
"""

import json
import os
import re

import tensorflow as tf

from keras_lit.serving import protocol


def local_directory(export_dir):
    """`export_dir` as a local path string; a clear error otherwise."""
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


def check_new_version(export_dir, version):
    """Refuses a `version` that already exists: versions are immutable."""
    if os.path.exists(os.path.join(export_dir, str(version))):
        raise ValueError(
            f"Version {version} already exists in {export_dir!r}; "
            "versions are never overwritten. Pass another `version` or "
            "leave it as None to use the next free number."
        )


def publish(temporary, export_dir, version):
    """Renames the finished temporary directory to its version number.

    With `version=None` the next free number is taken; if another exporter
    takes it first, the next one is tried.
    """
    while True:
        number = version if version is not None else next_version(export_dir)
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


def next_version(export_dir):
    versions = list_versions(export_dir)
    return max(versions) + 1 if versions else 1


def list_versions(export_dir):
    """Integer-named subdirectories: what TF Serving treats as versions."""
    versions = []
    for name in tf.io.gfile.listdir(export_dir):
        name = name.rstrip("/")
        if re.fullmatch(r"[0-9]+", name) and tf.io.gfile.isdir(
            os.path.join(export_dir, name)
        ):
            versions.append(int(name))
    return versions


def write_extras(version_dir, metadata, warmup_images, batching_parameters):
    """Writes `assets.extra/` (metadata, warmup) and the batching file."""
    extra = os.path.join(version_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, protocol.METADATA_FILENAME), "w") as file:
        json.dump(metadata, file, indent=2)
    write_warmup_requests(
        os.path.join(extra, protocol.WARMUP_FILENAME),
        metadata["signatures"],
        warmup_images,
    )
    if batching_parameters is not None:
        path = os.path.join(version_dir, protocol.BATCHING_FILENAME)
        with open(path, "w") as file:
            file.write(batching_parameters.rstrip("\n") + "\n")


def write_warmup_requests(path, signatures, images):
    """Writes one `PredictionLog` per signature as TF Serving's warmup file.

    The images are generated (never downloaded); texts and class names are
    fixed phrases. TF Serving replays these records when it loads the
    version, before it reports the version AVAILABLE.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    values = {
        "image_bytes": list(images),
        "texts": [b"a photo of a cat.", b"a diagram"],
        "class_names": [b"cat", b"dog", b"bird"],
    }
    if len(signatures) > protocol.MAX_WARMUP_RECORDS:  # pragma: no cover
        raise AssertionError(
            f"{len(signatures)} warmup records; TF Serving reads "
            f"{protocol.MAX_WARMUP_RECORDS}"
        )
    with tf.io.TFRecordWriter(path) as writer:
        for key, signature in sorted(signatures.items()):
            request = protocol.make_predict_request(
                "", key, {name: values[name] for name in signature["inputs"]}
            )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return len(signatures)
