"""`keras-lit precompute`: see `keras_lit.precompute.command`."""

from keras_lit.cli.common import delegated_command

NAME = "precompute"
HELP = "write locked image embeddings to TFRecords"

add_arguments, run = delegated_command("keras_lit.precompute")
