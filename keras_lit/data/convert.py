"""Converts CSV/TSV and image-folder datasets into sharded TFRecords.

Typical usage:

    python -m keras_lit.data.convert csv pairs.csv out/ \
        --image-column image --text-column caption --examples-per-shard 1000
    python -m keras_lit.data.convert folder photos/ out/ \
        --captions-file captions.jsonl

Image bytes are stored as they are (no re-encoding) under `image/encoded`,
with every caption of the image under `text`; `tfrecord_dataset` reads the
result. Each shard is written to a temporary file and renamed when complete,
so a crash never leaves a half-written shard under its final name.
"""

import argparse
import collections
import concurrent.futures
import inspect
import math
import os
import sys

import tensorflow as tf
from tqdm import tqdm

from keras_lit.command_line import run_command_line
from keras_lit.data.csv_reader import read_csv_pairs
from keras_lit.data.example_format import serialize_example
from keras_lit.data.folder_reader import read_folder_pairs
from keras_lit.image_ops import DEFAULT_MAX_PIXELS
from keras_lit.image_ops import decode_image


def write_tfrecords(
    paths,
    captions,
    output_dir,
    prefix="train",
    examples_per_shard=1000,
    validate=False,
    max_pixels=DEFAULT_MAX_PIXELS,
    overwrite=False,
    num_threads=8,
    verbose=True,
):
    """Writes image files and their captions as sharded TFRecords.

    Shards are named `{prefix}-00000-of-00012.tfrecord`. Missing and empty
    image files and images without a caption are skipped and counted; with
    `validate=True` every image is also decoded (with the `max_pixels`
    header limit) and undecodable ones are skipped, otherwise the readers
    skip them at training time.

    Args:
        paths: list of image paths.
        captions: list of captions, each a string or a list of strings.
        output_dir: directory for the shards (created if needed).
        prefix: shard file prefix, e.g. `"train"` or `"val"`.
        examples_per_shard: int. Images per shard. Defaults to `1000`.
        validate: bool. Decode every image before writing it.
        max_pixels: int. Pixel limit for `validate`.
        overwrite: bool. Replace existing `{prefix}-*` shards.
        num_threads: int. Threads reading image files.
        verbose: bool. Show a progress bar and a summary.

    Returns:
        A dict: `files` (shard paths), `num_examples`, and `skipped`
        (`{"missing": n, "empty": n, "no_caption": n, "corrupt": n}`).

    Example:
    >>> write_tfrecords(["a.jpg"], ["a cat"], "out/")  # doctest: +SKIP
    """
    if len(paths) != len(captions):
        raise ValueError(
            "`paths` and `captions` must have the same length. Received: "
            f"len(paths)={len(paths)}, len(captions)={len(captions)}"
        )
    if not paths:
        raise ValueError("`paths` must list at least one image. Received: []")
    if not isinstance(examples_per_shard, int) or examples_per_shard < 1:
        raise ValueError(
            "`examples_per_shard` must be a positive int. "
            f"Received: examples_per_shard={examples_per_shard!r}"
        )
    output_dir = os.fspath(output_dir)
    tf.io.gfile.makedirs(output_dir)
    existing = tf.io.gfile.glob(os.path.join(output_dir, f"{prefix}-*"))
    if existing and not overwrite:
        raise ValueError(
            f"{output_dir!r} already holds {len(existing)} '{prefix}-*' "
            "file(s). Pass `overwrite=True` (`--overwrite`) or choose "
            f"another `output_dir`/`prefix`. Received: prefix={prefix!r}"
        )
    for name in existing:
        tf.io.gfile.remove(name)
    num_shards = max(1, math.ceil(len(paths) / examples_per_shard))
    files = [
        os.path.join(
            output_dir, f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord"
        )
        for i in range(num_shards)
    ]
    skipped = {"missing": 0, "empty": 0, "no_caption": 0, "corrupt": 0}
    written = 0
    progress = tqdm(
        total=len(paths), unit="img", desc="convert", disable=not verbose
    )
    with concurrent.futures.ThreadPoolExecutor(num_threads) as executor:
        contents = _read_ahead(executor, paths, 4 * num_threads)
        writer = None
        for index, (path, texts, image_bytes) in enumerate(
            zip(paths, captions, contents)
        ):
            shard = index // examples_per_shard
            if index % examples_per_shard == 0:
                if writer is not None:
                    _close(writer, files[shard - 1])
                writer = tf.io.TFRecordWriter(files[shard] + ".tmp")
            progress.update(1)
            texts = [texts] if isinstance(texts, str) else list(texts)
            texts = [t for t in texts if t and t.strip()]
            reason = _problem(image_bytes, texts, validate, max_pixels)
            if reason:
                skipped[reason] += 1
                continue
            writer.write(serialize_example(image_bytes, texts, path))
            written += 1
        if writer is not None:
            _close(writer, files[-1])
    progress.close()
    summary = {"files": files, "num_examples": written, "skipped": skipped}
    if verbose:
        details = ", ".join(f"{v} {k}" for k, v in skipped.items() if v)
        print(
            f"Wrote {written} images to {num_shards} shard(s) in "
            f"{output_dir}" + (f"; skipped {details}" if details else "")
        )
    return summary


def convert_csv(path, output_dir, **kwargs):
    """A CSV/TSV of image paths and captions -> sharded TFRecords.

    Args:
        path: the CSV or TSV file.
        output_dir: directory for the shards.
        **kwargs: the options of `keras_lit.data.read_csv_pairs`
            (`image_column`, `text_column`, `delimiter`, `image_root`,
            `group_captions`) and of `write_tfrecords` (`prefix`,
            `examples_per_shard`, `validate`, `overwrite`, `verbose`, ...).

    Example:
    >>> convert_csv("pairs.csv", "out/", examples_per_shard=1000)  # +SKIP
    """
    read_options, write_options = _split_options(read_csv_pairs, kwargs)
    paths, captions = read_csv_pairs(path, **read_options)
    return write_tfrecords(paths, captions, output_dir, **write_options)


def convert_folder(directory, output_dir, **kwargs):
    """An image folder with JSON Lines captions -> sharded TFRecords.

    Args:
        directory: the image folder.
        output_dir: directory for the shards.
        **kwargs: the options of `keras_lit.data.read_folder_pairs`
            (`captions_file`, `image_key`, `text_key`) and of
            `write_tfrecords`.

    Example:
    >>> convert_folder("photos/", "out/")  # doctest: +SKIP
    """
    read_options, write_options = _split_options(read_folder_pairs, kwargs)
    paths, captions = read_folder_pairs(directory, **read_options)
    return write_tfrecords(paths, captions, output_dir, **write_options)


def _split_options(reader, options):
    """`options` -> (those `reader` takes, the others for write_tfrecords)."""
    names = set(inspect.signature(reader).parameters)
    read = {k: v for k, v in options.items() if k in names}
    write = {k: v for k, v in options.items() if k not in names}
    return read, write


def _read_ahead(executor, paths, window):
    """Yields file contents in order, reading at most `window` ahead."""
    pending = collections.deque()
    for path in paths:
        pending.append(executor.submit(_read_bytes, path))
        if len(pending) > window:
            yield pending.popleft().result()
    for future in pending:
        yield future.result()


def _read_bytes(path):
    try:
        with tf.io.gfile.GFile(path, "rb") as file:
            return file.read()
    except (tf.errors.OpError, OSError):
        return None


def _problem(image_bytes, texts, validate, max_pixels):
    if image_bytes is None:
        return "missing"
    if not image_bytes:
        return "empty"
    if not texts:
        return "no_caption"
    if validate:
        try:
            decode_image(image_bytes, max_pixels)
        except tf.errors.OpError:
            return "corrupt"
    return None


def _close(writer, file_name):
    writer.close()
    tf.io.gfile.rename(file_name + ".tmp", file_name, overwrite=True)


def build_parser(parser=None):
    """The argument parser of the converter (reusable as a subcommand)."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m keras_lit.data.convert",
        description="Convert image-text pairs into sharded TFRecords.",
    )
    formats = parser.add_subparsers(dest="format", required=True)
    csv_parser = formats.add_parser(
        "csv", help="a CSV/TSV file of image paths and captions"
    )
    csv_parser.add_argument("path", help="the CSV or TSV file")
    csv_parser.add_argument("output_dir")
    csv_parser.add_argument("--image-column", default="image")
    csv_parser.add_argument(
        "--text-column",
        action="append",
        help="caption column; repeat for several (default: caption)",
    )
    csv_parser.add_argument("--delimiter", default=None)
    csv_parser.add_argument(
        "--image-root", default=None, help="directory of relative paths"
    )
    csv_parser.add_argument(
        "--no-group",
        action="store_true",
        help="keep rows naming the same image as separate examples",
    )
    folder_parser = formats.add_parser(
        "folder", help="an image folder with JSON Lines captions"
    )
    folder_parser.add_argument("directory")
    folder_parser.add_argument("output_dir")
    folder_parser.add_argument("--captions-file", default=None)
    folder_parser.add_argument("--image-key", default="file_name")
    folder_parser.add_argument("--text-key", default="text")
    for sub in (csv_parser, folder_parser):
        sub.add_argument("--prefix", default="train")
        sub.add_argument("--examples-per-shard", type=int, default=1000)
        sub.add_argument(
            "--validate",
            action="store_true",
            help="decode every image and skip the undecodable ones",
        )
        sub.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
        sub.add_argument("--overwrite", action="store_true")
        sub.add_argument("--quiet", action="store_true")
    return parser


def run(args):
    """Runs a parsed command line; returns the `write_tfrecords` summary."""
    options = dict(
        prefix=args.prefix,
        examples_per_shard=args.examples_per_shard,
        validate=args.validate,
        max_pixels=args.max_pixels,
        overwrite=args.overwrite,
        verbose=not args.quiet,
    )
    if args.format == "csv":
        return convert_csv(
            args.path,
            args.output_dir,
            image_column=args.image_column,
            text_column=args.text_column or "caption",
            delimiter=args.delimiter,
            image_root=args.image_root,
            group_captions=not args.no_group,
            **options,
        )
    return convert_folder(
        args.directory,
        args.output_dir,
        captions_file=args.captions_file,
        image_key=args.image_key,
        text_key=args.text_key,
        **options,
    )


def main(argv=None):
    """Command-line entry point; returns the process exit code."""
    return run_command_line(build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
