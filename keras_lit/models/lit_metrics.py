"""LiTModel's metrics: the loss, the temperature and in-batch top-1 accuracy.

Logits-derived counts are computed per replica by `batch_stats`, summed over
replicas by `keras_lit.models.global_batch`, and written to the trackers by
`update_trackers`, so every replica reports the global values.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

TRACKER_NAMES = (
    "loss",
    "temperature",
    "image_to_text_accuracy",
    "text_to_image_accuracy",
)


def make_trackers():
    """The four `keras.metrics.Mean` trackers, in `TRACKER_NAMES` order."""
    return [keras.metrics.Mean(name=name) for name in TRACKER_NAMES]


def update_trackers(trackers, stats, temperature):
    """`stats` = `[sum of losses, correct i->t, correct t->i, rows]`."""
    loss, temperature_tracker, image_to_text, text_to_image = trackers
    rows = stats[3]
    # After the data (see `LiTModel.train_step`): a step that finds the end
    # of the data must not report a temperature.
    with tf.control_dependencies([stats]):
        loss.update_state(stats[0] / rows, sample_weight=rows)
        temperature_tracker.reset_state()
        temperature_tracker.update_state(temperature)
        image_to_text.update_state(stats[1] / rows, sample_weight=rows)
        text_to_image.update_state(stats[2] / rows, sample_weight=rows)


def batch_stats(terms, local=False):
    """`[sum of losses, correct i->t, correct t->i, rows]` (float32).

    Args:
        terms: the `keras_lit.losses.LossTerms` of one replica.
        local: one device, where `text_to_image` is `image_to_text`
            transposed; its columns are scored in place.
    """
    labels = terms.labels
    rows = ops.cast(ops.shape(labels)[0], "float32")
    if local:
        text_correct = top1(terms.image_to_text_logits, labels, axis=0)
    else:
        text_correct = top1(terms.text_to_image_logits, labels)
    return ops.stack(
        [
            terms.loss * rows,
            ops.sum(top1(terms.image_to_text_logits, labels)),
            ops.sum(text_correct),
            rows,
        ]
    )


def top1(logits, labels, axis=-1):
    """`1.0` where `argmax(logits, axis) == labels`, per row (or column).

    Masked maxima instead of `argmax`, which XLA compiles to a slow
    variadic reduction on CPU; `axis=0` scores the columns of a matrix
    without transposing it. The label wins as `argmax` decides ties: above
    every earlier entry and at least every later one.
    """
    labels = ops.cast(labels, "int32")
    positions = ops.arange(ops.shape(logits)[axis], dtype="int32")
    if axis == 0:
        positions, labels = positions[:, None], labels[None, :]
    else:
        positions, labels = positions[None, :], labels[:, None]

    def masked_max(mask):
        masked = ops.where(mask, logits, -np.inf)
        return ops.max(masked, axis=axis, initial=-np.inf)

    target = masked_max(positions == labels)
    before = masked_max(positions < labels)
    after = masked_max(positions > labels)
    return ops.cast((target > before) & (target >= after), "float32")
