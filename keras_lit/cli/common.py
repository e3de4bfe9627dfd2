"""What every `keras-lit` subcommand shares: the user error, logging, paths."""

import glob
import importlib
import os

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


class CLIError(Exception):
    """A user error, shown as one line."""


def import_tensorflow():
    # `import keras_lit` already started TF with its C++ logs hidden.
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def log(message):
    print(f"[keras-lit] {message}", flush=True)


def existing_path(path, what):
    """`path` with `~` expanded; a `CLIError` if it matches nothing."""
    if not path:
        raise CLIError(f"{what} is not set.")
    if not glob.glob(os.path.expanduser(str(path))):
        raise CLIError(f"{what}: no such file or directory: {path}")
    return os.path.expanduser(str(path))


def load_lit_model(path):
    """The `LiTModel` in a `.keras` file or a LiT preset given as `--model`."""
    import keras

    from keras_lit.models import LiTModel

    path = existing_path(path, "--model")
    if os.path.isdir(path) and os.path.exists(
        os.path.join(path, "config.json")
    ):
        # A LiT preset (`save_to_preset`, `keras-lit import`).
        return LiTModel.from_preset(path)
    if os.path.isdir(path):
        raise CLIError(
            f"--model must be a .keras file of a LiTModel or a LiT preset "
            f"directory; {path} is neither (SavedModels work with `classify` "
            "only)."
        )
    model = keras.saving.load_model(path)
    if not isinstance(model, LiTModel):
        raise CLIError(
            f"--model must hold a LiTModel. Received: {type(model).__name__}"
        )
    return model


def parse_labels(text, path=None):
    """Labels from a comma-separated string and/or a one-per-line file."""
    labels = []
    if path:
        with open(existing_path(path, "--labels-file"), encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
    if text:
        labels += [label.strip() for label in text.split(",") if label.strip()]
    return labels


def delegated_command(module_name, returns_exit_code=False):
    """`add_arguments` and `run` of a subcommand that another module runs.

    That module has `build_parser(parser)` and `run(args)`; its `run`
    returns an exit code (`returns_exit_code`) or anything else, e.g. a
    summary (exit code 0). It is imported only when needed.
    """

    def add_arguments(parser):
        importlib.import_module(module_name).build_parser(parser)

    def run(args):
        import_tensorflow()
        result = importlib.import_module(module_name).run(args)
        return (result or 0) if returns_exit_code else 0

    return add_arguments, run
