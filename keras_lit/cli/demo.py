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


def run(args):
    import_tensorflow()
    from keras_lit.demo import run_demo

    start = time.time()
    run_demo(args.output_dir, smoke=args.smoke, seed=args.seed)
    log(f"Demo finished in {time.time() - start:.0f} s")
    return 0
