"""Data handling of `LiTModel.fit`/`evaluate`/`predict` and its steps.

Raw examples `{"images": [B, H, W, 3] in [0, 255], "texts": [B] strings}`
(or `"image_embeddings"` in place of `"images"`), as in-memory arrays or a
`tf.data.Dataset`, become batched `tf.data` pipelines with the model's
preprocessor mapped over them, so the compiled step sees only numbers.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_lit.distribute import is_multi_worker
from keras_lit.layers.locked_image_encoder import LockedImageEncoder
from keras_lit.layers.text_encoder import TextEncoder
from keras_lit.preprocessing import validate_examples


def as_dataset(model, x, y, batch_size, shuffle=False, drop=False):
    """Raw examples -> a batched, preprocessed `tf.data.Dataset`."""
    if y is not None:
        raise ValueError(
            "LiTModel is self-supervised: pass pairs in `x` as "
            "{'images', 'texts'} and leave `y` empty. "
            f"Received: y of type {type(y).__name__}"
        )
    if isinstance(x, tf.data.Dataset):
        if batch_size is not None:
            raise ValueError(
                "Batch your tf.data.Dataset yourself; `batch_size` only "
                f"applies to in-memory data. Received: batch_size="
                f"{batch_size}"
            )
        return x.map(
            model.preprocessor, num_parallel_calls=tf.data.AUTOTUNE
        ).prefetch(tf.data.AUTOTUNE)
    if isinstance(x, tf.distribute.DistributedDataset):
        return x
    sizes = validate_examples(x)
    size = next(iter(sizes.values()))
    batch_size = batch_size or 32
    x = {k: list(v) if k == "texts" else v for k, v in x.items()}
    dataset = tf.data.Dataset.from_tensor_slices(x)
    strategy = model.distribute_strategy
    if shuffle:
        # Workers of a multi-worker run must draw the same order, or the
        # global batches get duplicates and gaps.
        seed = 0 if is_multi_worker(strategy) else None
        dataset = dataset.shuffle(
            size, seed=seed, reshuffle_each_iteration=True
        )
    replicas = strategy.num_replicas_in_sync
    drop_remainder = drop and replicas > 1 and size >= batch_size
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.map(
        model.preprocessor, num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)


def fit_arguments(model, x, y, batch_size, kwargs):
    """`(x, kwargs)` for `keras.Model.fit`: datasets and callbacks set up."""
    # keras_lit.data readers count the images they skip: report them.
    skipped_images = getattr(x, "skipped_images", None)
    if skipped_images is not None:
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if skipped_images not in callbacks:
            callbacks.append(skipped_images)
        kwargs["callbacks"] = callbacks
    shuffle = kwargs.pop("shuffle", True)
    x = as_dataset(model, x, y, batch_size, shuffle=shuffle, drop=True)
    validation_data = kwargs.pop("validation_data", None)
    if validation_data is not None:
        validation_data = as_dataset(
            model,
            validation_data,
            None,
            kwargs.pop("validation_batch_size", None) or batch_size,
        )
    kwargs.update(validation_data=validation_data, shuffle=False)
    return x, kwargs


def unpack_batch(data):
    """The preprocessed feature dict of a batch, checked for its keys."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    if not isinstance(x, dict):
        raise ValueError(
            f"LiTModel expects dict batches. Received: {type(x).__name__}"
        )
    if "texts" in x:
        raise ValueError(
            "Raw 'texts' reached the compiled step. Map "
            "`model.preprocessor` over your tf.data pipeline, or pass the "
            "data to `model.fit` directly, which does it for you."
        )
    if "token_ids" not in x or "padding_mask" not in x:
        raise ValueError(
            "Training batches need 'token_ids' and 'padding_mask'. "
            f"Received keys: {sorted(x)}"
        )
    if "images" not in x and "image_embeddings" not in x:
        raise ValueError(
            "Training batches need 'images' or 'image_embeddings'. "
            f"Received keys: {sorted(x)}"
        )
    return x


def check_towers(image_encoder, text_encoder):
    """Raises unless the towers are keras_lit towers of matching widths."""
    if not isinstance(image_encoder, LockedImageEncoder):
        raise ValueError(
            "`image_encoder` must be a keras_lit.layers.LockedImageEncoder."
            f" Received: {type(image_encoder).__name__}"
        )
    if not isinstance(text_encoder, TextEncoder):
        raise ValueError(
            "`text_encoder` must be a keras_lit.layers.TextEncoder. "
            f"Received: {type(text_encoder).__name__}"
        )
    if text_encoder.projection_dim != image_encoder.output_dim:
        raise ValueError(
            "The text tower must project to the image embedding width. "
            f"Received: text_encoder.projection_dim="
            f"{text_encoder.projection_dim}, image embedding width="
            f"{image_encoder.output_dim}"
        )


def encode(model, name, values, batch_size):
    """Embeds `values` (`"images"` or `"texts"`) in batches -> `[N, D]`."""
    key = {"images": "image_embeddings", "texts": "text_embeddings"}[name]
    # One tf.function per model (a decorated method would be shared by every
    # instance and retrace for each).
    graph = getattr(model, "lit_encode_graph", None)
    if graph is None:
        graph = tf.function(
            lambda inputs: model(inputs, training=False),
            reduce_retracing=True,
        )
        model.lit_encode_graph = graph
    outputs = []
    for start in range(0, len(values), batch_size):
        batch = model.preprocessor({name: values[start : start + batch_size]})
        outputs.append(graph(batch)[key].numpy())
    return np.concatenate(outputs, axis=0)
