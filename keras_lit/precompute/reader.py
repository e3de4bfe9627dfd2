"""`load_precomputed`: precomputed embeddings back as a training dataset.

Shards are the units: each gets a per-pass seed from one seeded
`tf.random.Generator`; its records are parsed a chunk at a time, and the
caption (and, with several views, the view) of each record is drawn from a
seed folded from the unit seed and the chunk index, so parallel reading
stays deterministic and every epoch draws anew.
"""

import functools
import os

import tensorflow as tf

from keras_lit.data.pipeline import SEED_SCOPE
from keras_lit.data.pipeline import with_unit_seeds
from keras_lit.data.reader_options import CAPTION_MODES
from keras_lit.distribute import auto_shard_policy
from keras_lit.precompute.inputs import check_positive_int
from keras_lit.precompute.manifest import check_shard_sizes
from keras_lit.precompute.manifest import read_manifest
from keras_lit.precompute.tower import encoder_fingerprint
from keras_lit.precompute.tower import locked_image_encoder

# Records parsed at once by `load_precomputed`.
PARSE_CHUNK = 128


def load_precomputed(
    output_dir,
    batch_size=None,
    shuffle=True,
    seed=None,
    caption="random",
    shuffle_buffer_size=10000,
    drop_remainder=True,
    image_encoder=None,
    cycle_length=8,
    allow_incomplete=False,
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
        check_positive_int("batch_size", batch_size)
    _check_readable(output_dir, manifest, allow_incomplete, image_encoder)
    files = shard_files(output_dir, manifest)
    check_shard_sizes(output_dir, manifest)
    views = manifest["num_views"] or 1
    read_shard = functools.partial(
        _read_shard,
        views=views,
        storage=tf.float16 if manifest["dtype"] == "float16" else tf.float32,
        feature_dim=manifest["feature_dim"],
        caption=caption,
    )
    units = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        units = units.shuffle(len(files), seed=seed)
    draws = shuffle or caption == "random" or views > 1
    units = with_unit_seeds(units, seed, draws)
    cycle = min(cycle_length, len(files)) if shuffle else 1
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


def shard_files(output_dir, manifest):
    """Paths of the readable shards: `[[view 0 file, view 1 file, ...]]`.

    A shard index is readable when every view of it is finished.
    """
    views = manifest["num_views"] or 1
    shards = {(s["view"], s["shard"]): s for s in manifest["shards"]}
    indices = sorted(
        i
        for (view, i) in shards
        if view == 0 and all((v, i) in shards for v in range(views))
    )
    if not indices:
        raise ValueError(f"{output_dir!r} holds no finished shard.")
    return [
        [os.path.join(output_dir, shards[(v, i)]["file"]) for v in range(views)]
        for i in indices
    ]


def _check_readable(output_dir, manifest, allow_incomplete, image_encoder):
    if not manifest["complete"] and not allow_incomplete:
        raise ValueError(
            f"The precompute in {output_dir!r} is not finished "
            f"({len(manifest['shards'])} shard(s) written). Rerun "
            "`precompute_image_embeddings` with the same arguments to "
            "finish it, or pass `allow_incomplete=True`."
        )
    if image_encoder is not None:
        expected = encoder_fingerprint(locked_image_encoder(image_encoder))
        if expected != manifest["image_encoder"]:
            raise ValueError(
                f"The embeddings in {output_dir!r} come from another image "
                f"encoder. Stored: {manifest['image_encoder']}; received an "
                f"encoder with {expected}."
            )


def _read_shard(view_files, unit_seed, views, storage, feature_dim, caption):
    """One shard (all its views) -> examples, parsed a chunk at a time."""
    records = tuple(
        tf.data.TFRecordDataset(view_files[v]) for v in range(views)
    )
    records = tf.data.Dataset.zip(records).enumerate()
    layout = unit_seed, views, storage, feature_dim, caption
    chunks = records.batch(PARSE_CHUNK).map(
        lambda index, views_records: _chunk_examples(
            index, views_records, *layout
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return chunks.unbatch()


def _chunk_examples(
    index, views_records, unit_seed, views, storage, feature_dim, caption
):
    """A chunk of records of every view -> `{"image_embeddings", "texts"}`.

    Parsing and the random draws are vectorised over the chunk (per record
    they cost more than training).
    """
    parsed = [_parse(r, storage, feature_dim) for r in views_records]
    texts = parsed[0][1]
    count = texts.dense_shape[0]
    # A record without captions reads as one empty caption.
    captions = tf.maximum(tf.RaggedTensor.from_sparse(texts).row_lengths(), 1)
    texts = tf.pad(tf.sparse.to_dense(texts), [[0, 0], [0, 1]])
    with tf.name_scope(SEED_SCOPE):
        chunk_seed = tf.random.experimental.stateless_fold_in(
            unit_seed, index[0]
        )
    embeddings = parsed[0][0]
    if views > 1:
        embeddings = _draw_view(
            [p[0] for p in parsed], count, views, chunk_seed
        )
    return {
        "image_embeddings": embeddings,
        "texts": _select_captions(texts, captions, count, caption, chunk_seed),
    }


def _parse(records, storage, feature_dim):
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


def _draw_view(view_embeddings, count, views, chunk_seed):
    """One of the stored views of each record, drawn at random."""
    with tf.name_scope(SEED_SCOPE):
        view = tf.random.stateless_uniform(
            [count],
            tf.random.experimental.stateless_fold_in(chunk_seed, 0),
            0,
            views,
            dtype=tf.int32,
        )
    return tf.gather(tf.stack(view_embeddings, axis=1), view, batch_dims=1)


def _select_captions(texts, captions, count, caption, chunk_seed):
    """`texts` `[n, max + 1]` (padded), `captions` per row -> per `caption`."""
    if caption == "all":
        return tf.RaggedTensor.from_tensor(texts, lengths=captions)
    if caption == "first":
        return texts[:, 0]
    with tf.name_scope(SEED_SCOPE):
        bits = tf.random.stateless_uniform(
            [count],
            tf.random.experimental.stateless_fold_in(chunk_seed, 1),
            minval=None,
            maxval=None,
            dtype=tf.int64,
        )
    pick = tf.math.floormod(bits, captions)
    return tf.gather(texts, pick, batch_dims=1)
