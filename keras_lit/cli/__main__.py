"""`python -m keras_lit.cli`, the same as `keras-lit`."""

import sys

from keras_lit.cli import main

sys.exit(main())
