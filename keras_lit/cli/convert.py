"""`keras-lit convert`: see `keras_lit.data.convert`."""

from keras_lit.cli.common import import_tensorflow

NAME = "convert"
HELP = "convert CSV / image folders to TFRecord shards"


def add_arguments(parser):
    from keras_lit.data import convert

    convert.build_parser(parser)


def run(args):
    import_tensorflow()
    from keras_lit.data import convert

    convert.run(args)
    return 0
