"""`keras-lit`: train, precompute, evaluate, export, classify and demo.

Every subcommand prints one clear line and exits with status 2 on a user
error (a bad config key, a missing path, an unknown tower name); `--debug`
shows the full traceback instead.

Each subcommand is one module of this package with `NAME`, `HELP`,
`add_arguments(parser)` and `run(args) -> exit code`; `COMMANDS` lists them
in the order `keras-lit --help` shows them. Adding a subcommand means
writing its module and adding it to `COMMANDS`.
"""

import argparse
import importlib
import sys

from keras_lit.cli.classify import classify_with_keras
from keras_lit.cli.classify import classify_with_saved_model
from keras_lit.cli.common import IMAGE_SUFFIXES
from keras_lit.cli.common import CLIError
from keras_lit.cli.common import import_tensorflow
from keras_lit.cli.common import load_lit_model
from keras_lit.cli.common import log
from keras_lit.cli.common import parse_labels
from keras_lit.cli.evaluate import read_class_folders
from keras_lit.cli.towers import build_image_encoder
from keras_lit.cli.towers import build_text_encoder
from keras_lit.cli.train import check_steps_per_execution
from keras_lit.cli.train import make_optimizer
from keras_lit.cli.train import resolve_jit_compile
from keras_lit.cli.train_data import image_text_dataset
from keras_lit.cli.train_data import read_captions

# The subcommands, one module each, in `--help` order.
COMMANDS = (
    "keras_lit.cli.train",
    "keras_lit.cli.precompute",
    "keras_lit.cli.convert",
    "keras_lit.cli.evaluate",
    "keras_lit.cli.import_checkpoint",
    "keras_lit.cli.export",
    "keras_lit.cli.classify",
    "keras_lit.cli.app",
    "keras_lit.cli.demo",
)


def build_parser():
    """The `keras-lit` parser with one subparser per module in `COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="keras-lit",
        description="LiT: lock an image model, teach a text model to match.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(name)
        command = commands.add_parser(module.NAME, help=module.HELP)
        module.add_arguments(command)
        command.set_defaults(function=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        return args.function(args)
    from keras_lit.config import ConfigError

    try:
        return args.function(args)
    except (CLIError, ConfigError) as error:
        print(f"keras-lit: error: {error}", file=sys.stderr)
    except (ValueError, OSError, ImportError) as error:
        message = str(error).strip().splitlines()[0] if str(error) else ""
        print(
            f"keras-lit: error: {type(error).__name__}: {message}",
            file=sys.stderr,
        )
    except KeyboardInterrupt:
        print("keras-lit: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # TF errors are named below; others raise
        if not _is_tensorflow_error(error):
            raise
        print(
            f"keras-lit: error: {type(error).__name__}: "
            f"{_first_line(error)} (--debug shows the traceback)",
            file=sys.stderr,
        )
    return 2


def _is_tensorflow_error(error):
    """A `tf.errors.OpError` (e.g. `DataLossError`), without importing TF."""
    return any(
        cls.__module__.startswith("tensorflow") and cls.__name__ == "OpError"
        for cls in type(error).__mro__
    )


def _first_line(error):
    """The informative line of a TF error: no graph or node internals."""
    from keras_lit.app.backends import tensorflow_error_message

    lines = tensorflow_error_message(error).strip().splitlines() or [""]
    return lines[-1].strip()
