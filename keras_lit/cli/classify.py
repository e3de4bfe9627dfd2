"""`keras-lit classify`: zero-shot classify image files into given labels."""

import os

from keras_lit.cli.common import CLIError
from keras_lit.cli.common import existing_path
from keras_lit.cli.common import import_tensorflow
from keras_lit.cli.common import load_lit_model
from keras_lit.cli.common import parse_labels

NAME = "classify"
HELP = "zero-shot classify images into given labels"


def add_arguments(parser):
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument(
        "--model", required=True, help="a .keras file or a SavedModel export"
    )
    parser.add_argument("--labels", help="comma-separated labels")
    parser.add_argument("--labels-file", help="one label per line")
    parser.add_argument("--template", action="append")
    parser.add_argument("--top-k", type=int, default=5)


def run(args):
    import_tensorflow()
    import numpy as np

    labels = parse_labels(args.labels, args.labels_file)
    if not labels:
        raise CLIError("Give the class labels with --labels a,b,c.")
    paths = [existing_path(p, "image") for p in args.images]
    image_bytes = []
    for path in paths:
        with open(path, "rb") as f:
            image_bytes.append(f.read())
        check_image_file(path, image_bytes[-1])
    model_path = existing_path(args.model, "--model")
    import tensorflow as tf

    try:
        if os.path.isdir(model_path):
            probabilities = classify_with_saved_model(
                model_path, image_bytes, labels
            )
        else:
            probabilities = classify_with_keras(
                model_path, image_bytes, labels, args.template or None
            )
    except tf.errors.InvalidArgumentError as error:
        raise CLIError(_name_the_image(error, paths)) from None
    top = min(args.top_k, len(labels))
    for path, row in zip(paths, probabilities):
        order = np.argsort(-row, kind="stable")[:top]
        print(os.path.basename(path))
        for rank, index in enumerate(order, 1):
            bar = "#" * int(round(30 * float(row[index])))
            print(f"  {rank}. {labels[index]:<30s} {row[index]:6.1%} {bar}")
    return 0


def check_image_file(path, data, max_pixels=None):
    """Raises `CLIError` naming `path` if it is not an image to decode.

    The rules every decode path applies (`keras_lit.image_header`,
    `keras_lit.image_frames`, `keras_lit.image_structure`), read in
    Python before any model loads.
    """
    from keras_lit.image_frames import frame_problem
    from keras_lit.image_header import FORMAT_NAMES
    from keras_lit.image_header import read_image_header
    from keras_lit.image_ops import DEFAULT_MAX_PIXELS
    from keras_lit.image_structure import jpeg_structure_ok
    from keras_lit.image_structure import png_structure_ok

    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    header = read_image_header(data)
    if not header.format:
        raise CLIError(f"{path}: not a {FORMAT_NAMES} image")
    if not header.readable:
        raise CLIError(f"{path}: unreadable {header.format} header")
    if header.pixels > max_pixels:
        raise CLIError(
            f"{path}: header claims {header.width}x{header.height} pixels, "
            f"over the limit of {max_pixels}"
        )
    structure = {"JPEG": jpeg_structure_ok, "PNG": png_structure_ok}
    check = structure.get(header.format)
    if check is not None and not check(data):
        raise CLIError(
            f"{path}: corrupt or truncated {header.format} (its markers or "
            "chunks are broken)"
        )
    problem = frame_problem(data, max_pixels)
    if problem is not None:
        raise CLIError(f"{path}: {problem}")


def _name_the_image(error, paths):
    """A TF error's message, with `image_bytes[i]` replaced by the file."""
    import re

    from keras_lit.app.backends import tensorflow_error_message

    lines = tensorflow_error_message(error).strip().splitlines() or [""]
    message = lines[-1].strip()
    message = re.sub(r"^assertion failed: \[(.*)\]$", r"\1", message)
    found = re.search(r"image_bytes\[(\d+)\]", message)
    if found and int(found.group(1)) < len(paths):
        return message.replace(found.group(0), paths[int(found.group(1))])
    return message


def classify_with_saved_model(path, image_bytes, labels):
    """Probabilities `[images, labels]` from an export's `zero_shot`."""
    import tensorflow as tf

    from keras_lit.export import load

    versions = [d for d in os.listdir(path) if d.isdigit()]
    if versions and not os.path.exists(os.path.join(path, "saved_model.pb")):
        path = os.path.join(path, max(versions, key=int))
    signatures = load(path)
    outputs = signatures["zero_shot"](
        image_bytes=tf.constant(image_bytes), class_names=tf.constant(labels)
    )
    return outputs["probabilities"].numpy()


def classify_with_keras(path, image_bytes, labels, templates):
    """Probabilities `[images, labels]` from a `.keras` LiTModel."""
    import numpy as np
    import tensorflow as tf

    from keras_lit import image_ops
    from keras_lit.zero_shot import build_zero_shot_weights

    model = load_lit_model(path)
    size = model.image_encoder.image_size
    # Round like the data pipeline and the SavedModel do.
    images = np.stack(
        [
            tf.round(
                image_ops.resize_and_crop(image_ops.decode_image(b), size)
            ).numpy()
            for b in image_bytes
        ]
    )
    weights = build_zero_shot_weights(model, labels, templates, verbose=False)
    logits = float(model.temperature) * model.encode_images(images) @ weights.T
    logits = logits - logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
