"""Test harness set-up: quiet TF, 4 logical CPU devices, tiny real towers.

The logical devices must be configured before anything initialises TF's
devices, so this runs at import time. Tests that need several replicas build
`keras_lit.distribute.get_strategy("mirrored", devices=[...])` on them
(not `tf.distribute.MirroredStrategy` directly: two of different sizes in one
process collide on collective keys).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

# Marks of the slow, browser, multi-process and notebook tests.
pytest_plugins = ["markers"]

NUM_LOGICAL_CPUS = 4
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

CAPTIONS = [
    "a red circle",
    "a blue square",
    "a green star",
    "a small red star",
    "a large blue circle",
    "a yellow triangle on stripes",
    "a big green square",
    "a tiny yellow circle",
]


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def vocabulary():
    from keras_lit.layers import build_word_piece_vocabulary

    return build_word_piece_vocabulary(CAPTIONS * 20, vocabulary_size=200)


def make_resnet_backbone(image_size=32):
    import keras_cv

    return keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[8, 16],
        stackwise_blocks=[2, 2],
        stackwise_strides=[1, 2],
        include_rescaling=True,
        input_shape=(image_size, image_size, 3),
    )


def make_image_encoder(image_size=32, **kwargs):
    from keras_lit.layers import LockedImageEncoder

    return LockedImageEncoder(make_resnet_backbone(image_size), **kwargs)


def make_text_encoder(vocabulary, projection_dim=64, **kwargs):
    from keras_lit.layers import TextEncoder

    options = dict(hidden_dim=16, intermediate_dim=32, num_layers=1)
    options.update(kwargs)
    return TextEncoder.from_scratch(
        vocabulary, projection_dim=projection_dim, **options
    )


def make_lit_model(vocabulary, image_size=32, **kwargs):
    from keras_lit.models import LiTModel

    image_encoder = make_image_encoder(image_size)
    text_encoder = make_text_encoder(vocabulary, image_encoder.output_dim)
    return LiTModel(image_encoder, text_encoder, **kwargs)


def random_images(n, size=32, seed=0):
    return np.random.default_rng(seed).integers(
        0, 256, (n, size, size, 3), dtype=np.uint8
    )


@pytest.fixture
def lit_model(vocabulary):
    return make_lit_model(vocabulary)
