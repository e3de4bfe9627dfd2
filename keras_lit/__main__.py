import sys

from keras_lit.cli import main

sys.exit(main())
