"""The locked image tower of a precompute: checked, identified, run."""

import hashlib

import keras
import numpy as np
import tensorflow as tf

from keras_lit.layers.locked_image_encoder import LockedImageEncoder


def locked_image_encoder(image_encoder):
    """A locked `LockedImageEncoder`, or the one of a `LiTModel`."""
    image_encoder = getattr(image_encoder, "image_encoder", image_encoder)
    if not isinstance(image_encoder, LockedImageEncoder):
        raise ValueError(
            "`image_encoder` must be a keras_lit LockedImageEncoder or a "
            f"LiTModel. Received: {type(image_encoder).__name__}"
        )
    if not image_encoder.locked:
        raise ValueError(
            "Precomputed embeddings need a locked image tower; this one is "
            "trained (locked=False), so its embeddings would go stale. "
            "Received: image_encoder.locked=False"
        )
    return image_encoder


def encoder_fingerprint(image_encoder):
    """What identifies an image tower: config summary and weight hash."""
    digest = hashlib.sha256()
    for weight in image_encoder.backbone.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)))
    return {
        "backbone": type(image_encoder.backbone).__name__,
        "image_size": list(image_encoder.image_size),
        "pooling": image_encoder.pooling,
        "feature_dim": int(image_encoder.feature_dim),
        "weights_sha256": digest.hexdigest(),
    }


def encoder_function(image_encoder, strategy, batch_size):
    """A function: a batch of <= batch_size images -> numpy float32."""
    replicas = strategy.num_replicas_in_sync
    per_replica = batch_size // replicas

    def features(images):
        images = image_encoder.preprocess(images)
        outputs = image_encoder.extract_features(images, training=False)
        return tf.cast(outputs, tf.float32)

    # No autograph: nothing here needs it, and its conversion cache has
    # mixed up the encoder's methods between calls.
    @tf.function(reduce_retracing=True, autograph=False)
    def step(images):
        outputs = strategy.run(features, args=(images,))
        # Replica order is batch order. Concatenating the local results needs
        # no collective op (an all-gather would clash with the group keys of
        # other strategies in the same process).
        return tf.concat(strategy.experimental_local_results(outputs), 0)

    def encode(images):
        count = int(images.shape[0])
        # Pad to a full batch: one traced shape, TPU-friendly.
        padding = batch_size - count
        if padding:
            images = tf.concat(
                [
                    images,
                    tf.zeros(
                        (padding,) + tuple(images.shape[1:]), images.dtype
                    ),
                ],
                axis=0,
            )
        if replicas > 1:
            images = strategy.experimental_distribute_values_from_function(
                lambda context: images[
                    context.replica_id_in_sync_group * per_replica : (
                        context.replica_id_in_sync_group + 1
                    )
                    * per_replica
                ]
            )
        return step(images).numpy()[:count]

    return encode
