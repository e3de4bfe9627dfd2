"""keras_lit: LiT (Locked-image Text Tuning) for Keras 3 and TensorFlow."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_lit._quiet import quiet_stderr

with quiet_stderr():
    import tensorflow as _tf

    _tf.config.list_logical_devices()

from keras_lit import layers
from keras_lit import losses
from keras_lit.layers import ContrastiveHead
from keras_lit.layers import LockedImageEncoder
from keras_lit.layers import TextEncoder
from keras_lit.layers import TransformerTextBackbone
from keras_lit.layers import build_word_piece_vocabulary
from keras_lit.losses import ContrastiveLoss
from keras_lit.losses import contrastive_loss
from keras_lit.models import LiTModel
from keras_lit.preprocessing import LiTPreprocessor
from keras_lit.version import __version__
