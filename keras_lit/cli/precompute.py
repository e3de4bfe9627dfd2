"""`keras-lit precompute`: see `keras_lit.precompute.command`."""

from keras_lit.cli.common import import_tensorflow

NAME = "precompute"
HELP = "write locked image embeddings to TFRecords"


def add_arguments(parser):
    from keras_lit.precompute import build_parser

    build_parser(parser)


def run(args):
    import_tensorflow()
    from keras_lit import precompute

    precompute.run(args)
    return 0
