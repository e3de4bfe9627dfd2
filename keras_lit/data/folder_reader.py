"""Reads image-text pairs from an image folder with JSON Lines captions."""

import json
import os

import tensorflow as tf

from keras_lit.data.image_files_reader import image_files_dataset
from keras_lit.data.pipeline import reader_arguments

CAPTION_FILES = ("captions.jsonl", "metadata.jsonl")


def read_folder_pairs(
    directory, captions_file=None, image_key="file_name", text_key="text"
):
    """Parses a folder's JSON Lines caption file into two lists.

    Each line is a JSON object naming an image (relative to `directory`)
    and its caption or captions, e.g.
    `{"file_name": "cat.jpg", "text": ["a cat", "a cat on a mat"]}`.
    This is also the layout of Hugging Face `imagefolder` datasets
    (`metadata.jsonl`).

    Args:
        directory: the image folder.
        captions_file: the JSONL file, absolute or relative to
            `directory`. Defaults to `captions.jsonl`, else `metadata.jsonl`.
        image_key: the key holding the image's relative path.
        text_key: the key holding a caption or a list of captions.

    Returns:
        `(paths, captions)`, as `read_csv_pairs` returns them.

    Example:
    >>> paths, captions = read_folder_pairs("photos/")  # doctest: +SKIP
    """
    directory = os.fspath(directory)
    if not tf.io.gfile.isdir(directory):
        raise ValueError(
            "`directory` must be an existing folder. "
            f"Received: directory={directory!r}"
        )
    if captions_file is None:
        candidates = [os.path.join(directory, c) for c in CAPTION_FILES]
        found = [c for c in candidates if tf.io.gfile.exists(c)]
        if not found:
            raise ValueError(
                f"No caption file in {directory!r}: expected one of "
                f"{list(CAPTION_FILES)} or an explicit `captions_file`."
            )
        captions_file = found[0]
    elif not os.path.isabs(captions_file) and "://" not in captions_file:
        captions_file = os.path.join(directory, captions_file)
    if not tf.io.gfile.exists(captions_file):
        raise ValueError(
            "`captions_file` must exist. "
            f"Received: captions_file={captions_file!r}"
        )
    paths, captions = [], []
    with tf.io.gfile.GFile(captions_file, "r") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            where = f"{captions_file}, line {line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: invalid JSON ({error}).") from None
            if not isinstance(record, dict) or image_key not in record:
                raise ValueError(
                    f"{where}: each line must be a JSON object with the "
                    f"image key {image_key!r}. Received: {line.strip()[:200]}"
                )
            texts = record.get(text_key, [])
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(
                isinstance(t, str) for t in texts
            ):
                raise ValueError(
                    f"{where}: {text_key!r} must be a string or a list of "
                    f"strings. Received: {texts!r}"
                )
            paths.append(os.path.join(directory, str(record[image_key])))
            captions.append(texts)
    if not paths:
        raise ValueError(f"{captions_file!r} lists no images.")
    return paths, captions


def folder_dataset(
    directory,
    image_size,
    captions_file=None,
    image_key="file_name",
    text_key="text",
    options=None,
    **kwargs,
):
    """Image-text pairs from an image folder with JSON Lines captions.

    See `read_folder_pairs` for the caption file. Images are read and
    decoded in `tf.data` as in `image_files_dataset`; missing, corrupt,
    truncated, empty or oversized images and images without a caption are
    skipped and counted in `dataset.skipped_images`.

    Args:
        directory, captions_file, image_key, text_key: see
            `read_folder_pairs`.
        image_size, options, **kwargs: as for `tfrecord_dataset`, which
            describes the dataset returned too.

    Example:
    >>> dataset = keras_lit.data.folder_dataset(  # doctest: +SKIP
    ...     "photos/", image_size=(224, 224), batch_size=256, seed=0)
    """
    image_size, options = reader_arguments(image_size, options, kwargs)
    paths, captions = read_folder_pairs(
        directory, captions_file, image_key, text_key
    )
    return image_files_dataset(paths, captions, image_size, options)
