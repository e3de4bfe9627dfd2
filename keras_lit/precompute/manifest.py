"""The `manifest.json` of a precompute directory: settings and shards.

The manifest lists the settings of a precompute and every finished shard
with its size and SHA-256. It is always rewritten through a temporary file
and a rename, so a crash leaves the old manifest or the new one.
"""

import hashlib
import json
import os
import time

import tensorflow as tf

FORMAT = "keras_lit.precomputed_image_embeddings"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def read_manifest(output_dir):
    """The `manifest.json` of a precompute output directory, as a dict."""
    path = os.path.join(os.fspath(output_dir), MANIFEST)
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"{output_dir!r} has no {MANIFEST}: it is not the output of "
            "`precompute_image_embeddings`."
        )
    with tf.io.gfile.GFile(path, "r") as file:
        manifest = json.load(file)
    if manifest.get("format") != FORMAT:
        raise ValueError(
            f"{path!r} is not a keras_lit precompute manifest. "
            f"Received: format={manifest.get('format')!r}"
        )
    return manifest


def write_manifest(output_dir, manifest):
    """Writes `manifest` atomically (temporary file, then a rename)."""
    path = os.path.join(output_dir, MANIFEST)
    temporary = f"{path}.tmp-{os.getpid()}"
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    with tf.io.gfile.GFile(temporary, "w") as file:
        json.dump(manifest, file, indent=1)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def resume_manifest(output_dir, settings):
    """The manifest to continue: a new one, or the stored one if it matches.

    Raises a `ValueError` when the directory holds shards without a
    manifest, or a precompute with other `settings`.
    """
    path = os.path.join(output_dir, MANIFEST)
    if not tf.io.gfile.exists(path):
        existing = tf.io.gfile.glob(os.path.join(output_dir, "embeddings-*"))
        if existing:
            raise ValueError(
                f"{output_dir!r} holds embedding shards but no {MANIFEST}; "
                "use an empty directory."
            )
        manifest = dict(settings, shards=[], complete=False)
        write_manifest(output_dir, manifest)
        return manifest
    manifest = read_manifest(output_dir)
    different = {
        key: (manifest.get(key), value)
        for key, value in settings.items()
        if manifest.get(key) != value
    }
    if different:
        details = "; ".join(
            f"{key}: stored {old!r}, requested {new!r}"
            for key, (old, new) in different.items()
        )
        raise ValueError(
            f"{output_dir!r} holds a precompute with other settings "
            f"({details}). Use a new `output_dir`, or the same settings "
            "to resume."
        )
    return manifest


def verified_shards(output_dir, manifest):
    """Finished shards whose files are intact: `{(view, shard): entry}`."""
    finished = {}
    for entry in manifest["shards"]:
        path = os.path.join(output_dir, entry["file"])
        if not tf.io.gfile.exists(path):
            continue
        with tf.io.gfile.GFile(path, "rb") as file:
            content = file.read()
        if hashlib.sha256(content).hexdigest() == entry["sha256"]:
            finished[(entry["view"], entry["shard"])] = entry
    return finished


def check_shard_sizes(output_dir, manifest):
    """Raises a `ValueError` if a listed shard is missing or has another size.

    A cheap check for readers (hashing every shard would read them twice).
    """
    for entry in manifest["shards"]:
        path = os.path.join(output_dir, entry["file"])
        if not tf.io.gfile.exists(path):
            raise ValueError(
                f"Shard {path!r} listed in the manifest is missing."
            )
        if tf.io.gfile.stat(path).length != entry["bytes"]:
            raise ValueError(
                f"Shard {path!r} has {tf.io.gfile.stat(path).length} bytes, "
                f"the manifest says {entry['bytes']}: it is damaged. Delete "
                "it and rerun the precompute to rewrite it."
            )


def shard_name(view, num_views, shard):
    """The file name of a shard (`embeddings[-view<v>]-<shard>.tfrecord`)."""
    if num_views is None:
        return f"embeddings-{shard:05d}.tfrecord"
    return f"embeddings-view{view}-{shard:05d}.tfrecord"


def remove_temporary_files(output_dir):
    """Removes what an interrupted run left half-written."""
    for name in tf.io.gfile.glob(os.path.join(output_dir, "*.tmp-*")):
        tf.io.gfile.remove(name)


def summary(output_dir, manifest, resumed):
    """What `precompute_image_embeddings` returns."""
    return {
        "output_dir": output_dir,
        "num_examples": manifest.get("num_examples"),
        "num_shards": len(manifest["shards"]),
        "files": [
            os.path.join(output_dir, s["file"]) for s in manifest["shards"]
        ],
        "resumed_shards": resumed,
        "feature_dim": manifest["feature_dim"],
    }
