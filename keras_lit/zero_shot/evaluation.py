"""Zero-shot classification and image-text retrieval metrics.

Pure numpy functions compute ranks and metrics from embeddings; the
`evaluate_*` functions feed them from a model and a dataset.

**Ranks and ties.**
- Classification: the rank of the true class is its position in the order
  that `tf.math.top_k` and `np.argmax` use: higher score first, ties broken
  by the lower class index. So top-1 accuracy is exactly the accuracy of
  `argmax` predictions, and duplicate class weights (e.g. CLIP's two
  "missile" and two "sunglasses" classes) resolve to the first of them.
- Retrieval: **pessimistic**. A query's rank is `1 +` the number of
  *wrong* candidates scoring **at least as high** as its best correct
  candidate. A tie with a wrong candidate counts against the model, so a
  collapsed model (every score equal) gets the worst rank, not a perfect
  one. When an image has several captions, image -> text uses its
  best-ranked caption (the other captions are not counted as wrong);
  text -> image has exactly one correct image per caption. A caption
  repeated for several images is embedded once, so its copies tie exactly.
"""

import numpy as np

from keras_lit.zero_shot.datasets import classification_batches
from keras_lit.zero_shot.datasets import encode_retrieval_set
from keras_lit.zero_shot.weights import build_zero_shot_weights
from keras_lit.zero_shot.weights import encoder_function
from keras_lit.zero_shot.weights import l2_normalize
from keras_lit.zero_shot.weights import validate_class_names

DEFAULT_RECALL_KS = (1, 5, 10)


# --- Pure functions -------------------------------------------------------


def classification_ranks(scores, labels):
    """1-based rank of each true class, ties to the lower class index.

    Args:
        scores: `[N, K]` class scores (logits, probabilities or cosines).
        labels: `[N]` integer class ids.

    Returns:
        int64 `[N]`: `1 + #{c: s_c > s_y} + #{c < y: s_c == s_y}`.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    num_classes = scores.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(
            f"Labels must be class ids in [0, {num_classes}). "
            f"Received: label={int(bad)}"
        )
    true = np.take_along_axis(scores, labels[:, None], axis=1)
    better = np.sum(scores > true, axis=1)
    lower_index = np.arange(num_classes)[None, :] < labels[:, None]
    tied_before = np.sum((scores == true) & lower_index, axis=1)
    return (1 + better + tied_before).astype("int64")


def classification_metrics(ranks, labels, num_classes, top_k=(1, 5)):
    """Top-k accuracy and per-class (top-1) accuracy from true-class ranks.

    Returns:
        dict with `"top{k}_accuracy"` for each `k`, `"per_class_accuracy"`
        (float64 `[K]`, NaN for classes without examples),
        `"mean_per_class_accuracy"` (mean over classes that have examples)
        and `"num_examples"`.
    """
    ranks = np.asarray(ranks)
    labels = np.asarray(labels)
    if ranks.size == 0:
        raise ValueError("The evaluation dataset is empty.")
    results = {f"top{k}_accuracy": float(np.mean(ranks <= k)) for k in top_k}
    correct = np.bincount(labels, weights=ranks == 1, minlength=num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, correct / counts, np.nan)
    results["per_class_accuracy"] = per_class
    results["mean_per_class_accuracy"] = float(np.nanmean(per_class))
    results["num_examples"] = int(ranks.size)
    return results


def retrieval_ranks(
    image_embeddings, text_embeddings, text_image_ids, chunk_size=1024
):
    """Pessimistic 1-based ranks for both retrieval directions.

    Scores are dot products (cosines for unit embeddings), computed in
    chunks of `chunk_size` queries so memory stays `chunk_size x N`.

    Args:
        image_embeddings: `[N, D]`.
        text_embeddings: `[M, D]`.
        text_image_ids: int `[M]`: the image each caption describes.
        chunk_size: int. Queries scored at once.

    Returns:
        `(image_to_text_ranks, text_to_image_ranks)`: int64 arrays with one
        rank per image that has at least one caption, and one per caption.
    """
    images = np.asarray(image_embeddings, dtype="float32")
    texts = np.asarray(text_embeddings, dtype="float32")
    owners = np.asarray(text_image_ids, dtype="int64")
    num_images = images.shape[0]
    if owners.shape != (texts.shape[0],):
        raise ValueError(
            "`text_image_ids` must give one image id per caption. Received "
            f"shape {owners.shape} for {texts.shape[0]} captions."
        )
    if owners.size and (owners.min() < 0 or owners.max() >= num_images):
        raise ValueError(
            f"`text_image_ids` must be in [0, {num_images}). "
            f"Received: {int(owners.max())}"
        )
    has_caption = np.bincount(owners, minlength=num_images) > 0
    queries = np.flatnonzero(has_caption)

    image_to_text = []
    for start in range(0, len(queries), chunk_size):
        ids = queries[start : start + chunk_size]
        scores = images[ids] @ texts.T  # [n, M]
        positive = owners[None, :] == ids[:, None]
        best = np.max(np.where(positive, scores, -np.inf), axis=1)
        wrong = np.sum((scores >= best[:, None]) & ~positive, axis=1)
        image_to_text.append(1 + wrong)

    text_to_image = []
    for start in range(0, len(texts), chunk_size):
        ids = owners[start : start + chunk_size]
        scores = texts[start : start + chunk_size] @ images.T  # [m, N]
        true = np.take_along_axis(scores, ids[:, None], axis=1)
        positive = np.arange(num_images)[None, :] == ids[:, None]
        wrong = np.sum((scores >= true) & ~positive, axis=1)
        text_to_image.append(1 + wrong)

    def concat(parts):
        return np.concatenate(parts).astype("int64") if parts else np.zeros(0)

    return concat(image_to_text), concat(text_to_image)


def retrieval_metrics(image_to_text_ranks, text_to_image_ranks, ks=(1, 5, 10)):
    """Recall@k, mean and median rank for both directions.

    Returns:
        dict with `"{direction}_recall_at_{k}"`, `"{direction}_mean_rank"`
        and `"{direction}_median_rank"` for `direction` in
        `image_to_text`, `text_to_image`, plus `"num_images"` (image
        queries) and `"num_texts"`.
    """
    results = {}
    for direction, ranks in (
        ("image_to_text", np.asarray(image_to_text_ranks)),
        ("text_to_image", np.asarray(text_to_image_ranks)),
    ):
        if ranks.size == 0:
            raise ValueError(
                "Retrieval needs at least one image with a caption."
            )
        for k in ks:
            results[f"{direction}_recall_at_{k}"] = float(np.mean(ranks <= k))
        results[f"{direction}_mean_rank"] = float(np.mean(ranks))
        results[f"{direction}_median_rank"] = float(np.median(ranks))
    results["num_images"] = int(np.asarray(image_to_text_ranks).size)
    results["num_texts"] = int(np.asarray(text_to_image_ranks).size)
    return results


def distinct_captions(captions):
    """`(distinct captions in first-seen order, int64 index of each caption)`.

    Retrieval embeds each distinct caption once: a caption repeated for
    several images then scores exactly the same against every image, so
    the pessimistic tie rule always applies to it, whatever batch position
    (and float rounding) each copy would have had.
    """
    positions = {}
    index = [positions.setdefault(text, len(positions)) for text in captions]
    return list(positions), np.asarray(index, dtype="int64")


# --- Evaluators -----------------------------------------------------------


def evaluate_zero_shot(
    model,
    dataset,
    class_names,
    templates=None,
    batch_size=64,
    top_k=(1, 5),
    image_key="images",
    label_key="labels",
    class_weights=None,
    verbose="auto",
):
    """Zero-shot classification accuracy, as CLIP and LiT report it.

    Builds class weights from the prompt ensemble (`build_zero_shot_weights`)
    unless `class_weights` is given, embeds every image, and ranks the
    classes by cosine similarity (the temperature does not change a
    ranking). See the module docstring for tie handling.

    Args:
        model: a `LiTModel`, or any object with `encode_images(images)` and
            `encode_texts(texts)` returning `[N, D]` embeddings.
        dataset: `{"images": [N, H, W, 3] in [0, 255], "labels": [N]}` as
            arrays or a `tf.data.Dataset` (batched or not); `(images,
            labels)` tuples also work. `"image_embeddings"` (pre-head
            features) may replace `"images"` for a `LiTModel`.
        class_names: list of `K` class names; label `k` is `class_names[k]`.
        templates: prompt templates containing `{}`, or a prompt-set name.
            Defaults to `"clip_best_7"`.
        batch_size: int. Images per batch (for unbatched data) and per
            model call.
        top_k: tuple of ints. Which top-k accuracies to report.
        image_key, label_key: dataset keys. Default `"images"`, `"labels"`.
        class_weights: optional precomputed `[K, D]` weights.
        verbose: progress bar while building the weights.

    Returns:
        dict: `"top1_accuracy"`, `"top5_accuracy"` (one per `top_k`),
        `"per_class_accuracy"` (`[K]`, NaN where a class has no examples),
        `"mean_per_class_accuracy"`, `"num_examples"`.

    Example:
    >>> results = evaluate_zero_shot(
    ...     model, {"images": images, "labels": labels},
    ...     class_names=["cat", "dog"])  # doctest: +SKIP
    >>> results["top1_accuracy"]  # doctest: +SKIP
    0.93
    """
    top_k = _validate_ks(top_k, "top_k")
    batch_size = _validate_batch_size(batch_size)
    if class_weights is None:
        class_weights = build_zero_shot_weights(
            model, class_names, templates, batch_size=256, verbose=verbose
        )
    else:
        class_names = validate_class_names(class_names)
        class_weights = np.asarray(class_weights, dtype="float32")
        if class_weights.shape[:1] != (len(class_names),):
            raise ValueError(
                "`class_weights` must have one row per class. Received: "
                f"shape {class_weights.shape} for {len(class_names)} classes"
            )
    class_weights = l2_normalize(class_weights)
    all_ranks, all_labels = [], []
    for key, images, labels in classification_batches(
        dataset, batch_size, image_key, label_key
    ):
        image_embeddings = l2_normalize(
            encode_image_batch(model, key, images, batch_size)
        )
        scores = image_embeddings @ class_weights.T
        all_ranks.append(classification_ranks(scores, labels))
        all_labels.append(labels)
    if not all_ranks:
        raise ValueError("The evaluation dataset is empty.")
    return classification_metrics(
        np.concatenate(all_ranks),
        np.concatenate(all_labels),
        len(class_weights),
        top_k,
    )


def evaluate_retrieval(
    model,
    dataset,
    batch_size=64,
    ks=DEFAULT_RECALL_KS,
    image_key="images",
    text_key="texts",
):
    """Image <-> text retrieval: Recall@k, mean and median rank.

    Every image in `dataset` is a candidate for every caption and vice
    versa. Each example is one image with one caption or several (COCO's
    five); empty strings are padding. Ranks are pessimistic about ties (see
    the module docstring).

    Args:
        model: a `LiTModel`, or any object with `encode_images` and
            `encode_texts`.
        dataset: `{"images": [N, H, W, 3], "texts": [N] or [N, C] strings
            (or a list of N lists)}` as arrays or a `tf.data.Dataset`, batched
            or not (ragged caption lists are fine).
        batch_size: int. Images per batch and per model call.
        ks: tuple of ints. Recall cut-offs. Defaults to `(1, 5, 10)`.
        image_key, text_key: dataset keys.

    Returns:
        dict: `"image_to_text_recall_at_1"`, ..., `"image_to_text_mean_rank"`,
        `"image_to_text_median_rank"`, the same for `"text_to_image"`, and
        `"num_images"`, `"num_texts"`.
    """
    ks = _validate_ks(ks, "ks")
    batch_size = _validate_batch_size(batch_size)
    image_embeddings, captions, owners = encode_retrieval_set(
        dataset,
        batch_size,
        image_key,
        text_key,
        lambda key, images: encode_image_batch(model, key, images, batch_size),
        "retrieval dataset",
    )
    distinct, caption_index = distinct_captions(captions)
    encode = encoder_function(model, "encode_texts", max(batch_size, 256))
    chunk = 4096
    text_embeddings = np.concatenate(
        [
            l2_normalize(encode(distinct[i : i + chunk]))
            for i in range(0, len(distinct), chunk)
        ]
    )[caption_index]
    ranks = retrieval_ranks(
        l2_normalize(image_embeddings), text_embeddings, owners
    )
    return retrieval_metrics(*ranks, ks=ks)


def encode_image_batch(model, key, images, batch_size):
    """Normalised embeddings of one batch of images or image features."""
    if key == "image_embeddings":
        if not callable(model) or not hasattr(model, "text_encoder"):
            raise ValueError(
                "'image_embeddings' (pre-head features) need a LiTModel, "
                "which applies its image head. Pass 'images' for "
                f"{type(model).__name__}."
            )
        outputs = model({"image_embeddings": images}, training=False)
        return np.asarray(outputs["image_embeddings"])
    encode = encoder_function(model, "encode_images", batch_size)
    return np.asarray(encode(images))


def _validate_ks(ks, name):
    ks = tuple(ks)
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(
            f"`{name}` must be a non-empty tuple of positive ints. "
            f"Received: {name}={ks!r}"
        )
    return ks


def _validate_batch_size(batch_size):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: {batch_size!r}"
        )
    return batch_size
