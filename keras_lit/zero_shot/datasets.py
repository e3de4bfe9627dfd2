"""Evaluation data in, numpy batches out: in-memory dicts or `tf.data`.

Both evaluators (and the callbacks) accept the same forms:

- a dict of in-memory arrays, e.g. `{"images": [N, H, W, 3], "labels": [N]}`;
- a `tf.data.Dataset` of such dicts, batched or not;
- for classification, a dataset of `(images, labels)` tuples (tfds's
  `as_supervised=True`).

`"image_embeddings"` (pre-head image features, as in training) may stand in
for `"images"`. For retrieval, each example's `"texts"` is one caption or a
list of captions (COCO has five per image); empty strings are treated as
padding and ignored.
"""

import numpy as np

from keras_lit.zero_shot.weights import as_text

IMAGE_KEYS = ("images", "image_embeddings")


def classification_batches(dataset, batch_size, image_key, label_key):
    """Yields `(image_key_used, images, labels)` numpy batches."""
    for key, batch in _batches(
        dataset, batch_size, image_key, label_key, "classification"
    ):
        labels = np.asarray(batch[label_key])
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"`{label_key}` must hold one integer class id per example. "
                f"Received: dtype={labels.dtype}, shape per batch="
                f"{labels.shape}"
            )
        yield key, np.asarray(batch[key]), labels


def retrieval_batches(dataset, batch_size, image_key, text_key):
    """Yields `(image_key_used, images, captions)`; captions: list of lists."""
    for key, batch in _batches(
        dataset, batch_size, image_key, text_key, "retrieval"
    ):
        captions = [_captions(texts) for texts in list(batch[text_key])]
        images = np.asarray(batch[key])
        if len(captions) != len(images):
            raise ValueError(
                f"Every image needs its captions: got {len(images)} images "
                f"and {len(captions)} caption lists in one batch."
            )
        yield key, images, captions


def encode_retrieval_set(
    dataset, batch_size, image_key, text_key, encode_images, name
):
    """Encodes every image of a retrieval set and flattens its captions.

    Args:
        encode_images: `(image_key_used, images) -> [n, ...]` array.
        name: how the error message calls the dataset.

    Returns:
        `(features, captions, owners)`: the concatenated `encode_images`
        outputs, every caption in order, and the image row of each caption.
    """
    features, captions, owners = [], [], []
    offset = 0
    for key, images, caption_lists in retrieval_batches(
        dataset, batch_size, image_key, text_key
    ):
        features.append(encode_images(key, images))
        for index, texts in enumerate(caption_lists):
            captions.extend(texts)
            owners.extend([offset + index] * len(texts))
        offset += len(images)
    if not captions:
        raise ValueError(f"The {name} has no captions under '{text_key}'.")
    return np.concatenate(features), captions, np.asarray(owners)


def _dict_dataset(dataset, image_key, other_key, task):
    """`dataset` as a `tf.data.Dataset` of dicts, with its element spec.

    `(image, label)` pairs of a classification set become dicts; any other
    input that is not a dataset of dicts raises a `ValueError`.
    """
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            f"The {task} data must be a dict of arrays or a "
            f"`tf.data.Dataset`. Received: {type(dataset).__name__}"
        )
    spec = dataset.element_spec
    if isinstance(spec, tuple) and len(spec) == 2 and task == "classification":
        dataset = dataset.map(lambda x, y: {image_key: x, other_key: y})
        spec = dataset.element_spec
    if not isinstance(spec, dict):
        raise ValueError(
            f"The {task} dataset must yield dicts with '{image_key}' and "
            f"'{other_key}'. Received elements of type "
            f"{type(spec).__name__}"
        )
    return dataset, spec


def _batches(dataset, batch_size, image_key, other_key, task):
    if isinstance(dataset, dict):
        yield from _array_batches(dataset, batch_size, image_key, other_key)
        return
    dataset, spec = _dict_dataset(dataset, image_key, other_key, task)
    key = _image_key(spec, image_key, other_key)
    batched_rank = 4 if key == "images" else 2
    rank = spec[key].shape.rank
    if rank == batched_rank - 1:
        dataset = dataset.ragged_batch(batch_size)
    elif rank != batched_rank:
        raise ValueError(
            f"`{key}` must have rank {batched_rank - 1} (one example) or "
            f"{batched_rank} (a batch). Received shape {spec[key].shape}"
        )
    for batch in dataset:
        yield key, {name: _to_numpy(value) for name, value in batch.items()}


def _array_batches(data, batch_size, image_key, other_key):
    key = _image_key(data, image_key, other_key)
    images = data[key]
    others = data[other_key]
    if isinstance(others, (str, bytes)):
        raise ValueError(
            f"`{other_key}` must hold one entry per example. Received a "
            f"single string: {others!r}"
        )
    if len(images) != len(others):
        raise ValueError(
            f"'{key}' and '{other_key}' must have one entry per example. "
            f"Received: {len(images)} and {len(others)}"
        )
    for start in range(0, len(images), batch_size):
        yield (
            key,
            {
                key: np.asarray(images[start : start + batch_size]),
                other_key: others[start : start + batch_size],
            },
        )


def _image_key(keys, image_key, other_key):
    candidates = [image_key] if image_key in keys else []
    if image_key == "images" and "image_embeddings" in keys:
        candidates.append("image_embeddings")
    missing = [] if candidates else [image_key]
    if other_key not in keys:
        missing.append(other_key)
    if missing:
        raise ValueError(
            f"The dataset must provide {' and '.join(map(repr, missing))}. "
            f"Received keys: {sorted(keys)}"
        )
    return candidates[0]


def _to_numpy(value):
    import tensorflow as tf

    if isinstance(value, tf.RaggedTensor):
        return value.to_list()
    return value.numpy()


def _captions(texts):
    if isinstance(texts, (str, bytes, np.str_, np.bytes_)):
        texts = [texts]
    captions = []
    for text in np.asarray(texts, dtype=object).reshape(-1):
        text = as_text(text, "Captions must be strings")
        if text:
            captions.append(text)
    return captions


def check_dataset(dataset, image_key, other_key, task):
    """Raises a `ValueError` early when `dataset` lacks the needed keys."""
    if isinstance(dataset, dict):
        _image_key(dataset, image_key, other_key)
        return
    _, spec = _dict_dataset(dataset, image_key, other_key, task)
    _image_key(spec, image_key, other_key)
