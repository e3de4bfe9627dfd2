"""Zero-shot: text canonicalisation, prompts, class weights, classifier, eval.

"Known" encoders have embeddings fixed in advance (big_vision's
discriminative_classifier_test idea), so every metric is checked against an
independent numpy computation. The Keras path uses real towers: a
`LockedImageEncoder` whose backbone is a 1x1 convolution with hand-set
weights (pooled feature = mean RGB colour), and a real LiTModel.
"""

import hashlib
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_lit_model
from conftest import make_text_encoder
from conftest import random_images
from test_case import run_model_saving_test
from test_case import run_serialization_test

from keras_lit.layers import LockedImageEncoder
from keras_lit.models import LiTModel
from keras_lit.zero_shot import PROMPT_SETS
from keras_lit.zero_shot import ZeroShotClassifier
from keras_lit.zero_shot import average_prompt_embeddings
from keras_lit.zero_shot import build_zero_shot_weights
from keras_lit.zero_shot import canonicalize_text
from keras_lit.zero_shot import canonicalize_text_tf
from keras_lit.zero_shot import classification_ranks
from keras_lit.zero_shot import evaluate_zero_shot
from keras_lit.zero_shot import evaluate_zero_shot_tfds
from keras_lit.zero_shot import format_prompts
from keras_lit.zero_shot import imagenet_class_names
from keras_lit.zero_shot import load_tfds_classification
from keras_lit.zero_shot import prompt_templates

# sha256 of the class list published with CLIP: `imagenet_classes` in
# openai/CLIP notebooks/Prompt_Engineering_for_ImageNet.ipynb (commit
# d05afc4), one name per line, UTF-8, final newline.
CLIP_IMAGENET_CLASSES_SHA256 = (
    "8800e39242cbed4c6889376e20a49cfdaf4f84a773a6686d15c3b39972ef94c4"
)

TRICKY_TEXTS = [
    "  A photo of a Jack-o'-lantern. ",
    "DON’T stop",  # curly apostrophe
    "Grevy's zebra",
    "ÉCOLE  İstanbul ΟΔΟΣ Straße",  # accents, dotted I, final sigma
    "a\u00a0b\u2003c\tD\n",  # no-break and em spaces, tab, newline
    "x_y/z — w",  # underscore, slash, em dash
    "a (b) [c] {d} $5 +1 <x> ^ ` | ~ #",
    "“quoted” «fr» ¿qué? ¡sí!",
    "日本語、テスト。",
    "emoji 🙂 ok",
    "T-shirt",
    "",
    "...",
]


def unit(x, axis=-1):
    x = np.asarray(x, dtype="float64")
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def text_vector(text, dim=8):
    """A fixed pseudo-random embedding per text."""
    rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
    return rng.normal(size=dim).astype("float32")


class KnownEncoder:
    """Duck-typed model with known embeddings.

    Texts map to `text_vector(text)`; image `i` (its first pixel value)
    maps to `image_table[i]`.
    """

    def __init__(self, image_table=None, dim=8):
        self.image_table = image_table
        self.dim = dim
        self.text_calls = []

    def encode_texts(self, texts, batch_size=256):
        self.text_calls.append(list(texts))
        return np.stack([text_vector(t, self.dim) for t in texts])

    def encode_images(self, images, batch_size=64):
        ids = np.asarray(images)[:, 0, 0, 0].astype(int)
        return self.image_table[ids]


def id_images(ids):
    images = np.zeros((len(ids), 2, 2, 3), dtype="uint8")
    images[:, 0, 0, 0] = ids
    return images


def expected_class_weights(class_names, templates, dim=8):
    """Independent numpy: mean of unit prompt embeddings, re-normalised."""
    rows = []
    for name in class_names:
        prompts = [canonicalize_text(t.replace("{}", name)) for t in templates]
        mean = unit([text_vector(p, dim) for p in prompts]).mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


def brute_force_ranks(scores, labels):
    """Position of the true class after sorting by (-score, class index)."""
    ranks = []
    for row, label in zip(scores, labels):
        order = sorted(range(len(row)), key=lambda c: (-row[c], c))
        ranks.append(order.index(label) + 1)
    return np.array(ranks)


def expected_metrics(scores, labels, num_classes, ks=(1, 5)):
    ranks = brute_force_ranks(scores, labels)
    expected = {f"top{k}_accuracy": np.mean(ranks <= k) for k in ks}
    per_class = []
    for c in range(num_classes):
        hits = [r == 1 for r, y in zip(ranks, labels) if y == c]
        per_class.append(np.mean(hits) if hits else np.nan)
    expected["per_class_accuracy"] = np.array(per_class)
    return expected


# --- Canonicalisation -----------------------------------------------------


def test_canonicalize_text_rules():
    assert canonicalize_text(TRICKY_TEXTS[0]) == "a photo of a jack o lantern"
    assert canonicalize_text("DON’T stop") == "dont stop"
    assert canonicalize_text("Grevy's zebra") == "grevys zebra"
    assert canonicalize_text("a\u00a0b\u2003c\tD\n") == "a b c d"
    assert canonicalize_text("x_y/z — w") == "x y z w"
    assert canonicalize_text("a (b) [c] {d} $5 +1 <x> ^ ` | ~ #") == (
        "a b c d 5 1 x"
    )
    assert canonicalize_text("“quoted” «fr» ¿qué? ¡sí!") == "quoted fr qué sí"
    assert canonicalize_text("T-shirt") == "t shirt"
    assert canonicalize_text(b"Caf\xc3\xa9!") == "café"
    assert canonicalize_text("...") == ""
    with pytest.raises(ValueError, match="must be a string"):
        canonicalize_text(3)


def test_canonicalize_text_tf_agrees_with_python():
    expected = [canonicalize_text(t) for t in TRICKY_TEXTS]
    eager = canonicalize_text_tf(tf.constant(TRICKY_TEXTS)).numpy()
    assert [v.decode("utf-8") for v in eager] == expected

    # In a graph, on a 2-D tensor, as at serving time.
    graph_fn = tf.function(
        canonicalize_text_tf,
        input_signature=[tf.TensorSpec([None, None], tf.string)],
    )
    grid = tf.reshape(tf.constant(TRICKY_TEXTS[:12]), (3, 4))
    result = graph_fn(grid).numpy().reshape(-1)
    assert [v.decode("utf-8") for v in result] == expected[:12]
    with pytest.raises(ValueError, match="string tensor"):
        canonicalize_text_tf(tf.constant([1, 2]))


# --- Prompts --------------------------------------------------------------


def test_format_prompts_is_class_major_and_canonical():
    prompts = format_prompts(["Cat", "Big_Dog"], ["a photo of a {}.", "{}!"])
    assert prompts == [
        "a photo of a cat",
        "cat",
        "a photo of a big dog",
        "big dog",
    ]
    raw = format_prompts(["Cat"], ["A {}."], canonicalize=False)
    assert raw == ["A Cat."]


def test_prompt_errors_and_duplicate_warning():
    with pytest.raises(ValueError, match="non-empty"):
        format_prompts([], ["a {}"])
    with pytest.raises(ValueError, match="a photo of a cat"):
        format_prompts(["cat"], ["a {}", "a photo of a cat"])
    with pytest.raises(ValueError, match="not a single string"):
        format_prompts("cat", ["a {}"])
    with pytest.raises(ValueError, match="prompt-set name"):
        format_prompts(["cat"], "a photo of a {}")
    with pytest.raises(ValueError, match="hold strings"):
        format_prompts(["cat", 3], ["a {}"])
    with pytest.raises(ValueError, match="contain a word"):
        format_prompts(["cat", "?!"], ["a {}"])
    with pytest.warns(UserWarning, match="'Crane' and 'crane.'"):
        format_prompts(["Crane", "heron", "crane."], ["a {}"])


def test_shipped_prompt_sets():
    templates = prompt_templates("clip_imagenet_80")
    assert len(templates) == len(set(templates)) == 80
    assert templates[0] == "a bad photo of a {}."
    assert templates[-1] == "a tattoo of the {}."
    best = prompt_templates("clip_best_7")
    assert best == [
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ]
    assert set(best) <= set(templates)
    assert prompt_templates("identity") == ["{}"]
    assert set(PROMPT_SETS) == {"clip_imagenet_80", "clip_best_7", "identity"}
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[:3] == ["tench", "goldfish", "great white shark"]
    assert names[-1] == "toilet paper"
    # CLIP's published list, byte for byte (openai/CLIP notebook
    # "Prompt_Engineering_for_ImageNet", `imagenet_classes`, joined with
    # "\n" plus a final newline). It names classes 657 and 744 both
    # "missile" and 836 and 837 both "sunglasses": kept for comparable
    # numbers, and flagged.
    text = ("\n".join(names) + "\n").encode("utf-8")
    assert hashlib.sha256(text).hexdigest() == CLIP_IMAGENET_CLASSES_SHA256
    assert names[657] == names[744] == "missile"
    assert names[836] == names[837] == "sunglasses"
    with pytest.warns(UserWarning, match="missile.*sunglasses"):
        format_prompts(names, ["{}"])
    with pytest.raises(ValueError, match="clip_best_7"):
        prompt_templates("clip_best_8")


# --- Class weights --------------------------------------------------------


def test_weights_average_then_renormalise():
    names = ["cat", "dog", "red fox"]
    templates = ["a photo of a {}.", "a {} toy.", "art of the {}."]
    encoder = KnownEncoder()
    weights = build_zero_shot_weights(encoder, names, templates)
    expected = expected_class_weights(names, templates)
    assert weights.dtype == np.float32 and weights.shape == (3, 8)
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(weights, axis=1), 1, atol=1e-6)
    # The plain mean of unit vectors is shorter than 1: without the final
    # re-normalisation the rows would differ.
    plain_mean = np.stack(
        [
            unit([text_vector(p) for p in format_prompts([n], templates)]).mean(
                0
            )
            for n in names
        ]
    )
    assert np.all(np.linalg.norm(plain_mean, axis=1) < 0.99)
    # Prompts reach the encoder canonicalised and class-major.
    assert encoder.text_calls[0][:2] == ["a photo of a cat", "a cat toy"]


def test_weights_are_chunked_with_bounded_calls():
    names = [f"class {i}" for i in range(30)]
    templates = prompt_templates("clip_best_7")
    small = KnownEncoder()
    weights = build_zero_shot_weights(
        small, names, templates, batch_size=4, chunk_size=16
    )
    # 210 prompts in calls of at most `chunk_size` texts.
    assert max(len(call) for call in small.text_calls) == 16
    assert len(small.text_calls) == 14
    assert sum(len(call) for call in small.text_calls) == 210
    large = build_zero_shot_weights(KnownEncoder(), names, templates, 1024)
    np.testing.assert_allclose(weights, large, atol=1e-6)
    np.testing.assert_allclose(
        weights, expected_class_weights(names, templates), atol=1e-6
    )


def test_average_prompt_embeddings_from_chunks():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(12, 5))
    whole = average_prompt_embeddings(embeddings, num_templates=4)
    # Chunks that split classes across boundaries give the same answer.
    chunks = [embeddings[:5], embeddings[5:6], embeddings[6:]]
    np.testing.assert_allclose(
        average_prompt_embeddings(iter(chunks), 4), whole, atol=1e-7
    )
    expected = unit(unit(embeddings).reshape(3, 4, 5).mean(axis=1))
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    with pytest.raises(ValueError, match="whole number of classes"):
        average_prompt_embeddings(embeddings[:10], 4)


def test_weights_progress_bar(capsys):
    names = [f"class {i}" for i in range(6)]
    build_zero_shot_weights(KnownEncoder(), names, ["{}"], 1, verbose=1)
    assert "Zero-shot prompts" in capsys.readouterr().err
    build_zero_shot_weights(KnownEncoder(), names, ["{}"], 1, verbose=0)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="verbose"):
        build_zero_shot_weights(KnownEncoder(), names, ["{}"], verbose=2)
    with pytest.raises(ValueError, match="encode_texts"):
        build_zero_shot_weights(object(), names, ["{}"])
    with pytest.raises(ValueError, match="chunk_size"):
        build_zero_shot_weights(KnownEncoder(), names, ["{}"], chunk_size=0)


def test_weights_with_real_lit_model(lit_model):
    names = ["red circle", "blue square"]
    templates = ["a {}.", "a small {}", "{} on stripes"]
    weights = build_zero_shot_weights(lit_model, names, templates)
    prompts = format_prompts(names, templates)
    embeddings = lit_model.encode_texts(prompts).reshape(2, 3, -1)
    expected = unit(unit(embeddings).mean(axis=1))
    np.testing.assert_allclose(weights, expected, atol=1e-5)


# --- Known-embedding classifier ------------------------------------------

COLOURS = np.array(
    [[250, 10, 10], [10, 240, 20], [20, 20, 250], [200, 200, 10], [9, 9, 9]],
    dtype="uint8",
)
CLASS_WEIGHTS = unit(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 1, 0], [1, 1, 1]]
).astype("float32")
CLASS_NAMES = ["red", "green", "blue", "yellow", "amber", "grey"]


def colour_image_encoder():
    """Pooled feature = mean RGB colour (a 1x1 conv set to the identity)."""
    inputs = keras.Input((4, 4, 3))
    mix = keras.layers.Conv2D(3, 1, use_bias=False, name="colour_mix")
    backbone = keras.Model(inputs, mix(inputs), name="colour_backbone")
    mix.set_weights([np.eye(3, dtype="float32")[None, None]])
    return LockedImageEncoder(backbone, pooling="avg")


def colour_images(colour_ids):
    return np.broadcast_to(
        COLOURS[np.asarray(colour_ids)][:, None, None, :],
        (len(colour_ids), 4, 4, 3),
    ).copy()


def test_classifier_matches_numpy():
    classifier = ZeroShotClassifier(
        colour_image_encoder(), CLASS_NAMES, CLASS_WEIGHTS, temperature=7.0
    )
    images = colour_images([0, 1, 2, 3, 4, 0])
    probabilities = classifier.predict(images, verbose=0)
    logits = 7.0 * unit(COLOURS[[0, 1, 2, 3, 4, 0]]) @ CLASS_WEIGHTS.T
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_array_equal(
        probabilities.argmax(axis=1), [0, 1, 2, 3, 5, 0]
    )

    top = classifier.predict_top_k(images, k=3)
    order = np.argsort(-expected, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(top["indices"], order)
    # "yellow" and "amber" have identical weights: the lower index wins.
    assert top["class_names"][3][:2] == ["yellow", "amber"]
    np.testing.assert_allclose(
        top["probabilities"],
        np.take_along_axis(expected, order, axis=1),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="`k` must be an int in"):
        classifier.predict_top_k(images, k=7)


def test_classifier_from_lit_model(lit_model):
    names = ["red circle", "blue square", "green star"]
    classifier = ZeroShotClassifier.from_lit_model(
        lit_model, names, ["a {}", "a big {}"]
    )
    weights = build_zero_shot_weights(lit_model, names, ["a {}", "a big {}"])
    np.testing.assert_allclose(classifier.class_weights.numpy(), weights)
    assert classifier.temperature == pytest.approx(10.0, rel=1e-6)
    images = random_images(3)
    logits = 10.0 * lit_model.encode_images(images) @ weights.T
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        classifier.predict(images, verbose=0), expected, atol=1e-5
    )


def test_classifier_serialization_and_saving(tmp_path):
    classifier = ZeroShotClassifier(
        colour_image_encoder(), CLASS_NAMES, CLASS_WEIGHTS, temperature=7.0
    )
    restored = run_serialization_test(classifier)
    assert restored.class_names == CLASS_NAMES
    images = colour_images([0, 1, 2, 3])
    restored = run_model_saving_test(classifier, images, tmp_path)
    assert restored.class_names == CLASS_NAMES
    assert restored.temperature == 7.0
    np.testing.assert_array_equal(restored.class_weights.numpy(), CLASS_WEIGHTS)


def test_classifier_as_a_layer(tmp_path):
    classifier = ZeroShotClassifier(
        colour_image_encoder(), CLASS_NAMES, CLASS_WEIGHTS, temperature=7.0
    )
    inputs = keras.Input((4, 4, 3), name="pixels")
    probabilities = classifier(inputs)
    # E.g. group the six colours into "warm"/"cool" with a trainable layer.
    groups = keras.layers.Dense(2, name="groups")(probabilities)
    outer = keras.Model(
        inputs, {"probabilities": probabilities, "groups": groups}
    )
    images = colour_images([2, 0, 1])
    outputs = outer.predict(images, verbose=0)
    np.testing.assert_array_equal(
        outputs["probabilities"].argmax(axis=1), [2, 0, 1]
    )
    np.testing.assert_allclose(
        outputs["probabilities"], classifier.predict(images, verbose=0)
    )
    path = str(tmp_path / "outer.keras")
    outer.save(path)
    reloaded = keras.saving.load_model(path)
    again = reloaded.predict(images, verbose=0)
    for key in ("probabilities", "groups"):
        np.testing.assert_array_equal(again[key], outputs[key])


def test_classifier_errors():
    encoder = colour_image_encoder()
    with pytest.raises(ValueError, match=r"shape \[num_classes"):
        ZeroShotClassifier(encoder, CLASS_NAMES, CLASS_WEIGHTS[:5])
    with pytest.raises(ValueError, match="LockedImageEncoder"):
        ZeroShotClassifier(keras.layers.Dense(3), CLASS_NAMES)
    with pytest.raises(ValueError, match="temperature"):
        ZeroShotClassifier(encoder, CLASS_NAMES, temperature=0.0)
    with pytest.raises(ValueError, match="non-empty"):
        ZeroShotClassifier(encoder, [])


# --- evaluate_zero_shot ---------------------------------------------------


def test_classification_ranks_ties_against_brute_force():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(200, 7)).astype("float32")  # many ties
    labels = rng.integers(0, 7, size=200)
    np.testing.assert_array_equal(
        classification_ranks(scores, labels), brute_force_ranks(scores, labels)
    )
    # Rank 1 is exactly argmax (first index among ties).
    np.testing.assert_array_equal(
        classification_ranks(scores, labels) == 1, scores.argmax(1) == labels
    )
    with pytest.raises(ValueError, match=r"class ids in \[0, 7\)"):
        classification_ranks(scores, np.full(200, 7))


@pytest.mark.parametrize("form", ["arrays", "unbatched", "batched", "tuples"])
def test_evaluate_zero_shot_matches_numpy(form):
    names = ["cat", "dog", "fox", "owl", "eel", "ant", "cat", "bee", "cow"]
    # Duplicates: 0 and 6.
    templates = ["a photo of a {}.", "a {}"]
    rng = np.random.default_rng(1)
    weights = expected_class_weights(names, templates)
    # Images near a class (with noise), so ranks vary; 'owl' has no images.
    labels = np.array([0, 1, 2, 4, 5, 6, 7, 8, 2, 4, 5, 6, 1, 2, 0, 7, 8])
    image_table = weights[labels] + rng.normal(scale=0.9, size=(17, 8))
    encoder = KnownEncoder(image_table=image_table.astype("float32"))
    images = id_images(np.arange(17))
    if form == "arrays":
        data = {"images": images, "labels": labels}
    elif form == "unbatched":
        data = tf.data.Dataset.from_tensor_slices(
            {"images": images, "labels": labels}
        )
    elif form == "batched":
        data = tf.data.Dataset.from_tensor_slices(
            {"images": images, "labels": labels}
        ).batch(5)
    else:
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    with pytest.warns(UserWarning, match="duplicates"):
        results = evaluate_zero_shot(encoder, data, names, templates, 3)

    scores = unit(image_table) @ weights.T
    expected = expected_metrics(scores, labels, len(names))
    assert results["top1_accuracy"] == expected["top1_accuracy"]
    assert results["top5_accuracy"] == expected["top5_accuracy"]
    np.testing.assert_array_equal(
        results["per_class_accuracy"], expected["per_class_accuracy"]
    )
    assert np.isnan(results["per_class_accuracy"][3])  # no 'owl' images
    # The second 'cat' ties with the first and always loses the tie.
    assert results["per_class_accuracy"][6] == 0.0
    assert results["mean_per_class_accuracy"] == pytest.approx(
        np.nanmean(expected["per_class_accuracy"]), abs=1e-12
    )
    assert results["num_examples"] == 17
    assert 0 < results["top1_accuracy"] < results["top5_accuracy"] < 1


def test_evaluate_zero_shot_keras_path_with_known_image_tower(vocabulary):
    image_encoder = colour_image_encoder()
    model = LiTModel(image_encoder, make_text_encoder(vocabulary, 3))
    colour_ids = np.array([0, 1, 2, 3, 4, 4, 1, 0])
    labels = np.array([0, 1, 2, 4, 5, 3, 1, 2])
    results = evaluate_zero_shot(
        model,
        {"images": colour_images(colour_ids), "labels": labels},
        CLASS_NAMES,
        class_weights=CLASS_WEIGHTS,
        top_k=(1, 2),
    )
    scores = unit(COLOURS[colour_ids]) @ CLASS_WEIGHTS.T
    expected = expected_metrics(scores, labels, 6, ks=(1, 2))
    assert results["top1_accuracy"] == expected["top1_accuracy"]
    assert 0 < results["top1_accuracy"] < 1
    assert results["top2_accuracy"] == expected["top2_accuracy"]
    np.testing.assert_array_equal(
        results["per_class_accuracy"], expected["per_class_accuracy"]
    )


def test_evaluate_zero_shot_real_model_matches_its_embeddings(lit_model):
    names = ["red circle", "blue square", "green star"]
    images = random_images(6)
    labels = np.array([0, 1, 2, 0, 1, 2])
    results = evaluate_zero_shot(
        lit_model, {"images": images, "labels": labels}, names, ["a {}"]
    )
    weights = unit(lit_model.encode_texts(format_prompts(names, ["a {}"])))
    scores = lit_model.encode_images(images) @ weights.T
    expected = expected_metrics(scores, labels, 3)
    assert results["top1_accuracy"] == expected["top1_accuracy"]
    assert results["top5_accuracy"] == 1.0


def test_evaluate_zero_shot_errors():
    encoder = KnownEncoder(image_table=np.eye(8, dtype="float32"))
    images = id_images(np.arange(3))
    with pytest.raises(ValueError, match=r"provide 'labels'.*\['images'\]"):
        evaluate_zero_shot(encoder, {"images": images}, ["a", "b"])
    dataset = tf.data.Dataset.from_tensor_slices({"pixels": images})
    with pytest.raises(ValueError, match="'images' and 'labels'"):
        evaluate_zero_shot(encoder, dataset, ["a", "b"])
    with pytest.raises(ValueError, match=r"class ids in \[0, 2\)"):
        evaluate_zero_shot(
            encoder, {"images": images, "labels": [0, 1, 2]}, ["a", "b"]
        )
    with pytest.raises(ValueError, match="one integer class id"):
        evaluate_zero_shot(
            encoder, {"images": images, "labels": [0.0, 1.0, 1.0]}, ["a", "b"]
        )
    with pytest.raises(ValueError, match="empty"):
        evaluate_zero_shot(
            encoder, {"images": images[:0], "labels": []}, ["a", "b"]
        )
    with pytest.raises(ValueError, match="top_k"):
        evaluate_zero_shot(
            encoder,
            {"images": images, "labels": [0, 1, 1]},
            ["a", "b"],
            top_k=(0,),
        )


# --- TFDS -----------------------------------------------------------------


def test_zero_shot_on_tfds_by_name_offline(vocabulary):
    tfds = pytest.importorskip("tensorflow_datasets")
    model = make_lit_model(vocabulary)
    with tfds.testing.mock_data(num_examples=6):
        results = evaluate_zero_shot_tfds(
            model, "cats_vs_dogs", split="train", templates=["a photo of a {}"]
        )
        # Independent path: raw tfds examples (random sizes) -> resize.
        raw = list(tfds.load("cats_vs_dogs", split="train").take(6))
    assert results["class_names"] == ["cat", "dog"]
    assert results["num_examples"] == 6
    images = np.stack(
        [
            tf.image.resize(
                tf.image.resize_with_crop_or_pad(
                    ex["image"],
                    *[int(min(ex["image"].shape[:2]))] * 2,
                ),
                (32, 32),
                antialias=True,
            ).numpy()
            for ex in raw
        ]
    )
    labels = np.array([int(ex["label"]) for ex in raw])
    weights = unit(model.encode_texts(["a photo of a cat", "a photo of a dog"]))
    scores = model.encode_images(np.clip(images, 0, 255)) @ weights.T
    assert results["top1_accuracy"] == pytest.approx(
        np.mean(scores.argmax(1) == labels), abs=1 / 6 + 1e-9
    )


def test_tfds_grayscale_names_and_errors():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5):
        dataset, names = load_tfds_classification(
            "mnist", image_size=(8, 8), batch_size=5
        )
        batch = next(iter(dataset))
        with pytest.raises(ValueError, match="no feature 'photo'"):
            load_tfds_classification("mnist", image_key="photo")
        with pytest.raises(ValueError, match="name all 10 classes"):
            load_tfds_classification("mnist", class_names=["zero"])
    assert names == [str(i) for i in range(10)]
    images = batch["images"].numpy()
    assert images.shape == (5, 8, 8, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    assert batch["labels"].dtype == tf.int32
