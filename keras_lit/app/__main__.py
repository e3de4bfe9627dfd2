import sys

from keras_lit.app.command import main

sys.exit(main())
