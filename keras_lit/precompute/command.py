"""The precompute command line (`keras-lit precompute`).

Typical usage:

    python -m keras_lit.precompute --model lit.keras \
        --tfrecords "pairs/train-*.tfrecord" embeddings/
"""

import argparse

import keras

from keras_lit.command_line import run_command_line
from keras_lit.precompute.tower import locked_image_encoder
from keras_lit.precompute.writer import DTYPES
from keras_lit.precompute.writer import precompute_image_embeddings


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
    image_encoder = locked_image_encoder(model)
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
    return run_command_line(build_parser, run, argv)
