"""`keras-lit export`: a SavedModel for TF Serving."""

from keras_lit.cli.common import import_tensorflow
from keras_lit.cli.common import load_lit_model
from keras_lit.cli.common import log
from keras_lit.cli.common import parse_labels

NAME = "export"
HELP = "SavedModel for TF Serving"


def add_arguments(parser):
    parser.add_argument(
        "--model", required=True, help="a .keras LiTModel or a LiT preset"
    )
    parser.add_argument("--output", required=True, help="export directory")
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--class-names", help="comma-separated labels")
    parser.add_argument("--class-names-file", help="one label per line")
    parser.add_argument("--template", action="append")
    parser.add_argument(
        "--resize",
        choices=["crop", "stretch"],
        default="crop",
        help="crop: keep the aspect ratio (as training data); stretch: as "
        "Google's LiT models were fed",
    )


def run(args):
    import_tensorflow()
    from keras_lit.export import export_for_serving

    model = load_lit_model(args.model)
    class_names = parse_labels(args.class_names, args.class_names_file)
    path = export_for_serving(
        model,
        args.output,
        version=args.version,
        class_names=class_names or None,
        templates=args.template or None,
        resize=args.resize,
    )
    log(f"Exported SavedModel version to {path}")
    return 0
