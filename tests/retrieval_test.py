"""Image-text retrieval: ranks and Recall@k against brute force, with ties.

Ties are made exact by using embeddings whose dot products are exact in
float32 (entries in {0, +-0.5, +-1}), so "scores equal" means equal bits.
The definition under test (pessimistic): a query's rank is 1 + the number
of wrong candidates scoring at least as high as its best correct one.
"""

import numpy as np
import pytest
import tensorflow as tf
from conftest import CAPTIONS
from conftest import random_images

from keras_lit.zero_shot import evaluate_retrieval
from keras_lit.zero_shot import retrieval_metrics
from keras_lit.zero_shot import retrieval_ranks


def brute_force_ranks(image_embeddings, text_embeddings, text_image_ids):
    """Explicit loops over every query and candidate."""
    image_to_text = []
    for i, image in enumerate(image_embeddings):
        mine = [m for m, owner in enumerate(text_image_ids) if owner == i]
        if not mine:
            continue
        scores = [float(np.dot(image, text)) for text in text_embeddings]
        best = max(scores[m] for m in mine)
        wrong = sum(
            1
            for m, score in enumerate(scores)
            if m not in mine and score >= best
        )
        image_to_text.append(1 + wrong)
    text_to_image = []
    for text, owner in zip(text_embeddings, text_image_ids):
        scores = [float(np.dot(image, text)) for image in image_embeddings]
        wrong = sum(
            1
            for j, score in enumerate(scores)
            if j != owner and score >= scores[owner]
        )
        text_to_image.append(1 + wrong)
    return np.array(image_to_text), np.array(text_to_image)


def brute_force_metrics(i2t, t2i, ks=(1, 5, 10)):
    expected = {}
    for name, ranks in (("image_to_text", i2t), ("text_to_image", t2i)):
        for k in ks:
            hits = [r <= k for r in ranks]
            expected[f"{name}_recall_at_{k}"] = sum(hits) / len(hits)
        expected[f"{name}_mean_rank"] = sum(ranks) / len(ranks)
        ordered = sorted(ranks)
        middle = len(ordered) // 2
        expected[f"{name}_median_rank"] = (
            float(ordered[middle])
            if len(ordered) % 2
            else (ordered[middle - 1] + ordered[middle]) / 2
        )
    return expected


def tied_embeddings(rng, count, dim=4):
    """Vectors on a coarse grid: many exact ties, exact dot products."""
    return rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=(count, dim)).astype(
        "float32"
    )


def test_hand_computed_ranks():
    images = np.array([[1, 0], [0, 1], [1, 0]], dtype="float32")
    # Image 0 owns captions 0, 1; image 1 owns 2; image 2 owns 3.
    texts = np.array([[0, 1], [1, 0], [0, 1], [1, 0]], dtype="float32")
    i2t, t2i = retrieval_ranks(images, texts, [0, 0, 1, 2])
    # Image 0: best own caption (1) scores 1, tied by caption 3 (wrong): 2.
    # Image 1: caption 2 scores 1, tied by caption 0 (wrong): rank 2.
    # Image 2: caption 3 scores 1, tied by caption 1 (wrong): rank 2.
    np.testing.assert_array_equal(i2t, [2, 2, 2])
    # Caption 0 -> image 0 scores 0, images 1 (1) and 2 (0) are >=: rank 3.
    # Caption 1 -> image 0 scores 1, image 2 ties: rank 2. Caption 2 ->
    # image 1 scores 1: rank 1. Caption 3 -> image 2, image 0 ties: rank 2.
    np.testing.assert_array_equal(t2i, [3, 2, 1, 2])


def test_collapsed_model_gets_the_worst_rank_not_the_best():
    images = np.ones((5, 3), dtype="float32")
    texts = np.ones((10, 3), dtype="float32")
    i2t, t2i = retrieval_ranks(images, texts, np.repeat(np.arange(5), 2))
    np.testing.assert_array_equal(i2t, np.full(5, 9))  # 8 wrong captions
    np.testing.assert_array_equal(t2i, np.full(10, 5))  # 4 wrong images
    metrics = retrieval_metrics(i2t, t2i)
    assert metrics["image_to_text_recall_at_1"] == 0.0
    assert metrics["text_to_image_recall_at_1"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_match_brute_force_with_ties_and_several_captions(seed):
    rng = np.random.default_rng(seed)
    images = tied_embeddings(rng, 23)
    # 1 to 5 captions per image; image 7 has none (a distractor only).
    counts = rng.integers(1, 6, size=23)
    counts[7] = 0
    owners = np.repeat(np.arange(23), counts)
    texts = tied_embeddings(rng, len(owners))
    # Plant exact duplicates: an identical image and a caption copied onto
    # another image's caption.
    images[5] = images[11]
    texts[3] = texts[-1]
    i2t, t2i = retrieval_ranks(images, texts, owners, chunk_size=4)
    expected_i2t, expected_t2i = brute_force_ranks(images, texts, owners)
    np.testing.assert_array_equal(i2t, expected_i2t)
    np.testing.assert_array_equal(t2i, expected_t2i)
    assert len(i2t) == 22  # image 7 is not a query
    metrics = retrieval_metrics(i2t, t2i, ks=(1, 5, 10))
    expected = brute_force_metrics(expected_i2t, expected_t2i)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-12), key
    assert metrics["num_images"] == 22
    assert metrics["num_texts"] == len(owners)


class GridEncoder:
    """Duck-typed model: image i and text "caption n" have fixed vectors."""

    def __init__(self, image_table, text_table):
        self.image_table = image_table
        self.text_table = text_table

    def encode_images(self, images, batch_size=64):
        return self.image_table[np.asarray(images)[:, 0, 0, 0].astype(int)]

    def encode_texts(self, texts, batch_size=256):
        return self.text_table[[int(t.split()[-1]) for t in texts]]


def unit_grid(rng, count):
    """Unit vectors with exact arithmetic: four entries of +-0.5."""
    return rng.choice([-0.5, 0.5], size=(count, 4)).astype("float32")


@pytest.mark.parametrize("form", ["lists", "padded", "ragged", "batched"])
def test_evaluate_retrieval_matches_brute_force(form):
    rng = np.random.default_rng(5)
    num_images = 12
    counts = rng.integers(1, 6, size=num_images)  # COCO-like, up to 5
    owners = np.repeat(np.arange(num_images), counts)
    image_table = unit_grid(rng, num_images)
    text_table = unit_grid(rng, len(owners))  # 16 distinct vectors: ties
    # Each image's first caption is its own vector (the best score), which
    # other images and captions may share exactly.
    first_captions = np.searchsorted(owners, np.arange(num_images))
    text_table[first_captions] = image_table
    encoder = GridEncoder(image_table, text_table)
    images = np.zeros((num_images, 2, 2, 3), dtype="uint8")
    images[:, 0, 0, 0] = np.arange(num_images)
    caption_lists = [
        [f"caption {m}" for m in np.flatnonzero(owners == i)]
        for i in range(num_images)
    ]
    if form == "lists":
        data = {"images": images, "texts": caption_lists}
    elif form == "padded":  # [N, 5] with "" padding
        padded = [texts + [""] * (5 - len(texts)) for texts in caption_lists]
        data = {"images": images, "texts": np.array(padded)}
    else:
        data = tf.data.Dataset.from_tensor_slices(
            {"images": images, "texts": tf.ragged.constant(caption_lists)}
        )
        if form == "batched":
            data = data.ragged_batch(5)
    results = evaluate_retrieval(encoder, data, batch_size=4)
    expected = brute_force_metrics(
        *brute_force_ranks(image_table, text_table, owners)
    )
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, abs=1e-12), key
    assert results["num_texts"] == len(owners)
    assert 0 < results["image_to_text_recall_at_1"] < 1


def test_evaluate_retrieval_real_model_matches_its_embeddings(lit_model):
    images = random_images(6)
    captions = [[CAPTIONS[i], CAPTIONS[i + 1]] for i in range(6)]
    results = evaluate_retrieval(
        lit_model, {"images": images, "texts": captions}, ks=(1, 2)
    )
    image_embeddings = lit_model.encode_images(images)
    flat = [text for texts in captions for text in texts]
    text_embeddings = lit_model.encode_texts(flat)
    owners = np.repeat(np.arange(6), 2)
    expected = brute_force_metrics(
        *brute_force_ranks(image_embeddings, text_embeddings, owners),
        ks=(1, 2),
    )
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, abs=1e-9), key


class PositionNoiseEncoder:
    """Text embeddings tilt with batch position (cosines move by ~1e-6),
    like float rounding that differs across a GEMM's rows."""

    def encode_texts(self, texts):
        base = np.array([[1.0, 0.0] if t == "a" else [0.0, 1.0] for t in texts])
        noise = 1e-3 * np.arange(len(texts))[:, None] * np.array([[0.0, 1.0]])
        return (base + noise).astype("float32")

    def encode_images(self, images):
        return np.tile(np.array([[1.0, 0.0]], "float32"), (len(images), 1))


def test_repeated_caption_is_a_tie_whatever_its_batch_position():
    # Both images have caption "a": each copy must score exactly the same,
    # so each image sees the other's copy as a tie (rank 2), whichever
    # copy the noise would have favoured.
    results = evaluate_retrieval(
        PositionNoiseEncoder(),
        {"images": np.zeros((2, 2, 2, 3)), "texts": [["a", "b"], ["a"]]},
        ks=(1,),
    )
    assert results["image_to_text_mean_rank"] == 2.0
    assert results["image_to_text_recall_at_1"] == 0.0


def test_one_caption_per_image_as_plain_strings(lit_model):
    images = random_images(4)
    as_strings = evaluate_retrieval(
        lit_model, {"images": images, "texts": CAPTIONS[:4]}
    )
    as_lists = evaluate_retrieval(
        lit_model, {"images": images, "texts": [[c] for c in CAPTIONS[:4]]}
    )
    assert as_strings == as_lists
    assert as_strings["num_texts"] == 4


def test_retrieval_errors():
    encoder = GridEncoder(np.eye(4, dtype="float32"), np.eye(4))
    images = np.zeros((2, 2, 2, 3), dtype="uint8")
    with pytest.raises(ValueError, match=r"provide 'texts'.*\['images'\]"):
        evaluate_retrieval(encoder, {"images": images})
    dataset = tf.data.Dataset.from_tensor_slices(
        {"image": images, "caption": ["a", "b"]}
    )
    with pytest.raises(ValueError, match="provide 'images' and 'texts'"):
        evaluate_retrieval(encoder, dataset)
    with pytest.raises(ValueError, match="no captions"):
        evaluate_retrieval(encoder, {"images": images, "texts": ["", ""]})
    with pytest.raises(ValueError, match="one entry per example"):
        evaluate_retrieval(encoder, {"images": images, "texts": ["a"]})
    with pytest.raises(ValueError, match="Captions must be strings"):
        evaluate_retrieval(encoder, {"images": images, "texts": [1, 2]})
    with pytest.raises(ValueError, match="`ks`"):
        evaluate_retrieval(
            encoder, {"images": images, "texts": ["a", "b"]}, ks=()
        )
    with pytest.raises(ValueError, match="one image id per caption"):
        retrieval_ranks(np.eye(2), np.eye(2), [0])
