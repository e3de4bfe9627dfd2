"""LiT's public training recipe: what `LiTModel.compile("auto")` picks."""

import keras

from keras_lit.losses import ContrastiveLoss

# Variables that get no weight decay: biases, norms, embeddings, temperature.
NO_DECAY_NAMES = ["bias", "gamma", "beta", "log_temperature", "embeddings"]


def default_optimizer():
    """AdamW, learning rate 1e-3, decoupled weight decay 1e-4 on kernels
    (not on `NO_DECAY_NAMES`), global-norm clipping at 1.0."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=1e-3, weight_decay=1e-4, global_clipnorm=1.0
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    return optimizer


def check_loss(loss):
    """`"auto"` -> `ContrastiveLoss()`; else a loss with `batch_loss`."""
    if loss in ("auto", None):
        return ContrastiveLoss()
    if not callable(getattr(loss, "batch_loss", None)):
        raise ValueError(
            "LiTModel computes its loss over the global batch; `loss` must "
            "be 'auto' or a keras_lit loss with a `batch_loss` method (e.g. "
            f"ContrastiveLoss()). Received: loss={loss!r}"
        )
    return loss
