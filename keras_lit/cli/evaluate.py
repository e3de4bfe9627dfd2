"""`keras-lit evaluate`: zero-shot classification or retrieval."""

import os

from keras_lit.cli.common import IMAGE_SUFFIXES
from keras_lit.cli.common import CLIError
from keras_lit.cli.common import existing_path
from keras_lit.cli.common import import_tensorflow
from keras_lit.cli.common import load_lit_model

NAME = "evaluate"
HELP = "zero-shot or retrieval"


def add_arguments(parser):
    parser.add_argument("--model", required=True, help="a .keras LiTModel")
    parser.add_argument(
        "--task", choices=["zero-shot", "retrieval"], default="zero-shot"
    )
    parser.add_argument("--tfds", help="a tfds classification dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--class-folders", help="a folder with one subfolder per class"
    )
    parser.add_argument("--data", help="TFRecord shards (retrieval)")
    parser.add_argument(
        "--template", action="append", help="prompt template with {}"
    )


def run(args):
    import_tensorflow()
    from keras_lit import zero_shot

    model = load_lit_model(args.model)
    templates = args.template or None
    if args.task == "zero-shot":
        if args.tfds:
            results = zero_shot.evaluate_zero_shot_tfds(
                model, args.tfds, split=args.split, templates=templates
            )
        else:
            folder = existing_path(args.class_folders, "--class-folders")
            images, labels, class_names = read_class_folders(
                folder, model.image_encoder.image_size
            )
            results = zero_shot.evaluate_zero_shot(
                model,
                {"images": images, "labels": labels},
                class_names,
                templates=templates,
            )
    else:
        from keras_lit import data as lit_data

        pattern = existing_path(args.data, "--data")
        dataset = lit_data.tfrecord_dataset(
            pattern,
            image_size=model.image_encoder.image_size,
            shuffle=False,
            caption="all",
        )
        results = zero_shot.evaluate_retrieval(model, dataset)
    print_scores(results)
    return 0


def print_scores(results):
    """Prints the scalar results, one `name  value` line each."""
    import numpy as np

    for key, value in results.items():
        if isinstance(value, (int, float, np.floating)):
            print(f"{key:>24s}  {float(value):.4f}")


def read_class_folders(folder, image_size):
    """`folder/<class name>/*.png` -> images, labels, class names."""
    import numpy as np
    import tensorflow as tf

    from keras_lit import image_ops

    class_names = sorted(
        d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))
    )
    if not class_names:
        raise CLIError(f"--class-folders has no class subfolders: {folder}")
    images, labels = [], []
    for index, name in enumerate(class_names):
        for file in sorted(os.listdir(os.path.join(folder, name))):
            if not file.lower().endswith(IMAGE_SUFFIXES):
                continue
            with open(os.path.join(folder, name, file), "rb") as f:
                image = image_ops.decode_image(f.read())
            image = image_ops.resize_and_crop(image, image_size)
            images.append(tf.round(image).numpy().astype("uint8"))
            labels.append(index)
    if not images:
        raise CLIError(f"--class-folders holds no images: {folder}")
    return np.stack(images), labels, class_names
