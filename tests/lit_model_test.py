import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from conftest import CAPTIONS
from conftest import make_image_encoder
from conftest import make_lit_model
from conftest import make_text_encoder
from conftest import random_images
from losses_test import reference_loss
from test_case import run_layer_test
from test_case import run_model_saving_test

from keras_lit.layers import LockedImageEncoder
from keras_lit.layers import TextEncoder
from keras_lit.models import LiTModel


def tiny_vit_encoder():
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3),
        patch_size=8,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
    )
    return LockedImageEncoder(backbone, pooling="cls", value_range=(0, 1))


def tiny_bert_encoder(vocabulary, projection_dim):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary) + 1,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
        dropout=0.0,  # the numpy loss uses inference-mode embeddings
    )
    vocabulary = vocabulary + ["[MASK]"]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
    return TextEncoder(backbone, tokenizer, projection_dim, pooling="cls")


def weights_of(layer):
    return [np.array(w) for w in layer.weights]


def numpy_loss(model, images, texts):
    """Float64 numpy loss from the towers' embeddings before the step."""
    image_embeddings = model.encode_images(images).astype("float64")
    text_embeddings = model.encode_texts(texts).astype("float64")
    return reference_loss(
        image_embeddings, text_embeddings, float(model.temperature)
    )


@pytest.mark.parametrize("towers", ["keras_cv+bert", "vit_cls+scratch"])
def test_fit_trains_text_tower_only(vocabulary, towers):
    if towers == "keras_cv+bert":
        image_encoder = make_image_encoder()
        text_encoder = tiny_bert_encoder(vocabulary, image_encoder.output_dim)
    else:
        image_encoder = tiny_vit_encoder()
        text_encoder = make_text_encoder(vocabulary, image_encoder.output_dim)
    model = LiTModel(image_encoder, text_encoder)
    model.compile()
    images, texts = random_images(8), CAPTIONS
    expected_loss = numpy_loss(model, images, texts)
    image_weights = weights_of(model.image_encoder)
    text_weights = weights_of(model.text_encoder)
    temperature = float(model.temperature)

    history = model.fit(
        {"images": images, "texts": texts}, batch_size=8, epochs=1, verbose=0
    )

    np.testing.assert_allclose(
        history.history["loss"][0], expected_loss, rtol=1e-5
    )
    assert history.history["temperature"][0] == pytest.approx(temperature)
    for before, after in zip(image_weights, model.image_encoder.weights):
        np.testing.assert_array_equal(before, np.asarray(after))
    unchanged = [
        after.path
        for before, after in zip(text_weights, model.text_encoder.weights)
        if np.array_equal(before, np.asarray(after))
    ]
    # Only BERT's pooler, which "cls" pooling of the sequence does not use.
    assert all("pooled_dense" in path for path in unchanged)
    assert float(model.temperature) != temperature
    # The second epoch reports the loss at the new weights, which is lower.
    model.fit({"images": images, "texts": texts}, batch_size=8, verbose=0)
    assert model.get_metrics_result()["loss"] < expected_loss


def test_learnable_toy_task_reaches_high_retrieval_accuracy(vocabulary):
    # Each image is one solid colour (+ noise); its caption names the colour.
    colours = {
        "red": (230, 20, 20),
        "green": (20, 200, 20),
        "blue": (20, 20, 230),
        "yellow": (230, 230, 20),
        "white": (240, 240, 240),
        "black": (10, 10, 10),
        "cyan": (20, 220, 220),
        "purple": (130, 20, 160),
    }
    names = list(colours)
    vocab = keras_lit_vocabulary(names)
    image_encoder = make_image_encoder(image_size=16)
    text_encoder = make_text_encoder(vocab, image_encoder.output_dim)
    model = LiTModel(image_encoder, text_encoder)
    model.compile(
        optimizer=keras.optimizers.AdamW(3e-3, weight_decay=1e-4),
        steps_per_execution=10,
    )
    rng = np.random.default_rng(0)

    def batch(n_repeats):
        order = np.concatenate([rng.permutation(8) for _ in range(n_repeats)])
        base = np.array([colours[names[i]] for i in order], "float32")
        noise = rng.normal(0, 8, (len(order), 16, 16, 3))
        images = np.clip(base[:, None, None, :] + noise, 0, 255)
        texts = [f"a {names[i]} picture" for i in order]
        return images.astype("uint8"), texts

    images, texts = batch(60)
    # Batches of 8 hold each colour exactly once: in-batch retrieval is
    # well defined.
    model.fit(
        {"images": images, "texts": texts},
        batch_size=8,
        epochs=5,
        shuffle=False,
        verbose=0,
    )
    images, texts = batch(4)
    logs = model.evaluate(
        {"images": images, "texts": texts},
        batch_size=8,
        return_dict=True,
        verbose=0,
    )
    assert logs["image_to_text_accuracy"] >= 0.9
    assert logs["text_to_image_accuracy"] >= 0.9


def keras_lit_vocabulary(words):
    from keras_lit.layers import build_word_piece_vocabulary

    captions = [f"a {word} picture" for word in words] * 30
    return build_word_piece_vocabulary(captions, vocabulary_size=100)


def test_keras_round_trip_is_exact(vocabulary, tmp_path):
    model = make_lit_model(vocabulary)
    model.compile()
    data = {"images": random_images(8), "texts": CAPTIONS}
    model.fit(data, batch_size=8, verbose=0)
    restored = run_model_saving_test(
        model,
        None,
        tmp_path,
        call=lambda m: {
            "images": m.encode_images(data["images"]),
            "texts": m.encode_texts(data["texts"]),
        },
    )
    assert float(restored.temperature) == float(model.temperature)
    assert len(restored.optimizer.variables) == len(model.optimizer.variables)
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The same next step from both.
    first = model.fit(data, batch_size=8, shuffle=False, verbose=0)
    second = restored.fit(data, batch_size=8, shuffle=False, verbose=0)
    assert first.history["loss"] == second.history["loss"]


@pytest.mark.parametrize("pretokenised", [False, True])
def test_xla_step_matches_non_xla(vocabulary, pretokenised):
    data = {"images": random_images(8), "texts": CAPTIONS}
    if pretokenised:
        # Token ids from another model: the trained models never call their
        # tokenizers, and their optimizers must still be built before the
        # XLA step is traced (inside it, variable creation cannot be lifted).
        tokens = make_lit_model(vocabulary).preprocessor({"texts": CAPTIONS})
        data = {
            "images": data["images"],
            "token_ids": np.asarray(tokens["token_ids"]),
            "padding_mask": np.asarray(tokens["padding_mask"]),
        }
    results = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(7)
        model = make_lit_model(vocabulary)
        model.compile(jit_compile=jit_compile)
        history = model.fit(data, batch_size=4, shuffle=False, verbose=0)
        results.append((history.history, weights_of(model)))
    (history_a, weights_a), (history_b, weights_b) = results
    np.testing.assert_allclose(history_a["loss"], history_b["loss"], rtol=1e-5)
    # Adam divides by sqrt(v): near-zero gradients amplify float32 rounding
    # differences between the XLA and non-XLA kernels to ~1e-5 absolute.
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


def test_unlocked_image_tower_trains(vocabulary):
    """The paper's Uu setting."""
    image_encoder = make_image_encoder(locked=False)
    text_encoder = make_text_encoder(vocabulary, image_encoder.output_dim)
    model = LiTModel(image_encoder, text_encoder)
    model.compile()
    kernel = np.array(image_encoder.backbone.trainable_weights[0])
    model.fit(
        {"images": random_images(8), "texts": CAPTIONS},
        batch_size=8,
        verbose=0,
    )
    after = np.asarray(image_encoder.backbone.trainable_weights[0])
    assert not np.array_equal(kernel, after)


def test_image_head_trains_but_backbone_stays(vocabulary):
    image_encoder = make_image_encoder(head_dim=16)
    text_encoder = make_text_encoder(vocabulary, 16)
    model = LiTModel(image_encoder, text_encoder)
    model.compile()
    backbone = weights_of(image_encoder.backbone)
    head = weights_of(image_encoder.head)
    model.fit(
        {"images": random_images(8), "texts": CAPTIONS},
        batch_size=8,
        verbose=0,
    )
    for a, b in zip(backbone, image_encoder.backbone.weights):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert not np.array_equal(head[0], np.asarray(image_encoder.head.kernel))


def test_encode_returns_normalised_embeddings(lit_model):
    images = lit_model.encode_images(random_images(3))
    texts = lit_model.encode_texts(["a red circle", "a blue square"])
    assert images.shape == (3, 64) and texts.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, rtol=1e-5)


def test_fit_on_a_tf_data_pipeline(lit_model):
    dataset = tf.data.Dataset.from_tensor_slices(
        {"images": random_images(8), "texts": CAPTIONS}
    ).batch(4)
    lit_model.compile()
    history = lit_model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert history.history["loss"][0] > 0


def test_mixed_precision_keeps_logits_float32(vocabulary):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = make_lit_model(vocabulary)
        model.compile()
        history = model.fit(
            {"images": random_images(8), "texts": CAPTIONS},
            batch_size=8,
            verbose=0,
        )
        assert np.isfinite(history.history["loss"][0])
        assert model.head.log_temperature.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "data,match",
    [
        ({"images": random_images(2)[0], "texts": ["a", "b"]}, "images.shape"),
        (
            {"images": random_images(2)[..., :1], "texts": ["a", "b"]},
            "3 \\(RGB\\) channels",
        ),
        ({"images": random_images(0), "texts": []}, "empty batch"),
        (
            {"images": random_images(3), "texts": ["a", "b"]},
            "images=3, texts=2",
        ),
        ({"images": random_images(2), "texts": [1, 2]}, "must hold strings"),
        ({"images": random_images(2), "captions": ["a", "b"]}, "captions"),
    ],
)
def test_bad_inputs_get_clear_errors(lit_model, data, match):
    lit_model.compile()
    with pytest.raises(ValueError, match=match):
        lit_model.fit(data, verbose=0)


def test_bad_inputs_in_a_pipeline_get_clear_errors(lit_model):
    dataset = tf.data.Dataset.from_tensor_slices(
        {"images": random_images(4)[..., :2], "texts": CAPTIONS[:4]}
    ).batch(2)
    lit_model.compile()
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        lit_model.fit(dataset, verbose=0)
    with pytest.raises(ValueError, match="`y` empty"):
        lit_model.fit(random_images(2), np.arange(2), verbose=0)


def test_mismatched_widths_and_compile_loss(vocabulary):
    with pytest.raises(ValueError, match="projection_dim=8"):
        LiTModel(make_image_encoder(), make_text_encoder(vocabulary, 8))
    model = make_lit_model(vocabulary)
    with pytest.raises(ValueError, match="loss='mse'"):
        model.compile(loss="mse")


@pytest.mark.parametrize("axis", [-1, 0])
def test_top1_equals_numpy_argmax_with_ties(axis):
    from keras_lit.models.lit_metrics import top1 as _top1

    rng = np.random.default_rng(axis + 5)
    # Few distinct values: many ties, which argmax breaks to the first.
    logits = rng.integers(0, 3, (6, 6)).astype("float32")
    logits[2] = 1.0  # a row all tied: argmax is 0, not the label 3
    logits[:, 4] = 1.0  # a column all tied, for axis=0
    labels = rng.integers(0, 6, 6).astype("int32")
    labels[2] = labels[4] = 3
    expected = np.argmax(logits, axis=axis) == labels
    result = np.asarray(_top1(logits, labels, axis=axis))
    np.testing.assert_array_equal(result, expected.astype("float32"))
    # A replica that got no rows of a partial batch.
    empty = np.zeros((0, 6), "float32")
    assert np.asarray(_top1(empty, np.zeros(0, "int32"))).shape == (0,)


def test_model_behaviors(vocabulary):
    image_encoder = make_image_encoder()
    text_encoder = make_text_encoder(vocabulary, image_encoder.output_dim)
    text_encoder.build()
    tokens = text_encoder.tokenize(CAPTIONS[:2])
    inputs = {"images": random_images(2).astype("float32"), **tokens}
    model, outputs = run_layer_test(
        cls=LiTModel,
        init_kwargs={
            "image_encoder": image_encoder,
            "text_encoder": text_encoder,
            "temperature_init": 5.0,
        },
        input_data=inputs,
        expected_output_shape={
            "image_embeddings": (2, 64),
            "text_embeddings": (2, 64),
        },
        # The text tower and the log-temperature; the image tower is locked.
        expected_num_trainable_weights=len(text_encoder.trainable_weights) + 1,
        expected_num_non_trainable_weights=len(image_encoder.weights),
    )
    for embeddings in outputs.values():
        norms = np.linalg.norm(np.asarray(embeddings), axis=-1)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    assert float(model.temperature) == pytest.approx(5.0, rel=1e-6)
