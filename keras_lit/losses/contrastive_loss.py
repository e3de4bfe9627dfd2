"""Contrastive losses for LiT: pure functions first, a thin Keras wrapper.

The pure function works on one device and, given the gathered embeddings of
the other modality, on one replica of a global batch. `contrastive_logits`
is the one place where image-text logits are computed; `ContrastiveLoss` is
the loss object `LiTModel` trains with (see `PairLoss.batch_loss` for
the interface a new loss implements).
"""

import collections

import keras
from keras import ops

from keras_lit.losses.blockwise import blockwise_contrastive_terms
from keras_lit.losses.blockwise import unpack_batch
from keras_lit.losses.pair_loss import PairLoss

LossTerms = collections.namedtuple(
    "LossTerms",
    [
        "loss",
        "image_to_text_logits",
        "text_to_image_logits",
        "labels",
        "image_to_text_correct",
        "text_to_image_correct",
    ],
    defaults=(None, None),
)
LossTerms.__doc__ = """What a LiT loss returns for one replica's rows.

Fields:
    loss: scalar mean loss over the local rows.
    image_to_text_logits: `[b, G]` scores of local images against every
        text of the global batch.
    text_to_image_logits: `[b, G]` scores of local texts against every
        image.
    labels: `[b]` global column of each local row's matching pair.
    image_to_text_correct, text_to_image_correct: optional `[b]` top-1 hits
        (float), from blockwise losses that never hold the logits (which
        are then `None`).
"""


def contrastive_logits(embeddings, other_embeddings, temperature):
    """`t * embeddings @ other_embeddings.T` in float32: `[b, D] -> [b, G]`.

    The one place where image-text logits are computed (the training loss,
    `ContrastiveHead` and evaluation all come here).
    """
    embeddings = ops.cast(embeddings, "float32")
    other_embeddings = ops.cast(other_embeddings, "float32")
    temperature = ops.cast(temperature, "float32")
    return temperature * ops.matmul(embeddings, ops.transpose(other_embeddings))


def contrastive_terms(
    image_embeddings,
    text_embeddings,
    temperature,
    all_image_embeddings=None,
    all_text_embeddings=None,
    label_offset=0,
):
    """Symmetric InfoNCE loss plus the logits it was computed from.

    Embeddings are expected L2-normalised. Everything is computed in float32.

    Args:
        image_embeddings: `[b, D]` local image embeddings.
        text_embeddings: `[b, D]` local text embeddings (same rows).
        temperature: scalar logit scale `t` (not its log).
        all_image_embeddings: `[G, D]` image embeddings of the global batch.
            Defaults to `image_embeddings` (one device).
        all_text_embeddings: `[G, D]` text embeddings of the global batch.
            Defaults to `text_embeddings`.
        label_offset: row of the global batch where the local rows start.

    Returns:
        `LossTerms(loss, image_to_text_logits, text_to_image_logits,
        labels)`: the mean loss over local rows, two `[b, G]` logit matrices
        and `[b]` labels.
    """
    image_embeddings = ops.cast(image_embeddings, "float32")
    text_embeddings = ops.cast(text_embeddings, "float32")
    temperature = ops.cast(temperature, "float32")
    local = all_image_embeddings is None and all_text_embeddings is None
    if all_image_embeddings is None:
        all_image_embeddings = image_embeddings
    if all_text_embeddings is None:
        all_text_embeddings = text_embeddings
    all_image_embeddings = ops.cast(all_image_embeddings, "float32")
    all_text_embeddings = ops.cast(all_text_embeddings, "float32")
    # [b, D] x [D, G] -> [b, G]: local images against every text, and local
    # texts against every image. Never the full [G, G] matrix.
    image_to_text = contrastive_logits(
        image_embeddings, all_text_embeddings, temperature
    )
    if local:
        # One device: the same scores, transposed (one matmul, not two).
        text_to_image = ops.transpose(image_to_text)
    else:
        text_to_image = contrastive_logits(
            text_embeddings, all_image_embeddings, temperature
        )
    # The matching pair of local row i sits in global column offset + i.
    batch_size = ops.shape(image_embeddings)[0]
    labels = ops.arange(batch_size, dtype="int32") + label_offset
    image_loss = keras.losses.sparse_categorical_crossentropy(
        labels, image_to_text, from_logits=True
    )
    text_loss = keras.losses.sparse_categorical_crossentropy(
        labels, text_to_image, from_logits=True
    )
    # [b] -> scalar: mean of both directions over the local rows.
    loss = ops.mean(0.5 * (image_loss + text_loss))
    return LossTerms(loss, image_to_text, text_to_image, labels)


def contrastive_loss(image_embeddings, text_embeddings, temperature, **batch):
    """Symmetric InfoNCE (CLIP/LiT softmax loss) of paired embeddings.

    `loss = mean_i (CE(t * x_i . Y^T, i) + CE(t * y_i . X^T, i)) / 2`, where
    `x_i`, `y_i` are the L2-normalised image and text embeddings of pair `i`.
    Pass the gathered global embeddings and the local offset (`batch`:
    `all_image_embeddings`, `all_text_embeddings`, `label_offset`) to score
    local rows against the whole global batch (see `contrastive_terms`).

    Example:
    >>> import numpy as np
    >>> x = np.eye(3, dtype="float32")
    >>> float(contrastive_loss(x, x, 100.0)) < 1e-6
    True
    """
    return contrastive_terms(
        image_embeddings, text_embeddings, temperature, **batch
    ).loss


def contrastive_loss_from_logits(logits):
    """Symmetric InfoNCE from a square `[B, B]` image-to-text logit matrix."""
    logits = ops.cast(logits, "float32")
    labels = ops.arange(ops.shape(logits)[0], dtype="int32")
    image_loss = keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True
    )
    text_loss = keras.losses.sparse_categorical_crossentropy(
        labels, ops.transpose(logits), from_logits=True
    )
    return 0.5 * (image_loss + text_loss)


@keras.saving.register_keras_serializable(package="keras_lit")
class ContrastiveLoss(PairLoss):
    """Symmetric InfoNCE (CLIP/LiT softmax loss): the loss LiTModel trains.

    Called as a plain Keras loss, `y_pred` is the `[B, B]` matrix
    `t * image_embeddings @ text_embeddings.T` of one batch; the matching
    pairs are on the diagonal, so `y_true` is ignored (pass
    `ops.arange(B)`). `block_size` and `batch_loss`, what
    `LiTModel.train_step` calls: see `PairLoss`.

    Example:
    >>> import numpy as np
    >>> loss = ContrastiveLoss()
    >>> logits = np.zeros((4, 4), "float32")
    >>> round(float(loss(np.arange(4), logits)), 4)
    1.3863
    """

    def call(self, y_true, y_pred):
        return contrastive_loss_from_logits(y_pred)

    def batch_loss(self, image_embeddings, text_embeddings, head, **batch):
        """This replica's `LossTerms` (see `PairLoss.batch_loss`)."""
        embeddings = (image_embeddings, text_embeddings, head.temperature)
        if self.block_size is None:
            return contrastive_terms(*embeddings, **batch)
        loss, image_hits, text_hits = blockwise_contrastive_terms(
            *embeddings, block_size=self.block_size, **batch
        )
        offset = unpack_batch(**batch)[2]
        labels = ops.arange(ops.shape(image_embeddings)[0]) + offset
        return LossTerms(loss, None, None, labels, image_hits, text_hits)
