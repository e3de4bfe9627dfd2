"""`python -m keras_lit.precompute`: see `keras_lit.precompute.command`."""

import sys

from keras_lit.precompute.command import main

sys.exit(main())
