"""Reads image-text pairs from a CSV or TSV file of image paths and captions."""

import csv
import os

import tensorflow as tf

from keras_lit.data.image_files_reader import image_files_dataset
from keras_lit.data.pipeline import reader_arguments


def read_csv_pairs(
    path,
    image_column="image",
    text_column="caption",
    delimiter=None,
    image_root=None,
    group_captions=True,
):
    """Parses a CSV/TSV of image paths and captions into two lists.

    Args:
        path: the CSV (`,`) or TSV (`\\t`, chosen for `.tsv` files) file,
            with a header row.
        image_column: name of the column with image paths. Relative paths
            are relative to `image_root`.
        text_column: name of the caption column, or a list of names (each
            non-empty cell is one caption of the row's image).
        delimiter: optional one-character field separator; by default tab
            for `.tsv`/`.tab` files and comma otherwise.
        image_root: directory of relative image paths. Defaults to the
            directory of `path`.
        group_captions: bool. Merge rows naming the same image into one
            image with several captions (COCO-style files list one caption
            per row). Defaults to `True`.

    Returns:
        `(paths, captions)`: lists of image paths and of caption lists.

    Example:
    >>> paths, captions = read_csv_pairs("pairs.csv")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"`path` must be an existing CSV/TSV file. Received: path={path!r}"
        )
    if delimiter is None:
        is_tsv = path.lower().endswith((".tsv", ".tab"))
        delimiter = "\t" if is_tsv else ","
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(
            "`delimiter` must be a single character. "
            f"Received: delimiter={delimiter!r}"
        )
    text_columns = (
        [text_column] if isinstance(text_column, str) else list(text_column)
    )
    if image_root is None:
        image_root = os.path.dirname(path)
    image_root = os.fspath(image_root)
    order = []
    captions_by_image = {}
    try:
        with tf.io.gfile.GFile(path, "r") as file:
            reader = csv.DictReader(file, delimiter=delimiter)
            header = reader.fieldnames or []
            missing = [
                c for c in [image_column] + text_columns if c not in header
            ]
            if missing:
                raise ValueError(
                    f"Column(s) {missing} not found in {path!r}. The header "
                    f"has {header}; set `image_column`/`text_column`. "
                    f"Received: image_column={image_column!r}, "
                    f"text_column={text_column!r}"
                )
            for line, row in enumerate(reader, start=2):
                image = (row[image_column] or "").strip()
                if not image:
                    raise ValueError(
                        f"{path}, line {line}: empty `{image_column}` cell. "
                        f"Received row: {row!r}"
                    )
                texts = [row[c] for c in text_columns if row[c]]
                key = image if group_captions else len(order)
                if key not in captions_by_image:
                    captions_by_image[key] = []
                    order.append((key, image))
                captions_by_image[key].extend(texts)
    except UnicodeDecodeError as failure:
        raise ValueError(
            f"{path}: not a UTF-8 text file (undecodable byte at offset "
            f"{failure.start}); a CSV of image paths and captions must be "
            "UTF-8 text"
        ) from None
    except csv.Error as failure:
        raise ValueError(
            f"{path}: not a readable CSV file ({failure})"
        ) from None
    if not order:
        raise ValueError(f"{path!r} has a header but no rows.")
    paths = [_resolve(image, image_root) for _, image in order]
    captions = [captions_by_image[key] for key, _ in order]
    return paths, captions


def csv_dataset(
    path,
    image_size,
    image_column="image",
    text_column="caption",
    delimiter=None,
    image_root=None,
    group_captions=True,
    options=None,
    **kwargs,
):
    """Image-text pairs from a CSV/TSV file with image paths and captions.

    The file is parsed in Python (`read_csv_pairs`: header row, quoted
    fields, several caption columns, rows of one image merged); the images
    are read and decoded in `tf.data` as in `image_files_dataset`. Bad or
    missing images are skipped and counted in `dataset.skipped_images`.

    Args:
        path, image_column, text_column, delimiter, image_root,
            group_captions: see `read_csv_pairs`.
        image_size: `(height, width)` of the output images.
        options, **kwargs: as for `tfrecord_dataset`.

    Returns:
        A dataset as `tfrecord_dataset` returns.

    Example:
    >>> dataset = keras_lit.data.csv_dataset(  # doctest: +SKIP
    ...     "pairs.csv", image_size=(224, 224), batch_size=256, seed=0)
    """
    image_size, options = reader_arguments(image_size, options, kwargs)
    paths, captions = read_csv_pairs(
        path,
        image_column,
        text_column,
        delimiter,
        image_root,
        group_captions,
    )
    return image_files_dataset(paths, captions, image_size, options)


def _resolve(image, image_root):
    if "://" in image or os.path.isabs(image):
        return image
    if "://" in image_root:
        return image_root.rstrip("/") + "/" + image
    return os.path.join(image_root, image)
