"""`keras-lit convert`: see `keras_lit.data.convert`."""

from keras_lit.cli.common import delegated_command

NAME = "convert"
HELP = "convert CSV / image folders to TFRecord shards"

add_arguments, run = delegated_command("keras_lit.data.convert")
