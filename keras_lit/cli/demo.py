"""`keras-lit demo`: the offline embedded demo (`keras_lit.demo`)."""

import time

from keras_lit.cli.common import import_tensorflow
from keras_lit.cli.common import log

NAME = "demo"
HELP = "the offline embedded demo"


def add_arguments(parser):
    parser.add_argument("--output-dir", default="lit_runs/demo")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--retrain-tower",
        action="store_true",
        help="pretrain the stand-in image tower (stage 1) here instead of "
        "using the one shipped with keras_lit or cached",
    )


def run(args):
    import_tensorflow()
    from keras_lit.demo import run_demo

    start = time.time()
    run_demo(
        args.output_dir,
        smoke=args.smoke,
        seed=args.seed,
        retrain_tower=args.retrain_tower,
    )
    log(f"Demo finished in {time.time() - start:.0f} s")
    return 0
