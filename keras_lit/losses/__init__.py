"""LiT losses: pure functions first, thin Keras wrappers.

- `contrastive_loss` / `ContrastiveLoss`: the symmetric InfoNCE (softmax)
  loss of CLIP and LiT.
- `sigmoid_loss` / `SigmoidLoss`: the pairwise sigmoid loss of SigLIP.
- `blockwise_contrastive_loss` and `sigmoid_loss(..., block_size=...)`: the
  same values and gradients computed over column blocks
  (`keras_lit.losses.blockwise`), for global batches whose `b x G` logits
  do not fit.

Every function works on one device and, given the gathered embeddings of
the other modality and the local row offset, on one replica of a global
batch.
"""

from keras_lit.losses.blockwise import blockwise_contrastive_loss
from keras_lit.losses.blockwise import blockwise_contrastive_terms
from keras_lit.losses.blockwise import blockwise_sigmoid_loss_terms
from keras_lit.losses.contrastive_loss import ContrastiveLoss
from keras_lit.losses.contrastive_loss import LossTerms
from keras_lit.losses.contrastive_loss import contrastive_logits
from keras_lit.losses.contrastive_loss import contrastive_loss
from keras_lit.losses.contrastive_loss import contrastive_loss_from_logits
from keras_lit.losses.contrastive_loss import contrastive_terms
from keras_lit.losses.sigmoid_loss import SigmoidLoss
from keras_lit.losses.sigmoid_loss import sigmoid_loss
from keras_lit.losses.sigmoid_loss import sigmoid_loss_from_logits
from keras_lit.losses.sigmoid_loss import sigmoid_terms

LOSSES = ("softmax", "sigmoid")


def make_loss(name, block_size=None):
    """`"softmax"` -> `ContrastiveLoss`, `"sigmoid"` -> `SigmoidLoss`.

    Example:
    >>> make_loss("sigmoid", block_size=1024).block_size
    1024
    """
    if name not in LOSSES:
        raise ValueError(
            f"`loss` must be one of {', '.join(map(repr, LOSSES))}. "
            f"Received: loss={name!r}"
        )
    if name == "sigmoid":
        return SigmoidLoss(block_size=block_size)
    return ContrastiveLoss(block_size=block_size)
