"""`keras-lit app`: a web page to try a SavedModel (`keras_lit.app`)."""

from keras_lit.cli.common import import_tensorflow

NAME = "app"
HELP = "a web page to try a SavedModel: zero-shot and search"


def add_arguments(parser):
    from keras_lit.app import build_parser

    build_parser(parser)


def run(args):
    import_tensorflow()
    from keras_lit import app

    return app.run(args) or 0
