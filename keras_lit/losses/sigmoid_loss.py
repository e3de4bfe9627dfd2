"""The pairwise sigmoid loss (SigLIP; "SigLiT" with a locked image tower).

Pure functions first (`sigmoid_terms`, `sigmoid_loss`), then the Keras loss
`SigmoidLoss` that `LiTModel(..., loss="sigmoid")` trains with.
"""

import keras
from keras import ops

from keras_lit.losses.blockwise import blockwise_sigmoid_loss_terms
from keras_lit.losses.blockwise import blockwise_sigmoid_terms
from keras_lit.losses.blockwise import unpack_batch
from keras_lit.losses.contrastive_loss import LossTerms
from keras_lit.losses.contrastive_loss import contrastive_logits
from keras_lit.losses.pair_loss import PairLoss


def sigmoid_terms(
    image_embeddings,
    text_embeddings,
    temperature,
    bias,
    all_image_embeddings=None,
    all_text_embeddings=None,
    label_offset=0,
):
    """Sigmoid (SigLIP) loss plus the logits it was computed from.

    Embeddings are expected L2-normalised; everything is float32. Every
    image-text pair is its own binary problem, so one direction covers the
    whole matrix: on one device images are the rows; given the gathered
    texts, local images are scored against them; given only the gathered
    images, local texts are scored against them (same value).

    Args:
        image_embeddings: `[b, D]` local image embeddings.
        text_embeddings: `[b, D]` local text embeddings (same rows).
        temperature: scalar logit scale `t` (not its log).
        bias: scalar logit bias.
        all_image_embeddings: optional `[G, D]` gathered image embeddings.
        all_text_embeddings: optional `[G, D]` gathered text embeddings.
        label_offset: row of the global batch where the local rows start.

    Returns:
        `(loss, logits, labels)`: the mean over local rows of the summed
        per-pair losses, the `[b, G]` logits `t * rows @ columns^T + bias`
        and the `[b]` global columns of the pairs.
    """
    image_embeddings = ops.cast(image_embeddings, "float32")
    text_embeddings = ops.cast(text_embeddings, "float32")
    rows, columns = image_embeddings, text_embeddings
    if all_text_embeddings is not None:
        columns = all_text_embeddings
    elif all_image_embeddings is not None:
        rows, columns = text_embeddings, all_image_embeddings
    # [b, D] x [D, G] -> [b, G].
    logits = contrastive_logits(rows, columns, temperature)
    logits = logits + ops.cast(bias, "float32")
    batch_size = ops.shape(rows)[0]
    labels = ops.arange(batch_size, dtype="int32") + label_offset
    # z = +1 for the pair (column offset + i), -1 for every other column.
    columns_ids = ops.arange(ops.shape(columns)[0], dtype="int32")
    signs = ops.where(labels[:, None] == columns_ids[None, :], 1.0, -1.0)
    # big_vision: sum over columns (one positive each), mean over rows.
    per_row = -ops.sum(ops.log_sigmoid(signs * logits), axis=-1)
    return ops.mean(per_row), logits, labels


def sigmoid_loss(
    image_embeddings,
    text_embeddings,
    temperature,
    bias,
    block_size=None,
    **batch,
):
    """Pairwise sigmoid loss (SigLIP; "SigLiT" with a locked image tower).

    `loss = -(1/b) sum_i sum_j log sigmoid(z_ij (t * x_i . y_j + bias))`
    with `z_ij = 1` for a pair and -1 otherwise, `x`, `y` L2-normalised:
    big_vision's normalisation (sum over columns, mean over rows). Pass the
    gathered embeddings of the other modality and the local offset to score
    local rows against the global batch (`**batch`, see `sigmoid_terms`).

    Args:
        block_size: optional int. Compute over column blocks of this size
            (`keras_lit.blockwise`): the same value and gradients with no
            tensor larger than `[b, block_size]`. Defaults to `None` (one
            `[b, G]` matrix).

    Example:
    >>> import numpy as np
    >>> x = np.eye(3, dtype="float32")
    >>> round(float(sigmoid_loss(x, x, 10.0, -10.0)), 4)
    0.6932
    """
    embeddings = (image_embeddings, text_embeddings, temperature, bias)
    if block_size is not None:
        return blockwise_sigmoid_loss_terms(*embeddings, block_size, **batch)[0]
    return sigmoid_terms(*embeddings, **batch)[0]


def sigmoid_loss_from_logits(logits):
    """Per-row sigmoid losses of a square `[B, B]` logit matrix (with bias).

    The pairs are on the diagonal; returns `[B]` sums over columns.
    """
    logits = ops.cast(logits, "float32")
    size = ops.shape(logits)[0]
    signs = 2.0 * ops.eye(size, dtype="float32") - 1.0
    return -ops.sum(ops.log_sigmoid(signs * logits), axis=-1)


@keras.saving.register_keras_serializable(package="keras_lit")
class SigmoidLoss(PairLoss):
    """Pairwise sigmoid loss (SigLIP): the loss of `LiTModel(loss="sigmoid")`.

    Called as a plain Keras loss, `y_pred` is the `[B, B]` matrix
    `t * image_embeddings @ text_embeddings.T + bias` of one batch with the
    pairs on the diagonal (`y_true` is ignored); the result is big_vision's
    mean over rows of the summed per-pair losses.

    `block_size` and `batch_loss`: see `PairLoss`.

    Example:
    >>> import numpy as np
    >>> loss = SigmoidLoss()
    >>> logits = np.zeros((4, 4), "float32")
    >>> round(float(loss(np.arange(4), logits)), 4)  # 4 * log(2)
    2.7726
    """

    def call(self, y_true, y_pred):
        return sigmoid_loss_from_logits(y_pred)

    def batch_loss(self, image_embeddings, text_embeddings, head, **batch):
        """This replica's loss and logits (or top-1 hits): `LossTerms`.

        Same arguments as `PairLoss.batch_loss`; `head` must hold a
        learnable bias (`ContrastiveHead(bias_init=...)`). Local images are
        scored against every text; under a strategy, local texts are also
        scored against every image for the text-to-image accuracy only
        (forward, no gradient).
        """
        bias = getattr(head, "bias", None)
        if bias is None:
            raise ValueError(
                "SigmoidLoss needs a head with a learnable bias: build the "
                "model with LiTModel(..., loss='sigmoid'). Received: a head "
                "without `bias`"
            )
        temperature = head.temperature
        all_images, all_texts, label_offset = unpack_batch(**batch)
        gathered = all_images is not None
        labels = ops.arange(ops.shape(image_embeddings)[0]) + label_offset
        embeddings = (image_embeddings, text_embeddings, temperature, bias)
        # The loss scores local images against every text.
        scored = {
            "all_text_embeddings": all_texts,
            "label_offset": label_offset,
        }
        if self.block_size is None:
            loss, logits, labels = sigmoid_terms(*embeddings, **scored)
            text_logits = None
            if gathered:
                text_logits = contrastive_logits(
                    ops.stop_gradient(text_embeddings),
                    ops.stop_gradient(all_images),
                    temperature,
                )
            return LossTerms(loss, logits, text_logits, labels)
        loss, image_hits, text_hits = blockwise_sigmoid_loss_terms(
            *embeddings, self.block_size, **scored
        )
        if gathered:
            # Argmax ignores the bias; hits only, no gradient.
            _, text_hits, _ = blockwise_sigmoid_terms(
                ops.stop_gradient(text_embeddings),
                ops.stop_gradient(all_images),
                ops.stop_gradient(temperature),
                0.0,
                label_offset,
                self.block_size,
            )
        return LossTerms(loss, None, None, labels, image_hits, text_hits)
