"""The image-text pipeline shared by every `keras_lit.data` reader.

A reader describes its data as *units* (a TFRecord file, or the whole CSV /
folder / tfds split) and two functions: `read_unit(unit, unit_seed)` gives
the unit's raw payloads, and `load(payload)` turns one payload into
`(image_bytes, captions)`. This module does the rest, in pure `tf.data`:

1. Each unit gets a per-pass seed from a seeded `tf.random.Generator`, drawn
   in a sequential map, so runs with the same `seed` are identical and each
   epoch still draws new crops and captions. Per-example seeds are folded in
   from the unit seed and the example's index, so parallel decoding stays
   deterministic.
2. Each unit's payloads are enumerated, an end-of-unit sentinel is appended,
   and a parallel, ordered map checks the header (empty, over the pixel
   limit, no caption) and decodes, augments, resizes and crops what passes.
   Anything that raises (corrupt or truncated bytes, unknown format, a
   missing file, an unparsable record) is dropped by `ignore_errors`.
3. A sequential `scan` sees the surviving indices: a gap between two
   consecutive indices is the number of examples `ignore_errors` dropped.
   It adds those and the header statuses to a `SkippedImages` counter (a
   `tf.Variable`), and the sentinel flushes the gap at the end of the unit.

Decoding lives inside the per-unit function, so the outer graph is a plain
file list -> interleave: `tf.distribute` FILE auto-sharding still finds the
file source (it cannot see through `ignore_errors` or a second source).
"""

import tensorflow as tf

from keras_lit.data.augment import inception_crop
from keras_lit.data.reader_options import ReaderOptions
from keras_lit.data.skipped_images import SkippedImages
from keras_lit.image_frames import assert_frames_tf
from keras_lit.image_ops import image_header_size
from keras_lit.image_ops import resize_and_crop

OK, SENTINEL, EMPTY, TOO_LARGE, NO_CAPTION = range(5)
# Random ops under these scopes pick seeds and captions, not image content:
# `keras_lit.precompute` ignores them when it looks for augmentation.
SEED_SCOPE = "keras_lit_seed"
AUGMENT_SCOPE = "keras_lit_augment"
DATA = tf.data.experimental.AutoShardPolicy.DATA
FILE = tf.data.experimental.AutoShardPolicy.FILE


def validate_image_size(image_size):
    """`image_size` as `(height, width)`; an int means a square.

    Raises a `ValueError` naming the argument and the received value.
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    try:
        image_size = tuple(int(v) for v in image_size)
    except (TypeError, ValueError):
        image_size = None
    if image_size is None or len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(
            "`image_size` must be `(height, width)` with positive ints, "
            "e.g. `model.image_encoder.image_size`. "
            f"Received: image_size={image_size!r}"
        )
    return image_size


def reader_arguments(image_size, options, overrides):
    """A reader's `image_size`, `options` and keyword arguments, checked.

    Returns `(image_size, ReaderOptions)`; the keyword arguments override
    the fields of `options`.
    """
    image_size = validate_image_size(image_size)
    return image_size, ReaderOptions.from_arguments(options, **overrides)


def validate_options(image_size, **options):
    """Checks `image_size` and reader options; returns image_size.

    Kept for callers of the keyword form; see `ReaderOptions`.
    """
    image_size, _ = reader_arguments(image_size, None, options)
    return image_size


def image_text_dataset(
    units,
    read_unit,
    load,
    image_size,
    options,
    shuffle_decoded=True,
    cycle_length=1,
    auto_shard_policy=DATA,
):
    """Builds the pipeline (see the module docstring).

    Args:
        units: a `tf.data.Dataset` of unit descriptors (e.g. file names).
        read_unit: `read_unit(unit, unit_seed) -> tf.data.Dataset` of
            payloads (a string or a dict of tensors, never a tuple).
        load: `load(payload) -> (image_bytes, captions)`, TF ops that may
            raise on bad data.
        image_size: `(height, width)` of the output images.
        options: a `ReaderOptions`.
        shuffle_decoded: shuffle decoded examples with a buffer (readers
            that shuffle payloads themselves pass False).
        cycle_length: units decoded in parallel. 1 keeps the units' order.
        auto_shard_policy: the `tf.data` auto-shard policy of the output.

    Returns:
        A `tf.data.Dataset` of `{"images": uint8 [H, W, 3], "texts": string}`
        (batched if `batch_size`), with attributes `skipped_images` and
        `image_size`.
    """
    image_size = validate_image_size(image_size)
    shuffle, seed, caption = options.shuffle, options.seed, options.caption
    batch_size, augment = options.batch_size, options.augment
    skipped_images = options.skipped_images or SkippedImages()
    decode = _decoder(image_size, load, augment, caption, options.max_pixels)

    def unit_examples(unit, unit_seed):
        payloads = read_unit(unit, unit_seed)
        return _decode_and_count(
            payloads,
            unit_seed,
            decode,
            skipped_images,
            options.num_parallel_calls,
        )

    if shuffle and cycle_length > 1:
        units = units.shuffle(
            units.cardinality(), seed=seed, reshuffle_each_iteration=True
        )
    needs_seeds = shuffle or augment is not None or caption == "random"
    units = with_unit_seeds(units, seed, needs_seeds)
    if cycle_length > 1:
        dataset = units.interleave(
            unit_examples,
            cycle_length=cycle_length,
            num_parallel_calls=options.num_parallel_calls,
            deterministic=True,
        )
    else:
        dataset = units.flat_map(unit_examples)
    if shuffle and shuffle_decoded:
        dataset = dataset.shuffle(
            options.shuffle_buffer_size,
            seed=seed,
            reshuffle_each_iteration=True,
        )
    if batch_size is not None:
        if caption == "all":
            dataset = dataset.ragged_batch(
                batch_size, drop_remainder=options.drop_remainder
            )
        else:
            dataset = dataset.batch(
                batch_size, drop_remainder=options.drop_remainder
            )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    data_options = tf.data.Options()
    data_options.deterministic = True
    data_options.experimental_distribute.auto_shard_policy = auto_shard_policy
    dataset = dataset.with_options(data_options)
    dataset.skipped_images = skipped_images
    dataset.image_size = image_size
    return dataset


def with_unit_seeds(units, seed, draws=True):
    """Pairs each unit with a new seed on every pass: `(unit, seed [2])`.

    The seeds come from one `tf.random.Generator` (from `seed`, or
    non-deterministic if `seed` is None) in a sequential map; without
    `draws` every seed is zeros. Under the `SEED_SCOPE` name scope, so
    `keras_lit.precompute` does not take them for augmentation.
    """
    generator = None
    if draws:
        generator = (
            tf.random.Generator.from_non_deterministic_state()
            if seed is None
            else tf.random.Generator.from_seed(seed)
        )

    def with_seed(unit):
        with tf.name_scope(SEED_SCOPE):
            if generator is None:
                return unit, tf.zeros([2], tf.int64)
            return unit, generator.make_seeds(1)[:, 0]

    return units.map(with_seed)


def single_unit_dataset(read_unit, load, image_size, options, **kwargs):
    """`image_text_dataset` over one unit (a whole list or split), DATA-sharded.

    `read_unit(unit, unit_seed)` is called with a dummy unit; other keyword
    arguments go to `image_text_dataset`.
    """
    return image_text_dataset(
        tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)),
        read_unit,
        load,
        image_size,
        options,
        auto_shard_policy=DATA,
        **kwargs,
    )


def _decoder(image_size, load, augment, caption, max_pixels):
    """`decode(payload, seed) -> (status, image, texts)`; may raise."""
    placeholder_image = tf.zeros(image_size + (3,), tf.uint8)
    no_text = tf.zeros([0] if caption == "all" else [], tf.string)

    def process(image_bytes, seed):
        # The header was checked by `decode`; `image_ops.decode_image` would
        # parse it again (its nested conds cost ~0.1 s per iterator). GIF
        # frames (which the header does not bound) and animated WebP are
        # checked here: a failure drops the image, counted as corrupt.
        image_bytes = assert_frames_tf(image_bytes, max_pixels)
        image = tf.io.decode_image(
            image_bytes, channels=3, expand_animations=False
        )
        image.set_shape([None, None, 3])
        if augment == "inception_crop":
            image = inception_crop(image, image_size, seed)
        elif augment is not None:
            with tf.name_scope(AUGMENT_SCOPE):
                image = augment(image, seed)
            image = resize_and_crop(image, image_size)
        else:
            image = resize_and_crop(image, image_size)
        image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
        return tf.reshape(tf.cast(image, tf.uint8), image_size + (3,))

    def select(texts, seed):
        if caption == "all":
            return texts
        if caption == "first":
            return texts[0]
        with tf.name_scope(SEED_SCOPE):
            index = tf.random.stateless_uniform(
                [], seed, 0, tf.size(texts), dtype=tf.int32
            )
        return texts[index]

    def decode(payload, seed):
        with tf.name_scope(SEED_SCOPE):
            image_seed = tf.random.experimental.stateless_fold_in(seed, 0)
            text_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        image_bytes, texts = load(payload)
        image_bytes = tf.reshape(tf.convert_to_tensor(image_bytes), [])
        texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
        texts = tf.boolean_mask(
            texts, tf.strings.length(tf.strings.strip(texts)) > 0
        )
        height, width = image_header_size(image_bytes)
        status = tf.where(
            tf.strings.length(image_bytes) == 0,
            EMPTY,
            tf.where(
                height * width > max_pixels,
                TOO_LARGE,
                tf.where(tf.size(texts) == 0, NO_CAPTION, OK),
            ),
        )
        image = tf.cond(
            status == OK,
            lambda: process(image_bytes, image_seed),
            lambda: placeholder_image,
        )
        text = tf.cond(
            status == OK, lambda: select(texts, text_seed), lambda: no_text
        )
        return status, image, text

    def placeholder():
        return tf.constant(SENTINEL), placeholder_image, no_text

    return decode, placeholder


def _decode_and_count(payloads, unit_seed, decoder, counter, parallel_calls):
    decode, placeholder = decoder
    end = tf.nest.map_structure(
        lambda spec: tf.zeros([d or 0 for d in spec.shape], spec.dtype),
        payloads.element_spec,
    )
    flagged = payloads.map(lambda payload: (payload, tf.constant(False)))
    flagged = flagged.concatenate(
        tf.data.Dataset.from_tensors((end, tf.constant(True)))
    )

    def decode_indexed(index, item):
        payload, is_end = item
        with tf.name_scope(SEED_SCOPE):
            seed = tf.random.experimental.stateless_fold_in(unit_seed, index)
        status, image, text = tf.cond(
            is_end, placeholder, lambda: decode(payload, seed)
        )
        return {
            "index": index,
            "status": status,
            "images": image,
            "texts": text,
        }

    decoded = flagged.enumerate().map(
        decode_indexed, num_parallel_calls=parallel_calls, deterministic=True
    )
    decoded = decoded.ignore_errors()

    def count(last_index, element):
        status = element["status"]
        dropped = element["index"] - last_index - 1
        deltas = tf.stack(
            [
                tf.cast(status == OK, tf.int64),
                dropped,
                tf.cast(status == EMPTY, tf.int64),
                tf.cast(status == TOO_LARGE, tf.int64),
                tf.cast(status == NO_CAPTION, tf.int64),
            ]
        )
        counter.add(deltas)
        return element["index"], element

    counted = decoded.scan(tf.constant(-1, tf.int64), count)
    counted = counted.filter(lambda element: element["status"] == OK)
    return counted.map(
        lambda element: {
            "images": element["images"],
            "texts": element["texts"],
        }
    )
