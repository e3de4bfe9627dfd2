"""Google's LiT checkpoints: imported models give the original code's numbers.

The fixtures (`../shared/lit_checkpoints/`, next to the repository) are tiny
checkpoints written by the original JAX/Flax LiT code in the released key
layout, one per model family, with that code's outputs on fixed raw inputs
(`images.npy`, `texts.txt`), and `real_key_shapes.json`, the keys and shapes
of the full-size released models. See `FORMAT.md` there.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from lit_fixtures import fixture_directory

from keras_lit import checkpoints
from keras_lit import presets
from keras_lit.models import LiTModel
from keras_lit.zero_shot import build_zero_shot_weights

ATOL = 1e-5
# name -> (heads of the BERT text tower, which the file does not store)
FIXTURES = {
    "lit_tiny_b16b_like": 4,
    "lit_tiny_l16l_like": 2,
    "lit_tiny_l16s_like": None,
}
# Texts that zero-shot canonicalisation (lower case, no punctuation) keeps.
PLAIN_TEXTS = 4


@pytest.fixture(scope="module")
def fixtures():
    return fixture_directory()


@pytest.fixture(scope="module")
def inputs(fixtures):
    images = np.load(fixtures / "images.npy")
    texts = (fixtures / "texts.txt").read_text(encoding="utf-8").splitlines()
    return images, texts


@pytest.fixture(scope="module")
def models(fixtures):
    """Each fixture imported through the public API, once."""
    return {
        name: LiTModel.from_preset(
            str(fixtures / f"{name}.npz"), text_num_heads=heads
        )
        for name, heads in FIXTURES.items()
    }


def expected(fixtures, name):
    return dict(np.load(fixtures / f"{name}_expected.npz"))


def softmax(logits):
    logits = np.asarray(logits, "float64")
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_imported_model_gives_the_reference_outputs(
    name, models, inputs, fixtures
):
    model, reference = models[name], expected(fixtures, name)
    images, texts = inputs
    tokens = model.preprocessor({"texts": texts})["token_ids"].numpy()
    np.testing.assert_array_equal(tokens, reference["tokens"])
    pixels = model.preprocessor({"images": images})["images"].numpy()
    np.testing.assert_allclose(
        pixels, reference["images_pp"], rtol=0, atol=1e-6
    )

    image_embeddings = model.encode_images(images)
    text_embeddings = model.encode_texts(texts)
    np.testing.assert_allclose(
        image_embeddings, reference["zimg"], rtol=0, atol=ATOL
    )
    np.testing.assert_allclose(
        text_embeddings, reference["ztxt"], rtol=0, atol=ATOL
    )
    temperature = float(model.temperature)
    np.testing.assert_allclose(temperature, reference["t_exp"][0], rtol=1e-6)
    logits = temperature * text_embeddings @ image_embeddings.T
    for key, value in (
        ("probs_text_to_image", softmax(logits)),
        ("probs_image_to_text", softmax(logits.T)),
    ):
        np.testing.assert_allclose(value, reference[key], rtol=0, atol=ATOL)

    # Zero-shot weights of prompt "{}" are the text embeddings (for texts
    # that canonicalisation leaves alone), so zero-shot classification
    # gives the reference probabilities over those classes.
    weights = build_zero_shot_weights(
        model, texts[:PLAIN_TEXTS], templates=["{}"], verbose=0
    )
    np.testing.assert_allclose(
        weights, reference["ztxt"][:PLAIN_TEXTS], rtol=0, atol=ATOL
    )


def test_the_towers_are_the_library_parts(models):
    import keras_hub

    bert = models["lit_tiny_b16b_like"]
    transformer = models["lit_tiny_l16s_like"]
    backbone = bert.image_encoder.backbone
    assert isinstance(backbone, keras_hub.models.ViTBackbone)
    assert backbone.mlp_activation == "gelu_approximate"
    layers = {
        type(layer).__name__ for layer in bert.text_encoder.backbone.layers
    }
    assert "TransformerEncoder" in layers  # KerasHub's BERT layers
    assert bert.text_encoder.pooling == "cls"
    assert transformer.text_encoder.pooling == "last"
    assert not transformer.text_encoder.backbone.use_padding_mask


# --- Key checking -----------------------------------------------------------


def _write(path, params):
    np.savez(path, **params)
    return str(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda p: p.pop("txt/Encoder_0/encoderblock_1/LayerNorm_0/scale"),
            "missing key 'txt/Encoder_0/encoderblock_1/LayerNorm_0/scale'",
        ),
        (
            lambda p: p.update({"img/extra/kernel": np.zeros((2, 2), "f")}),
            "unexpected key 'img/extra/kernel'",
        ),
        (
            lambda p: p.update(
                {"txt/Encoder_0/encoder_norm/bias": np.zeros((25,), "f")}
            ),
            "key 'txt/Encoder_0/encoder_norm/bias' has shape [25]; "
            "expected [24]",
        ),
        (
            lambda p: p.pop("img/embedding/kernel"),
            "missing key 'img/embedding/kernel'",
        ),
    ],
    ids=["missing", "extra", "shape", "missing_size_key"],
)
def test_bad_keys_fail_in_one_line_naming_the_key(
    change, message, fixtures, tmp_path
):
    name = "lit_tiny_l16s_like"
    params = dict(np.load(fixtures / f"{name}.npz"))
    change(params)
    path = _write(tmp_path / f"{name}.npz", params)
    shutil.copy(fixtures / f"{name}.model", tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        LiTModel.from_preset(path)
    assert "\n" not in str(error.value)


def test_old_flax_spelling_is_renumbered(fixtures, tmp_path):
    # Pre-Linen ViT files number the children of a block 0..3 across types.
    old_names = {
        "LayerNorm_1": "LayerNorm_2",
        "MultiHeadDotProductAttention_0": "MultiHeadDotProductAttention_1",
        "MlpBlock_0": "MlpBlock_3",
    }
    original = dict(np.load(fixtures / "lit_tiny_l16l_like.npz"))
    renamed = {}
    for key, value in original.items():
        parts = key.split("/")
        parts = [old_names.get(part, part) for part in parts]
        renamed["/".join(parts)] = value
    assert "img/Transformer/encoderblock_2/MlpBlock_3/Dense_1/bias" in renamed
    path = _write(tmp_path / "old.npz", renamed)
    loaded = checkpoints.read_checkpoint(path)
    assert sorted(loaded) == sorted(original)
    for key, value in original.items():
        np.testing.assert_array_equal(loaded[key], value)
    # Natural order: block 10 comes after block 9, gaps close up.
    tree = {f"b/block_{i}/x": np.float32(i) for i in (1, 10, 9)}
    assert {
        k: float(v) for k, v in checkpoints.convert_pre_linen(tree).items()
    } == {"b/block_0/x": 1.0, "b/block_1/x": 9.0, "b/block_2/x": 10.0}


# --- Full-size models, shapes only -----------------------------------------


@pytest.mark.parametrize(
    "name, heads",
    [("LiT-B16B_2", 12), ("LiT-L16L", 16), ("LiT-B16B", 12), ("LiT-L16S", 0)],
)
def test_full_size_models_map_every_key_to_one_weight(name, heads, fixtures):
    real = json.loads((fixtures / "real_key_shapes.json").read_text())[name]
    shapes = {key: tuple(shape) for key, shape in real["keys"].items()}
    assert sum(int(np.prod(s)) for s in shapes.values()) == real["num_params"]
    architecture = checkpoints.infer_architecture(
        shapes, text_num_heads=heads or None
    )
    kind = architecture["text"]["kind"]
    if kind == "bert":
        vocabulary = ["[PAD]", "[UNK]", "[CLS]", "a"]
    else:
        vocabulary = str(fixtures / "lit_tiny_l16s_like.model")
        vocabulary = open(vocabulary, "rb").read()
    tokenizer, packing = _tokenizer(kind, vocabulary)
    # No variable gets a value: shapes only, nothing allocated.
    with keras.StatelessScope(initialize_variables=False):
        model = checkpoints.build_lit_model(
            LiTModel, architecture, tokenizer, packing
        )
    try:
        entries = checkpoints.weight_map(model, architecture)
        checkpoints.check_keys(shapes, entries)  # same keys, same shapes
        assert len({entry.key for entry in entries}) == len(entries)
        filled = {}
        for entry in entries:
            size = int(np.prod(entry.shape))
            if entry.part is None:
                assert size == int(np.prod(entry.variable.shape)), entry.key
            else:
                start, stop = entry.part
                rows = int(np.prod(entry.variable.shape[:-1]))
                assert size == rows * (stop - start), entry.key
            filled.setdefault(id(entry.variable), []).append(size)
        # Every weight of the model is filled, each exactly once.
        variables = {id(v): v for v in model.weights}
        assert set(filled) == set(variables)
        for key, sizes in filled.items():
            assert sum(sizes) == int(np.prod(variables[key].shape))
        assert model.count_params() == real["num_params"]
    finally:
        _forget_uninitialized_variables()


def _tokenizer(kind, vocabulary):
    import keras_hub

    if kind == "bert":
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary)
        return tokenizer, {"start_token_id": 2, "end_token_id": None}
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=vocabulary)
    return tokenizer, {"end_token_id": 1, "pad_token_id": 1}


def _forget_uninitialized_variables():
    # Keras would otherwise initialise them at the next stateless scope.
    from keras.src.backend.common import global_state

    global_state.set_global_attribute("uninitialized_variables", [])


def test_published_parameter_counts_match_the_model_card(fixtures):
    real = json.loads((fixtures / "real_key_shapes.json").read_text())
    assert real["LiT-B16B_2"]["num_params"] == 195_280_897
    assert real["LiT-L16L"]["num_params"] == 638_443_521
    assert sorted(checkpoints.PUBLISHED_MODELS) == [
        "lit_b16b",
        "lit_b16b_2",
        "lit_l16l",
        "lit_l16s",
        "lit_l16ti",
    ]


# --- Training on from an imported model -------------------------------------


def test_fit_step_keeps_the_image_tower_and_trains_the_text_tower(
    fixtures, inputs
):
    model = LiTModel.from_preset(
        str(fixtures / "lit_tiny_b16b_like.npz"), text_num_heads=4
    )
    images, texts = inputs
    image_before = [np.array(w) for w in model.image_encoder.weights]
    text_before = [np.array(w) for w in model.text_encoder.weights]
    assert model.image_encoder.locked
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(
        {"images": images, "texts": texts},
        batch_size=8,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    for before, after in zip(image_before, model.image_encoder.weights):
        np.testing.assert_array_equal(before, np.array(after))
    changed = [
        not np.array_equal(before, np.array(after))
        for before, after in zip(text_before, model.text_encoder.weights)
    ]
    assert model.text_encoder.trainable_weights
    assert changed[-2] and changed[-1]  # the text head (txt/head)
    assert sum(changed) > len(changed) // 2


# --- Presets: names, directories, the cache, no network ----------------------


def test_published_name_offline_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(presets.OFFLINE_ENV, "1")
    with pytest.raises(presets.PresetNetworkError) as error:
        LiTModel.from_preset("lit_b16b_2")
    message = str(error.value)
    assert "\n" not in message
    assert "'lit_b16b_2'" in message and "LiT-B16B_2.npz" in message


def test_published_name_loads_from_the_cache_and_directories_work(
    fixtures, inputs, tmp_path, monkeypatch
):
    # A cached "LiT-L16S" (the L16S-like fixture under the released names)
    # loads with the network off; so does a directory holding both files.
    name = "lit_tiny_l16s_like"
    cache = tmp_path / "home" / "keras_lit" / "lit"
    cache.mkdir(parents=True)
    shutil.copy(fixtures / f"{name}.npz", cache / "LiT-L16S.npz")
    shutil.copy(fixtures / f"{name}.model", cache / "LiT-L16S.model")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(presets.OFFLINE_ENV, "1")
    images, texts = inputs
    reference = expected(fixtures, name)
    for preset in ("lit_l16s", str(cache)):
        model = LiTModel.from_preset(preset)
        np.testing.assert_allclose(
            model.encode_images(images[:2]),
            reference["zimg"][:2],
            rtol=0,
            atol=ATOL,
        )


def test_cli_import_writes_a_preset_that_loads_as_imported(
    inputs, fixtures, tmp_path, capsys
):
    from keras_lit.cli import main

    out = tmp_path / "preset"
    checkpoint = str(fixtures / "lit_tiny_b16b_like.npz")
    vocabulary = str(fixtures / "lit_tiny_b16b_like.txt")
    arguments = ["import", "--checkpoint", checkpoint, "--vocab", vocabulary]
    assert main(arguments + ["--out", str(out), "--text-num-heads", "4"]) == 0
    restored = LiTModel.from_preset(str(out))
    images, texts = inputs
    reference = expected(fixtures, "lit_tiny_b16b_like")
    np.testing.assert_allclose(
        restored.encode_texts(texts), reference["ztxt"], rtol=0, atol=ATOL
    )
    np.testing.assert_allclose(
        restored.encode_images(images), reference["zimg"], rtol=0, atol=ATOL
    )
    # A user error: one line, exit status 2. (Width 32 is no multiple of 64:
    # the BERT head count must be given.)
    capsys.readouterr()
    assert main(arguments + ["--out", str(tmp_path / "other")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "text_num_heads" in error


# --- The exported SavedModel, in a fresh process ----------------------------

FRESH_PROCESS = r"""
import json
import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

for name in ("keras_lit", "keras_hub"):
    assert name not in sys.modules
results = {}
for name, path, images_file, texts_file in json.loads(sys.argv[1]):
    loaded = tf.saved_model.load(path)
    images = [open(f, "rb").read() for f in json.load(open(images_file))]
    texts = json.load(open(texts_file))
    images = tf.constant(images, tf.string)
    results[name] = {
        "embed_image": loaded.signatures["embed_image"](
            image_bytes=images)["embeddings"].numpy().tolist(),
        "embed_text": loaded.signatures["embed_text"](
            texts=tf.constant(texts))["embeddings"].numpy().tolist(),
        "zero_shot": loaded.signatures["zero_shot"](
            image_bytes=images, class_names=tf.constant(texts[:4])
        )["probabilities"].numpy().tolist(),
    }
print(json.dumps(results))
"""


@pytest.mark.multiprocess
def test_exported_saved_model_gives_the_reference_in_a_fresh_process(
    models, inputs, fixtures, tmp_path
):
    from keras_lit.cli import main
    from keras_lit.export import export_for_serving

    images, texts = inputs
    files = []
    for index, image in enumerate(images):
        path = tmp_path / f"image_{index}.png"
        path.write_bytes(tf.io.encode_png(image).numpy())  # lossless
        files.append(str(path))
    (tmp_path / "images.json").write_text(json.dumps(files))
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    # The BERT (WordPiece) family through the API, the SentencePiece one
    # through `keras-lit import` and `keras-lit export`.
    name = "lit_tiny_l16s_like"
    preset = str(tmp_path / "preset")
    arguments = ["--checkpoint", str(fixtures / f"{name}.npz"), "--out", preset]
    assert main(["import"] + arguments) == 0
    export_arguments = ["--model", preset, "--output", str(tmp_path / name)]
    export_arguments += ["--template", "{}", "--resize", "stretch"]
    assert main(["export"] + export_arguments) == 0
    paths = {
        "lit_tiny_b16b_like": export_for_serving(
            models["lit_tiny_b16b_like"],
            str(tmp_path / "lit_tiny_b16b_like"),
            templates=["{}"],
            resize="stretch",  # as Google's LiT preprocessing
        ),
        name: str(tmp_path / name / "1"),
    }
    jobs = []
    for name, path in paths.items():
        jobs.append(
            [
                name,
                path,
                str(tmp_path / "images.json"),
                str(tmp_path / "texts.json"),
            ]
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    for name, _, _, _ in jobs:
        reference = expected(fixtures, name)
        served = outputs[name]
        np.testing.assert_allclose(
            served["embed_image"], reference["zimg"], rtol=0, atol=ATOL
        )
        np.testing.assert_allclose(
            served["embed_text"], reference["ztxt"], rtol=0, atol=ATOL
        )
        logits = (
            reference["t_exp"][0]
            * reference["zimg"].astype("float64")
            @ reference["ztxt"][:PLAIN_TEXTS].T.astype("float64")
        )
        np.testing.assert_allclose(
            served["zero_shot"], softmax(logits), rtol=0, atol=ATOL
        )
