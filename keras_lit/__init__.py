"""keras_lit: LiT (Locked-image Text Tuning) for Keras 3 and TensorFlow."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_lit._quiet import quiet_stderr
from keras_lit.onednn import onednn_environment

# Before TensorFlow starts: it reads TF_ENABLE_ONEDNN_OPTS once, on import.
os.environ.update(onednn_environment())

with quiet_stderr():
    # Only the import: the runtime must stay uninitialised so that users
    # can still create multi-worker/TPU strategies or logical devices.
    import tensorflow as _tf  # noqa: F401

from keras_lit import callbacks
from keras_lit import checkpoints
from keras_lit import data
from keras_lit import distribute
from keras_lit import export
from keras_lit import layers
from keras_lit import losses
from keras_lit import presets
from keras_lit import zero_shot
from keras_lit.export import export_for_serving
from keras_lit.layers import ContrastiveHead
from keras_lit.layers import LockedImageEncoder
from keras_lit.layers import TextEncoder
from keras_lit.layers import TransformerTextBackbone
from keras_lit.layers import build_word_piece_vocabulary
from keras_lit.losses import ContrastiveLoss
from keras_lit.losses import contrastive_loss
from keras_lit.models import LiTModel
from keras_lit.precompute import load_precomputed
from keras_lit.precompute import precompute_image_embeddings
from keras_lit.preprocessing import LiTPreprocessor
from keras_lit.presets import PresetNetworkError
from keras_lit.version import __version__
from keras_lit.zero_shot import ZeroShotClassifier
