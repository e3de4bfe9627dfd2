"""Reads image-text pairs from image files listed in memory."""

import os

import numpy as np
import tensorflow as tf

from keras_lit.data.pipeline import reader_arguments
from keras_lit.data.pipeline import single_unit_dataset


def image_files_dataset(paths, captions, image_size, options=None, **kwargs):
    """Image-text pairs from a list of image files and their captions.

    The building block of `csv_dataset` and `folder_dataset`, usable on its
    own. Files are read and decoded in `tf.data` (local paths or any
    filesystem TensorFlow reads, e.g. `gs://`). Missing, unreadable, corrupt,
    truncated, empty or oversized images and images without a caption are
    skipped and counted in `dataset.skipped_images`. The list is shuffled as
    a whole each epoch. The dataset uses DATA auto-sharding under
    multi-worker strategies. The file list lives in the dataset graph: for
    millions of images, convert to TFRecords (`keras_lit.data.convert`).

    Args:
        paths: list of N image paths.
        captions: list of N captions; each a string or a list of strings
            (one is sampled per step with `caption="random"`).
        image_size: `(height, width)` of the output images.
        options, **kwargs: as for `tfrecord_dataset`.

    Returns:
        A dataset as `tfrecord_dataset` returns.

    Example:
    >>> dataset = image_files_dataset(  # doctest: +SKIP
    ...     ["a.jpg", "b.png"], ["a cat", ["a dog", "a puppy"]],
    ...     image_size=(224, 224), batch_size=2)
    """
    image_size, options = reader_arguments(image_size, options, kwargs)
    paths = [os.fspath(p) for p in paths]
    captions = list(captions)
    if len(paths) != len(captions):
        raise ValueError(
            "`paths` and `captions` must have the same length. "
            f"Received: len(paths)={len(paths)}, "
            f"len(captions)={len(captions)}"
        )
    if not paths:
        raise ValueError("`paths` must list at least one image. Received: []")
    caption_lists = [_caption_list(c, i) for i, c in enumerate(captions)]
    rows = {
        "path": np.array(paths, dtype=object),
        "texts": _pad(caption_lists),
    }
    num_rows = len(paths)

    def read_unit(unit, unit_seed):
        dataset = tf.data.Dataset.from_tensor_slices(rows)
        if options.shuffle:
            dataset = dataset.shuffle(num_rows, seed=unit_seed[0])
        return dataset

    def load(row):
        return tf.io.read_file(row["path"]), row["texts"]

    return single_unit_dataset(
        read_unit, load, image_size, options, shuffle_decoded=False
    )


def _caption_list(value, index):
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (str, bytes)) for v in value
    ):
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]
    raise ValueError(
        "Each caption must be a string or a list of strings. "
        f"Received: captions[{index}]={value!r}"
    )


def _pad(caption_lists):
    """Lists of captions -> a dense `[N, max]` array padded with ''."""
    width = max(1, max(len(c) for c in caption_lists))
    table = np.full((len(caption_lists), width), "", dtype=object)
    for row, values in enumerate(caption_lists):
        table[row, : len(values)] = values
    return table
