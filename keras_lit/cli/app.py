"""`keras-lit app`: a web page to try a SavedModel (`keras_lit.app`)."""

from keras_lit.cli.common import delegated_command

NAME = "app"
HELP = "a web page to try a SavedModel: zero-shot and search"

add_arguments, run = delegated_command("keras_lit.app", returns_exit_code=True)
