"""Reads image-text pairs from sharded TFRecord files."""

import tensorflow as tf

from keras_lit.data.example_format import IMAGE_KEY
from keras_lit.data.example_format import TEXT_KEY
from keras_lit.data.example_format import parse_example
from keras_lit.data.pipeline import image_text_dataset
from keras_lit.data.pipeline import reader_arguments
from keras_lit.distribute import auto_shard_policy


def tfrecord_dataset(
    file_pattern,
    image_size,
    options=None,
    image_key=IMAGE_KEY,
    text_key=TEXT_KEY,
    **kwargs,
):
    """Image-text pairs from TFRecord shards of `tf.train.Example`s.

    Each example holds encoded image bytes under `image_key` and one or
    several captions under `text_key` (the layout `keras_lit.data.convert`
    writes). Images are decoded with a header pixel limit, optionally
    augmented, then resized and centre-cropped to `image_size`. Corrupt,
    truncated, empty or oversized images and examples without a caption are
    skipped and counted in `dataset.skipped_images` (a `SkippedImages`,
    also a Keras callback that reports the counts after `fit`).

    Files are shuffled, read `cycle_length` at a time and examples shuffled
    again after decoding; with `shuffle=False` files are read one after the
    other in sorted order. Under a multi-worker strategy each worker reads
    its own shards (FILE auto-sharding) when there are at least as many
    shards as workers of the strategy current at construction; otherwise
    every worker reads all and keeps its share (DATA).

    Args:
        file_pattern: a glob pattern, a file name or a list of either.
        image_size: `(height, width)` of the output images, e.g.
            `model.image_encoder.image_size`; an int means a square.
        options: optional `ReaderOptions`: batching, shuffling, seed,
            augmentation, caption sampling, pixel limit, ...
        **kwargs: any `ReaderOptions` field by name (e.g. `batch_size=256,
            seed=0`), overriding `options`.
        image_key, text_key: feature names in the examples.

    Returns:
        A `tf.data.Dataset` of `{"images": uint8 [H, W, 3], "texts":
        string}` (with a leading batch axis if `batch_size`), with
        attributes `skipped_images` and `image_size`.

    Example:
    >>> dataset = keras_lit.data.tfrecord_dataset(  # doctest: +SKIP
    ...     "pairs/train-*.tfrecord", image_size=(224, 224), batch_size=256,
    ...     seed=0)
    >>> model.fit(dataset, callbacks=[dataset.skipped_images])  # +SKIP
    """
    image_size, options = reader_arguments(image_size, options, kwargs)
    files = _match_files(file_pattern)
    for file_name in files:
        check_tfrecord_framing(file_name)

    def read_unit(file_name, unit_seed):
        return tf.data.TFRecordDataset(file_name)

    def load(record):
        example = parse_example(record, image_key, text_key)
        return example["image"], example["texts"]

    cycle = min(options.cycle_length, len(files)) if options.shuffle else 1
    return image_text_dataset(
        tf.data.Dataset.from_tensor_slices(files),
        read_unit,
        load,
        image_size,
        options,
        cycle_length=cycle,
        auto_shard_policy=auto_shard_policy(files),
    )


def _match_files(file_pattern):
    patterns = file_pattern
    if isinstance(patterns, (str, bytes)) or hasattr(patterns, "__fspath__"):
        patterns = [patterns]
    files = []
    for pattern in patterns:
        pattern = str(pattern)
        # `.tmp` files are leftovers of an interrupted conversion.
        matched = [
            f for f in tf.io.gfile.glob(pattern) if not f.endswith(".tmp")
        ]
        if not matched:
            raise ValueError(
                "`file_pattern` must match at least one TFRecord file. "
                f"Received: file_pattern={pattern!r} (no file matches)"
            )
        files.extend(matched)
    return sorted(set(files))


def check_tfrecord_framing(path):
    """Raises `ValueError` naming `path` if it does not start as a TFRecord.

    Reads 12 bytes: the first record's length and its masked CRC-32C. An
    empty file (no records) passes. Catches a file of another kind (or
    random bytes) up front, instead of a `DataLossError` in training.
    """
    with tf.io.gfile.GFile(path, "rb") as file:
        head = file.read(12)
    if not head:
        return
    if len(head) < 12 or _masked_crc32c(head[:8]) != int.from_bytes(
        head[8:12], "little"
    ):
        raise ValueError(
            f"{path}: not a TFRecord file (its first record's length "
            "checksum does not match); write shards with `keras-lit "
            "convert` or `tf.io.TFRecordWriter`"
        )


def _crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked_crc32c(data):
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
