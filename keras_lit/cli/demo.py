"""`keras-lit demo`: the offline embedded demo (`keras_lit.demo`).

`--real` runs LiT on ImageNet EfficientNet-Lite0, Fashion-MNIST and the
photos Python packages ship (`keras_lit.demo.real`).
"""

import time

from keras_lit.cli.common import CLIError
from keras_lit.cli.common import import_tensorflow
from keras_lit.cli.common import log

NAME = "demo"
HELP = "the offline embedded demo"


def add_arguments(parser):
    parser.add_argument(
        "--output-dir",
        default=None,
        help="default: lit_runs/demo (lit_runs/demo-real with --real)",
    )
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--retrain-tower",
        action="store_true",
        help="pretrain the stand-in image tower (stage 1) here instead of "
        "using the one shipped with keras_lit or cached",
    )
    parser.add_argument(
        "--real",
        action="store_true",
        help="LiT on ImageNet EfficientNet-Lite0, Fashion-MNIST and photos",
    )
    parser.add_argument(
        "--labels",
        default=None,
        help="--real: comma-separated labels for the photos' zero-shot",
    )


def output_dir(args):
    """`--output-dir`, else `lit_runs/demo` (`lit_runs/demo-real`)."""
    default = "lit_runs/demo-real" if args.real else "lit_runs/demo"
    return args.output_dir or default


def run(args):
    if args.labels is not None and not args.real:
        raise CLIError("--labels goes with --real (the real-photo demo)")
    import_tensorflow()
    start = time.time()
    if args.real:
        from keras_lit.demo.real import run_real_demo

        labels = [x.strip() for x in (args.labels or "").split(",")]
        run_real_demo(
            output_dir(args),
            smoke=args.smoke,
            seed=args.seed,
            photo_labels=[label for label in labels if label] or None,
        )
    else:
        from keras_lit.demo import run_demo

        run_demo(
            output_dir(args),
            smoke=args.smoke,
            seed=args.seed,
            retrain_tower=args.retrain_tower,
        )
    log(f"Demo finished in {time.time() - start:.0f} s")
    return 0
