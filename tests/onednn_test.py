"""keras_lit turns TF's oneDNN kernels on where TF leaves them off."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_lit.onednn import onednn_choice
from keras_lit.onednn import read_cpu_flags

AVX2_EPYC = {"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"}  # no AVX-512
SAPPHIRE_RAPIDS = AVX2_EPYC | {"avx512f", "avx512_vnni", "amx_tile"}


@pytest.mark.parametrize(
    "value, flags, system, machine, imported, expected",
    [
        # TF would leave oneDNN off: keras_lit turns it on.
        (None, AVX2_EPYC, "Linux", "x86_64", False, "set"),
        # ... unless TF already decided, when it says it can't.
        (None, AVX2_EPYC, "Linux", "x86_64", True, "too_late"),
        # The user's setting wins, whatever it is.
        ("0", AVX2_EPYC, "Linux", "x86_64", False, "keep"),
        ("false", AVX2_EPYC, "Linux", "x86_64", True, "keep"),
        ("1", AVX2_EPYC, "Linux", "x86_64", False, "keep"),
        # TF turns it on by itself on each of its six flags.
        (None, SAPPHIRE_RAPIDS, "Linux", "x86_64", False, "keep"),
        (None, AVX2_EPYC | {"avx512_bf16"}, "Linux", "x86_64", False, "keep"),
        (None, AVX2_EPYC | {"AVX_VNNI"}, "Linux", "x86_64", False, "keep"),
        (None, AVX2_EPYC | {"amx_int8"}, "Linux", "x86_64", True, "keep"),
        (None, AVX2_EPYC | {"amx_bf16"}, "Linux", "x86_64", False, "keep"),
        # No AVX2/FMA, another OS or architecture: not measured, TF decides.
        (None, {"sse4_2", "avx"}, "Linux", "x86_64", False, "keep"),
        (None, AVX2_EPYC - {"fma"}, "Linux", "x86_64", False, "keep"),
        (None, AVX2_EPYC, "Darwin", "x86_64", False, "keep"),
        (None, {"asimd", "sve"}, "Linux", "aarch64", False, "keep"),
    ],
)
def test_onednn_choice(value, flags, system, machine, imported, expected):
    action, message = onednn_choice(value, flags, system, machine, imported)
    assert action == expected
    if expected == "keep":
        assert message is None
    else:
        assert message.startswith("keras_lit: ") and "\n" not in message
        assert "TF_ENABLE_ONEDNN_OPTS" in message


def test_read_cpu_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n"
        "\nprocessor\t: 1\nflags\t\t: fpu avx2 fma\n"
    )
    assert read_cpu_flags(str(path)) == {"fpu", "avx2", "fma"}
    assert read_cpu_flags(str(tmp_path / "missing")) == set()


# One process per setting: TF reads the variable once, on import. The "on"
# process fakes an AVX2-only CPU, so keras_lit's own choice turns oneDNN on
# (this machine's AVX-512 CPU would have TF do it by itself).
_TRAIN = r"""
import importlib.util, json, os, sys
import numpy as np
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("keras_lit.onednn", path)
onednn = importlib.util.module_from_spec(spec)
sys.modules["keras_lit.onednn"] = onednn
spec.loader.exec_module(onednn)
onednn.read_cpu_flags = lambda: {"avx", "avx2", "fma"}
import keras_lit  # first: before TensorFlow starts
import keras, keras_cv
from tensorflow.python.util import _pywrap_util_port
keras.utils.set_random_seed(0)
captions = ["a red circle", "a blue square", "a green star", "a tiny dot"]
backbone = keras_cv.models.ResNetV2Backbone(
    stackwise_filters=[8, 16], stackwise_blocks=[2, 2],
    stackwise_strides=[1, 2], include_rescaling=True, input_shape=(16, 16, 3))
image_encoder = keras_lit.LockedImageEncoder(backbone)
text_encoder = keras_lit.TextEncoder.from_scratch(
    keras_lit.build_word_piece_vocabulary(captions * 8, 60),
    projection_dim=image_encoder.output_dim, hidden_dim=16,
    intermediate_dim=32, num_layers=1, sequence_length=8)
model = keras_lit.LiTModel(image_encoder, text_encoder)
model.compile(jit_compile=False)
images = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), "uint8")
embeddings = model.encode_images(images, batch_size=32)
history = model.fit({"images": images, "texts": captions * 8}, batch_size=8,
                    epochs=4, steps_per_epoch=1, shuffle=False, verbose=0)
np.savez(sys.argv[2], embeddings,
         *[np.asarray(w) for w in model.trainable_weights])
print(json.dumps({"onednn": bool(_pywrap_util_port.IsMklEnabled()),
                  "variable": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                  "loss": history.history["loss"]}))
"""


@pytest.mark.multiprocess
def test_same_numbers_with_onednn_on_and_off(tmp_path):
    import keras_lit.onednn

    runs = {}
    for name, value in (("on", None), ("off", "0")):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)
        if value is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = value
        weights = tmp_path / f"{name}.npz"
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _TRAIN,
                keras_lit.onednn.__file__,
                str(weights),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = json.loads(result.stdout.strip().splitlines()[-1])
        runs[name]["weights"] = list(np.load(weights).values())
        runs[name]["stderr"] = result.stderr
    on, off = runs["on"], runs["off"]
    # keras_lit set the variable itself and said so once; the user's "0"
    # won in the other process.
    assert on["variable"] == "1" and on["onednn"] is True
    assert on["stderr"].count("keras_lit: set TF_ENABLE_ONEDNN_OPTS=1") == 1
    assert off["variable"] == "0" and off["onednn"] is False
    assert "keras_lit:" not in off["stderr"]
    # Same model, other kernels: the locked ResNet's embeddings agree to
    # float32 round-off, and so do 4 AdamW steps of the text tower (each
    # moves a weight by up to 1e-3).
    (on_embeddings, *on_weights) = on["weights"]
    (off_embeddings, *off_weights) = off["weights"]
    np.testing.assert_allclose(on_embeddings, off_embeddings, atol=1e-5)
    np.testing.assert_allclose(on["loss"], off["loss"], rtol=1e-5)
    assert len(on_weights) == len(off_weights) > 10
    for a, b in zip(on_weights, off_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


def test_onednn_environment_says_when_it_is_too_late(monkeypatch, capsys):
    import keras_lit.onednn

    # TensorFlow is imported in this process (conftest): too late to set.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setattr(keras_lit.onednn, "read_cpu_flags", lambda: AVX2_EPYC)
    assert keras_lit.onednn.onednn_environment() == {}
    assert "imported before keras_lit" in capsys.readouterr().err
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert keras_lit.onednn.onednn_environment() == {}
    assert capsys.readouterr().err == ""
