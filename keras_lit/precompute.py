"""Precomputed image embeddings: run the locked image tower once, not per step.

LiT's image tower is locked, so its embeddings of a training image never
change. `precompute_image_embeddings` runs the tower over a dataset once and
writes the pre-logits (`LockedImageEncoder.extract_features`, before any
optional image head) with every caption to sharded TFRecords;
`load_precomputed` reads them back as `{"image_embeddings", "texts"}` and
`LiTModel.fit` then trains the text tower without ever running the image
backbone (the paper's App. G: about 140x the throughput for a g/14 tower).

The output directory holds `embeddings-00000.tfrecord`, ... and a
`manifest.json` listing the settings and every finished shard with its
size and SHA-256. Shards are written to a temporary file and renamed, then
the manifest is rewritten the same way, so a crash at any point loses at
most the shard in progress: rerunning the same call skips the finished
shards and writes the rest, byte for byte as an uninterrupted run would.

Typical usage:

    python -m keras_lit.precompute --model lit.keras \
        --tfrecords "pairs/train-*.tfrecord" embeddings/
"""

import argparse
import hashlib
import json
import os
import sys
import time
import warnings

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from keras_lit.data.pipeline import SEED_SCOPE
from keras_lit.distribute import auto_shard_policy
from keras_lit.distribute import is_multi_worker
from keras_lit.layers.locked_image_encoder import LockedImageEncoder

FORMAT = "keras_lit.precomputed_image_embeddings"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DTYPES = ("float32", "float16")
CAPTION_MODES = ("random", "first", "all")
# Records parsed at once by `load_precomputed`.
PARSE_CHUNK = 128
# Substrings of the op types that draw random numbers.
RANDOM_OP_MARKERS = (
    "Random",
    "Rng",
    "StatefulUniform",
    "StatefulStandardNormal",
    "StatefulTruncatedNormal",
    "Multinomial",
    "TruncatedNormal",
    "SampleDistortedBoundingBox",
)


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
    image_encoder = _image_encoder(image_encoder)
    _check_positive_int("shard_size", shard_size)
    _check_positive_int("batch_size", batch_size)
    if dtype not in DTYPES:
        raise ValueError(
            f"`dtype` must be one of {DTYPES}. Received: dtype={dtype!r}"
        )
    if num_views is not None:
        _check_positive_int("num_views", num_views)
    strategy = strategy or tf.distribute.get_strategy()
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
    elements = _examples(dataset, image_encoder.image_size)
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
            stacklevel=2,
        )

    output_dir = os.fspath(output_dir)
    tf.io.gfile.makedirs(output_dir)
    settings = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_dim": int(image_encoder.feature_dim),
        "dtype": dtype,
        "shard_size": int(shard_size),
        "batch_size": int(batch_size),
        "num_views": num_views,
        "image_encoder": encoder_fingerprint(image_encoder),
    }
    manifest = _resume_manifest(output_dir, settings)
    views = num_views or 1
    if manifest["complete"]:
        if verbose:
            print(f"{output_dir}: precomputed embeddings already complete.")
        return _summary(output_dir, manifest, resumed=len(manifest["shards"]))
    finished = _verified_shards(output_dir, manifest)
    manifest["shards"] = sorted(
        finished.values(), key=lambda s: (s["view"], s["shard"])
    )
    resumed = len(finished)
    _remove_temporary_files(output_dir)
    encode = _encoder_function(image_encoder, strategy, batch_size)
    skipped = getattr(dataset, "skipped_images", None)
    total = int(elements.cardinality())
    progress = tqdm(
        total=total * views if total >= 0 else None,
        unit="img",
        desc="precompute",
        disable=not verbose,
    )
    fingerprints = {}
    num_examples = 0
    for view in range(views):
        if skipped is not None:
            skipped.reset()
        num_examples = _precompute_view(
            elements,
            view,
            num_views,
            output_dir,
            manifest,
            finished,
            fingerprints,
            encode,
            batch_size,
            shard_size,
            dtype,
            progress,
        )
    progress.close()
    manifest["complete"] = True
    manifest["num_examples"] = num_examples
    if skipped is not None:
        manifest["skipped_images"] = skipped.counts
    _write_manifest(output_dir, manifest)
    if verbose:
        print(
            f"Precomputed {num_examples} image embeddings "
            f"(x{views} view(s), dim {settings['feature_dim']}, {dtype}) in "
            f"{output_dir}; {resumed} shard(s) were already done."
        )
        if skipped is not None:
            print(skipped.report())
    return _summary(output_dir, manifest, resumed=resumed)


def load_precomputed(
    output_dir,
    batch_size=None,
    shuffle=True,
    seed=None,
    caption="random",
    shuffle_buffer_size=10000,
    drop_remainder=True,
    image_encoder=None,
    allow_incomplete=False,
    cycle_length=8,
):
    """Reads precomputed embeddings as `{"image_embeddings", "texts"}`.

    Feed the result to `LiTModel.fit`: with `"image_embeddings"` the image
    backbone never runs (an image head, if any, still trains). Shards are
    shuffled, read `cycle_length` at a time and records shuffled again; one
    caption (and, with several views, one view) is drawn per image each
    time it is read. Deterministic with a `seed`. FILE auto-sharding under
    multi-worker strategies (DATA with fewer shards than workers).

    Args:
        output_dir: a directory written by `precompute_image_embeddings`.
        batch_size: optional int. Batch the output.
        shuffle: bool. Defaults to `True`. With `False` the records come in
            the order they were written.
        seed: optional int for shuffling and caption/view sampling.
        caption: `"random"`, `"first"` or `"all"` (ragged `[N]`).
        shuffle_buffer_size: int. Records in the shuffle buffer.
        drop_remainder: bool. Drop the last partial batch.
        image_encoder: optional `LockedImageEncoder` (or `LiTModel`) the
            embeddings must come from; a different one raises an error.
        allow_incomplete: bool. Read an unfinished precompute.
        cycle_length: int. Shards read at once when shuffling.

    Returns:
        A `tf.data.Dataset` of `{"image_embeddings": float32 [D], "texts":
        string}`, with a `manifest` attribute.

    Example:
    >>> dataset = load_precomputed("embeddings/", batch_size=1024)  # +SKIP
    >>> model.fit(dataset, epochs=10)  # doctest: +SKIP
    """
    output_dir = os.fspath(output_dir)
    manifest = read_manifest(output_dir)
    if caption not in CAPTION_MODES:
        raise ValueError(
            f"`caption` must be one of {CAPTION_MODES}. "
            f"Received: caption={caption!r}"
        )
    if batch_size is not None:
        _check_positive_int("batch_size", batch_size)
    if not manifest["complete"] and not allow_incomplete:
        raise ValueError(
            f"The precompute in {output_dir!r} is not finished "
            f"({len(manifest['shards'])} shard(s) written). Rerun "
            "`precompute_image_embeddings` with the same arguments to "
            "finish it, or pass `allow_incomplete=True`."
        )
    if image_encoder is not None:
        expected = encoder_fingerprint(_image_encoder(image_encoder))
        if expected != manifest["image_encoder"]:
            raise ValueError(
                f"The embeddings in {output_dir!r} come from another image "
                f"encoder. Stored: {manifest['image_encoder']}; received an "
                f"encoder with {expected}."
            )
    views = manifest["num_views"] or 1
    shards = {(s["view"], s["shard"]): s for s in manifest["shards"]}
    indices = sorted(
        i
        for (view, i) in shards
        if view == 0 and all((v, i) in shards for v in range(views))
    )
    if not indices:
        raise ValueError(f"{output_dir!r} holds no finished shard.")
    for entry in shards.values():
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
    files = [
        [os.path.join(output_dir, shards[(v, i)]["file"]) for v in range(views)]
        for i in indices
    ]
    storage = tf.float16 if manifest["dtype"] == "float16" else tf.float32
    feature_dim = manifest["feature_dim"]
    generator = None
    if shuffle or caption == "random" or views > 1:
        generator = (
            tf.random.Generator.from_non_deterministic_state()
            if seed is None
            else tf.random.Generator.from_seed(seed)
        )

    def with_seed(view_files):
        with tf.name_scope(SEED_SCOPE):
            if generator is None:
                return view_files, tf.zeros([2], tf.int64)
            return view_files, generator.make_seeds(1)[:, 0]

    def parse(records):
        """A chunk of serialised records -> embeddings `[n, D]`, texts."""
        features = tf.io.parse_example(
            records,
            {
                "image_embeddings": tf.io.FixedLenFeature([], tf.string),
                "texts": tf.io.VarLenFeature(tf.string),
            },
        )
        embeddings = tf.io.decode_raw(features["image_embeddings"], storage)
        embeddings = tf.reshape(embeddings, [-1, feature_dim])
        return tf.cast(embeddings, tf.float32), features["texts"]

    def read_shard(view_files, unit_seed):
        records = tuple(
            tf.data.TFRecordDataset(view_files[v]) for v in range(views)
        )
        records = tf.data.Dataset.zip(records).enumerate()

        def examples(index, views_records):
            # One chunk of records at a time: parsing and the random draws
            # are vectorised (per record they cost more than training).
            parsed = [parse(r) for r in views_records]
            texts = parsed[0][1]
            count = texts.dense_shape[0]
            # A record without captions reads as one empty caption.
            captions = tf.maximum(
                tf.RaggedTensor.from_sparse(texts).row_lengths(), 1
            )
            texts = tf.pad(tf.sparse.to_dense(texts), [[0, 0], [0, 1]])
            with tf.name_scope(SEED_SCOPE):
                chunk_seed = tf.random.experimental.stateless_fold_in(
                    unit_seed, index[0]
                )
            embeddings = parsed[0][0]
            if views > 1:
                with tf.name_scope(SEED_SCOPE):
                    view = tf.random.stateless_uniform(
                        [count],
                        tf.random.experimental.stateless_fold_in(chunk_seed, 0),
                        0,
                        views,
                        dtype=tf.int32,
                    )
                embeddings = tf.gather(
                    tf.stack([p[0] for p in parsed], axis=1),
                    view,
                    batch_dims=1,
                )
            if caption == "all":
                text = tf.RaggedTensor.from_tensor(texts, lengths=captions)
            elif caption == "first":
                text = texts[:, 0]
            else:
                with tf.name_scope(SEED_SCOPE):
                    bits = tf.random.stateless_uniform(
                        [count],
                        tf.random.experimental.stateless_fold_in(chunk_seed, 1),
                        minval=None,
                        maxval=None,
                        dtype=tf.int64,
                    )
                pick = tf.math.floormod(bits, captions)
                text = tf.gather(texts, pick, batch_dims=1)
            return {"image_embeddings": embeddings, "texts": text}

        chunks = records.batch(PARSE_CHUNK).map(
            examples, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return chunks.unbatch()

    units = tf.data.Dataset.from_tensor_slices(files)
    cycle = min(cycle_length, len(files)) if shuffle else 1
    if shuffle:
        units = units.shuffle(len(files), seed=seed)
    units = units.map(with_seed)
    if cycle > 1:
        dataset = units.interleave(
            read_shard,
            cycle_length=cycle,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    else:
        dataset = units.flat_map(read_shard)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)
    if batch_size is not None:
        if caption == "all":
            dataset = dataset.ragged_batch(batch_size, drop_remainder)
        else:
            dataset = dataset.batch(batch_size, drop_remainder)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = auto_shard_policy(
        [f[0] for f in files]
    )
    dataset = dataset.with_options(options)
    dataset.manifest = manifest
    return dataset


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


def encoder_fingerprint(image_encoder):
    """What identifies an image tower: config summary and weight hash."""
    digest = hashlib.sha256()
    for weight in image_encoder.backbone.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)))
    return {
        "backbone": type(image_encoder.backbone).__name__,
        "image_size": list(image_encoder.image_size),
        "pooling": image_encoder.pooling,
        "feature_dim": int(image_encoder.feature_dim),
        "weights_sha256": digest.hexdigest(),
    }


def find_random_ops(dataset):
    """Random op types in a dataset's graph, outside seed bookkeeping.

    Ops under the `keras_lit_seed` name scope (the readers' seeds and
    caption sampling) are ignored; anything else that draws random numbers
    (augmentation layers, `tf.image.random_*`, stateless crops, ...) is
    reported.
    """
    policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    graph = tf.compat.v1.GraphDef.FromString(
        dataset._as_serialized_graph(external_state_policy=policy).numpy()
    )
    nodes = list(graph.node)
    for function in graph.library.function:
        nodes.extend(function.node_def)
    found = set()
    for node in nodes:
        if SEED_SCOPE in node.name.split("/"):
            continue
        if "Dataset" in node.op and "RandomDataset" not in node.op:
            continue
        if any(marker in node.op for marker in RANDOM_OP_MARKERS):
            found.add(node.op)
    return sorted(found)


# --- Internals ------------------------------------------------------------


def _precompute_view(
    elements,
    view,
    num_views,
    output_dir,
    manifest,
    finished,
    fingerprints,
    encode,
    batch_size,
    shard_size,
    dtype,
    progress,
):
    """One pass over the data; writes this view's unfinished shards."""
    position = 0
    pending_rows = []  # (embedding bytes, texts) of the shard in progress
    pending_texts = hashlib.sha256()
    batches = elements.ragged_batch(batch_size)
    for batch in batches:
        rows = batch["texts"]
        # ragged_batch gives a dense tensor when every row has as many
        # captions (e.g. one each).
        rows = rows.to_list() if hasattr(rows, "to_list") else rows.numpy()
        texts = [[t.decode("utf-8") for t in row] for row in rows]
        count = len(texts)
        first_shard = position // shard_size
        last_shard = (position + count - 1) // shard_size
        needed = any(
            (view, s) not in finished
            for s in range(first_shard, last_shard + 1)
        )
        embeddings = encode(batch["images"]) if needed else None
        for row in range(count):
            shard = (position + row) // shard_size
            _hash_texts(pending_texts, texts[row])
            if embeddings is not None and (view, shard) not in finished:
                pending_rows.append((embeddings[row], texts[row]))
            if (position + row + 1) % shard_size == 0:
                _finish_shard(
                    view,
                    num_views,
                    shard,
                    pending_rows,
                    pending_texts,
                    output_dir,
                    manifest,
                    finished,
                    fingerprints,
                    dtype,
                )
                pending_rows = []
                pending_texts = hashlib.sha256()
        position += count
        progress.update(count)
    if position % shard_size:
        _finish_shard(
            view,
            num_views,
            position // shard_size,
            pending_rows,
            pending_texts,
            output_dir,
            manifest,
            finished,
            fingerprints,
            dtype,
        )
    if position == 0:
        raise ValueError(
            "`dataset` yielded no example (every image may have been "
            "skipped as bad)."
        )
    return position


def _finish_shard(
    view,
    num_views,
    shard,
    rows,
    texts_digest,
    output_dir,
    manifest,
    finished,
    fingerprints,
    dtype,
):
    fingerprint = texts_digest.hexdigest()
    reference = fingerprints.setdefault(shard, fingerprint)
    if fingerprint != reference:
        raise ValueError(
            f"View {view} saw other captions in shard {shard} than view 0: "
            "the dataset changes its order between passes. Build it with "
            "`shuffle=False` (augmentation may stay random)."
        )
    if (view, shard) in finished:
        if finished[(view, shard)]["texts_sha256"] != fingerprint:
            raise ValueError(
                f"Shard {shard} (view {view}) was written from other "
                "captions than the dataset gives now: its order or content "
                "changed since the interrupted run. Precompute needs a "
                "deterministic dataset (fixed `seed`, or `shuffle=False`); "
                "use a new `output_dir` to start over."
            )
        return
    name = _shard_name(view, num_views, shard)
    path = os.path.join(output_dir, name)
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.TFRecordWriter(temporary) as writer:
        for embedding, texts in rows:
            writer.write(_serialize(embedding, texts, dtype))
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
    finished[(view, shard)] = entry
    manifest["shards"].append(entry)
    _write_manifest(output_dir, manifest)


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


def _shard_name(view, num_views, shard):
    if num_views is None:
        return f"embeddings-{shard:05d}.tfrecord"
    return f"embeddings-view{view}-{shard:05d}.tfrecord"


def _image_encoder(image_encoder):
    image_encoder = getattr(image_encoder, "image_encoder", image_encoder)
    if not isinstance(image_encoder, LockedImageEncoder):
        raise ValueError(
            "`image_encoder` must be a keras_lit LockedImageEncoder or a "
            f"LiTModel. Received: {type(image_encoder).__name__}"
        )
    if not image_encoder.locked:
        raise ValueError(
            "Precomputed embeddings need a locked image tower; this one is "
            "trained (locked=False), so its embeddings would go stale. "
            "Received: image_encoder.locked=False"
        )
    return image_encoder


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive int. Received: {name}={value!r}"
        )


def _examples(dataset, image_size):
    """Any {"images", "texts"} dataset -> unbatched, texts as `[N]`.

    Images whose size is not `image_size` are resized here, one by one, as
    `LockedImageEncoder.preprocess` would resize them.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "`dataset` must be a tf.data.Dataset of {'images', 'texts'}. "
            f"Received: {type(dataset).__name__}"
        )
    spec = dataset.element_spec
    if not isinstance(spec, dict) or not {"images", "texts"} <= set(spec):
        raise ValueError(
            "`dataset` must yield dicts with 'images' and 'texts'. "
            f"Received element_spec: {spec}"
        )
    rank = spec["images"].shape.rank
    if rank == 4:
        dataset = dataset.unbatch()
        spec = dataset.element_spec
    elif rank != 3:
        raise ValueError(
            "`images` must be [height, width, 3] per example (or batched). "
            f"Received: images spec {spec['images']}"
        )
    if spec["images"].shape[-1] not in (None, 3):
        raise ValueError(
            "`images` must have 3 (RGB) channels. "
            f"Received: images spec {spec['images']}"
        )

    resize = tuple(spec["images"].shape[:2]) != tuple(image_size)

    def normalize(example):
        texts = example["texts"]
        if isinstance(texts, tf.RaggedTensor):
            texts = texts.flat_values
        images = example["images"]
        if resize:
            images = tf.image.resize(
                tf.cast(images, tf.float32), image_size, antialias=True
            )
            images = tf.clip_by_value(images, 0.0, 255.0)
        return {"images": images, "texts": tf.reshape(texts, [-1])}

    return dataset.map(normalize)


def _encoder_function(image_encoder, strategy, batch_size):
    """A function: a batch of <= batch_size images -> numpy float32."""
    replicas = strategy.num_replicas_in_sync
    per_replica = batch_size // replicas

    def features(images):
        images = image_encoder.preprocess(images)
        outputs = image_encoder.extract_features(images, training=False)
        return tf.cast(outputs, tf.float32)

    # No autograph: nothing here needs it, and its conversion cache has
    # mixed up the encoder's methods between calls.
    @tf.function(reduce_retracing=True, autograph=False)
    def step(images):
        outputs = strategy.run(features, args=(images,))
        # Replica order is batch order. Concatenating the local results needs
        # no collective op (an all-gather would clash with the group keys of
        # other strategies in the same process).
        return tf.concat(strategy.experimental_local_results(outputs), 0)

    def encode(images):
        count = int(images.shape[0])
        # Pad to a full batch: one traced shape, TPU-friendly.
        padding = batch_size - count
        if padding:
            images = tf.concat(
                [
                    images,
                    tf.zeros(
                        (padding,) + tuple(images.shape[1:]), images.dtype
                    ),
                ],
                axis=0,
            )
        if replicas > 1:
            images = strategy.experimental_distribute_values_from_function(
                lambda context: images[
                    context.replica_id_in_sync_group * per_replica : (
                        context.replica_id_in_sync_group + 1
                    )
                    * per_replica
                ]
            )
        return step(images).numpy()[:count]

    return encode


def _resume_manifest(output_dir, settings):
    path = os.path.join(output_dir, MANIFEST)
    if not tf.io.gfile.exists(path):
        existing = tf.io.gfile.glob(os.path.join(output_dir, "embeddings-*"))
        if existing:
            raise ValueError(
                f"{output_dir!r} holds embedding shards but no {MANIFEST}; "
                "use an empty directory."
            )
        manifest = dict(settings, shards=[], complete=False)
        _write_manifest(output_dir, manifest)
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


def _verified_shards(output_dir, manifest):
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


def _remove_temporary_files(output_dir):
    for name in tf.io.gfile.glob(os.path.join(output_dir, "*.tmp-*")):
        tf.io.gfile.remove(name)


def _write_manifest(output_dir, manifest):
    path = os.path.join(output_dir, MANIFEST)
    temporary = f"{path}.tmp-{os.getpid()}"
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    with tf.io.gfile.GFile(temporary, "w") as file:
        json.dump(manifest, file, indent=1)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def _summary(output_dir, manifest, resumed):
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


# --- Command line ---------------------------------------------------------


def build_parser(parser=None):
    """The argument parser of the precompute command line."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m keras_lit.precompute",
        description="Precompute locked image embeddings for LiT training.",
    )
    parser.add_argument("output_dir")
    parser.add_argument(
        "--model",
        required=True,
        help="a .keras file of a LiTModel or of a LockedImageEncoder",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tfrecords", help="TFRecord file pattern")
    source.add_argument("--csv", help="CSV/TSV of image paths and captions")
    source.add_argument("--folder", help="image folder with JSONL captions")
    parser.add_argument("--image-column", default="image")
    parser.add_argument("--text-column", default="caption")
    parser.add_argument("--captions-file", default=None)
    parser.add_argument("--shard-size", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--quiet", action="store_true")
    return parser


def run(args):
    """Runs a parsed precompute command line; returns the summary dict."""
    from keras_lit import data

    model = keras.saving.load_model(args.model)
    image_encoder = _image_encoder(model)
    options = dict(
        image_size=image_encoder.image_size, shuffle=False, caption="all"
    )
    if args.tfrecords:
        dataset = data.tfrecord_dataset(args.tfrecords, **options)
    elif args.csv:
        dataset = data.csv_dataset(
            args.csv,
            image_column=args.image_column,
            text_column=args.text_column,
            **options,
        )
    else:
        dataset = data.folder_dataset(
            args.folder, captions_file=args.captions_file, **options
        )
    return precompute_image_embeddings(
        image_encoder,
        dataset,
        args.output_dir,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        dtype=args.dtype,
        verbose=not args.quiet,
    )


def main(argv=None):
    """Command-line entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
