"""`precompute_image_embeddings`: the locked tower's embeddings to shards.

Each view is one pass over the data in fixed batches. A shard is written to
a temporary file and renamed, then the manifest is rewritten, so a rerun
after a crash skips the finished shards (their captions checked) and
writes the others byte for byte as an uninterrupted run would.
"""

import hashlib
import os
import warnings

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from keras_lit.distribute import is_multi_worker
from keras_lit.precompute import manifest as manifests
from keras_lit.precompute.inputs import check_positive_int
from keras_lit.precompute.inputs import examples
from keras_lit.precompute.inputs import find_random_ops
from keras_lit.precompute.tower import encoder_fingerprint
from keras_lit.precompute.tower import encoder_function
from keras_lit.precompute.tower import locked_image_encoder

DTYPES = ("float32", "float16")


def precompute_image_embeddings(
    image_encoder,
    dataset,
    output_dir,
    shard_size=4096,
    batch_size=128,
    dtype="float32",
    num_views=None,
    strategy=None,
    verbose=True,
):
    """Writes the image tower's embeddings of `dataset` to sharded TFRecords.

    Each record holds one image's pre-logits (`extract_features`: backbone
    and pooling, before any optional image head) and all its captions. The
    run is resumable: rerun the same call after a crash and finished shards
    are skipped (their captions are checked against the manifest, so a
    dataset whose order changed is refused). Batches are formed the same
    way in every run, so the resumed shards are byte-identical to those of
    an uninterrupted run.

    The dataset must be deterministic and must not augment images at random:
    one stored view would freeze one random crop for every epoch. Random ops
    in the pipeline are detected and refused, unless `num_views=K` asks for
    K passes that store K augmented views per image (`load_precomputed`
    then picks one view per image and epoch). Shuffling is not needed:
    `load_precomputed` shuffles.

    Args:
        image_encoder: a locked `LockedImageEncoder`, or a `LiTModel` (its
            `image_encoder` is used).
        dataset: a `tf.data.Dataset` of `{"images": [H, W, 3] in [0, 255],
            "texts": string or [N] strings}`, batched or not, e.g. a
            `keras_lit.data` reader with `shuffle=False, caption="all"`.
        output_dir: directory for the shards and `manifest.json`.
        shard_size: int. Images per shard. Defaults to `4096`.
        batch_size: int. Images per forward pass (split over the replicas
            of `strategy`). Defaults to `128`.
        dtype: `"float32"` or `"float16"` (half the storage; embeddings are
            read back as float32). Defaults to `"float32"`.
        num_views: optional int. Store this many augmented views per image
            (one pass over `dataset` each).
        strategy: optional `tf.distribute.Strategy` to run the tower under
            (e.g. `MirroredStrategy` over several GPUs, or a TPU strategy).
            Defaults to the current strategy.
        verbose: bool. Show a progress bar and a summary.

    Returns:
        A dict: `output_dir`, `num_examples`, `num_shards`, `files`,
        `resumed_shards` (shards found finished) and `feature_dim`.

    Example:
    >>> dataset = keras_lit.data.tfrecord_dataset(  # doctest: +SKIP
    ...     "pairs/*.tfrecord", image_size=encoder.image_size,
    ...     shuffle=False, caption="all")
    >>> keras_lit.precompute_image_embeddings(  # doctest: +SKIP
    ...     encoder, dataset, "embeddings/", dtype="float16")
    >>> model.fit(keras_lit.load_precomputed(  # doctest: +SKIP
    ...     "embeddings/", batch_size=1024))
    """
    image_encoder = locked_image_encoder(image_encoder)
    strategy = strategy or tf.distribute.get_strategy()
    _check_arguments(shard_size, batch_size, dtype, num_views, strategy)
    elements = examples(dataset, image_encoder.image_size)
    _check_augmentation(elements, num_views)
    output_dir = os.fspath(output_dir)
    tf.io.gfile.makedirs(output_dir)
    settings = {
        "format": manifests.FORMAT,
        "format_version": manifests.FORMAT_VERSION,
        "feature_dim": int(image_encoder.feature_dim),
        "dtype": dtype,
        "shard_size": int(shard_size),
        "batch_size": int(batch_size),
        "num_views": num_views,
        "image_encoder": encoder_fingerprint(image_encoder),
    }
    manifest = manifests.resume_manifest(output_dir, settings)
    views = num_views or 1
    if manifest["complete"]:
        if verbose:
            print(f"{output_dir}: precomputed embeddings already complete.")
        return manifests.summary(
            output_dir, manifest, resumed=len(manifest["shards"])
        )
    writer = _ShardWriter(output_dir, manifest, settings)
    encode = encoder_function(image_encoder, strategy, batch_size)
    skipped = getattr(dataset, "skipped_images", None)
    total = int(elements.cardinality())
    progress = tqdm(
        total=total * views if total >= 0 else None,
        unit="img",
        desc="precompute",
        disable=not verbose,
    )
    num_examples = 0
    for view in range(views):
        if skipped is not None:
            skipped.reset()
        num_examples = writer.write_view(elements, view, encode, progress)
    progress.close()
    manifest["complete"] = True
    manifest["num_examples"] = num_examples
    if skipped is not None:
        manifest["skipped_images"] = skipped.counts
    manifests.write_manifest(output_dir, manifest)
    if verbose:
        print(
            f"Precomputed {num_examples} image embeddings "
            f"(x{views} view(s), dim {settings['feature_dim']}, {dtype}) in "
            f"{output_dir}; {writer.resumed} shard(s) were already done."
        )
        if skipped is not None:
            print(skipped.report())
    return manifests.summary(output_dir, manifest, resumed=writer.resumed)


def _check_arguments(shard_size, batch_size, dtype, num_views, strategy):
    check_positive_int("shard_size", shard_size)
    check_positive_int("batch_size", batch_size)
    if dtype not in DTYPES:
        raise ValueError(
            f"`dtype` must be one of {DTYPES}. Received: dtype={dtype!r}"
        )
    if num_views is not None:
        check_positive_int("num_views", num_views)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            "`batch_size` must be a multiple of the number of replicas "
            f"({replicas}). Received: batch_size={batch_size}"
        )
    if is_multi_worker(strategy):
        raise ValueError(
            "precompute_image_embeddings runs on one worker (all its "
            "devices); split the data and run one precompute per worker "
            "into separate output directories instead. Received a "
            f"multi-worker {type(strategy).__name__}"
        )


def _check_augmentation(elements, num_views):
    """Refuses random augmentation unless `num_views` stores several views."""
    random_ops = find_random_ops(elements)
    if random_ops and num_views is None:
        raise ValueError(
            "The image pipeline draws random numbers outside seed/caption "
            f"bookkeeping (ops: {', '.join(random_ops[:5])}), i.e. it "
            "augments images at random. Precomputed embeddings would freeze "
            "one random view for every epoch. Build the dataset without "
            "augmentation (e.g. `augment=None`), or pass `num_views=K` to "
            "store K augmented views per image."
        )
    if num_views and num_views > 1 and not random_ops:
        warnings.warn(
            f"num_views={num_views} but the pipeline has no random op: the "
            "views will probably be identical.",
            stacklevel=3,
        )


class _ShardWriter:
    """Writes the shards of one precompute, view by view.

    Shards listed in the manifest whose files are intact are kept (and
    their captions checked); the others are written to a temporary file,
    renamed, and added to the manifest, which is rewritten each time.
    """

    def __init__(self, output_dir, manifest, settings):
        self.output_dir = output_dir
        self.manifest = manifest
        self.num_views = settings["num_views"]
        self.shard_size = settings["shard_size"]
        self.batch_size = settings["batch_size"]
        self.dtype = settings["dtype"]
        # {(view, shard): manifest entry} of the shards already written.
        self.finished = manifests.verified_shards(output_dir, manifest)
        manifest["shards"] = sorted(
            self.finished.values(), key=lambda s: (s["view"], s["shard"])
        )
        self.resumed = len(self.finished)
        manifests.remove_temporary_files(output_dir)
        # {shard: digest of its captions in view 0}.
        self.fingerprints = {}

    def write_view(self, elements, view, encode, progress):
        """One pass over the data; writes this view's unfinished shards."""
        shard_size = self.shard_size
        position = 0
        pending_rows = []  # (embedding, texts) of the shard in progress
        pending_texts = hashlib.sha256()
        for batch in elements.ragged_batch(self.batch_size):
            rows = batch["texts"]
            # ragged_batch gives a dense tensor when every row has as many
            # captions (e.g. one each).
            rows = rows.to_list() if hasattr(rows, "to_list") else rows.numpy()
            texts = [[t.decode("utf-8") for t in row] for row in rows]
            count = len(texts)
            first_shard = position // shard_size
            last_shard = (position + count - 1) // shard_size
            needed = any(
                (view, s) not in self.finished
                for s in range(first_shard, last_shard + 1)
            )
            embeddings = encode(batch["images"]) if needed else None
            for row in range(count):
                shard = (position + row) // shard_size
                _hash_texts(pending_texts, texts[row])
                if (
                    embeddings is not None
                    and (view, shard) not in self.finished
                ):
                    pending_rows.append((embeddings[row], texts[row]))
                if (position + row + 1) % shard_size == 0:
                    self._finish_shard(view, shard, pending_rows, pending_texts)
                    pending_rows = []
                    pending_texts = hashlib.sha256()
            position += count
            progress.update(count)
        if position % shard_size:
            self._finish_shard(
                view, position // shard_size, pending_rows, pending_texts
            )
        if position == 0:
            raise ValueError(
                "`dataset` yielded no example (every image may have been "
                "skipped as bad)."
            )
        return position

    def _finish_shard(self, view, shard, rows, texts_digest):
        fingerprint = texts_digest.hexdigest()
        reference = self.fingerprints.setdefault(shard, fingerprint)
        if fingerprint != reference:
            raise ValueError(
                f"View {view} saw other captions in shard {shard} than view "
                "0: the dataset changes its order between passes. Build it "
                "with `shuffle=False` (augmentation may stay random)."
            )
        if (view, shard) in self.finished:
            if self.finished[(view, shard)]["texts_sha256"] != fingerprint:
                raise ValueError(
                    f"Shard {shard} (view {view}) was written from other "
                    "captions than the dataset gives now: its order or "
                    "content changed since the interrupted run. Precompute "
                    "needs a deterministic dataset (fixed `seed`, or "
                    "`shuffle=False`); use a new `output_dir` to start over."
                )
            return
        name = manifests.shard_name(view, self.num_views, shard)
        path = os.path.join(self.output_dir, name)
        temporary = f"{path}.tmp-{os.getpid()}"
        with tf.io.TFRecordWriter(temporary) as writer:
            for embedding, texts in rows:
                writer.write(_serialize(embedding, texts, self.dtype))
        with tf.io.gfile.GFile(temporary, "rb") as file:
            content = file.read()
        tf.io.gfile.rename(temporary, path, overwrite=True)
        entry = {
            "view": view,
            "shard": shard,
            "file": name,
            "num_examples": len(rows),
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "texts_sha256": fingerprint,
        }
        self.finished[(view, shard)] = entry
        self.manifest["shards"].append(entry)
        manifests.write_manifest(self.output_dir, self.manifest)


def _serialize(embedding, texts, dtype):
    values = np.asarray(embedding, dtype="<f2" if dtype == "float16" else "<f4")
    feature = {
        "image_embeddings": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[values.tobytes()])
        ),
        "texts": tf.train.Feature(
            bytes_list=tf.train.BytesList(
                value=[t.encode("utf-8") for t in texts]
            )
        ),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def _hash_texts(digest, texts):
    digest.update("\x1f".join(texts).encode("utf-8") + b"\x1e")
