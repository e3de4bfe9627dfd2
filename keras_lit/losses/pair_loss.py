"""`PairLoss`: the base of the Keras losses `LiTModel` trains with.

It holds what `ContrastiveLoss` and `SigmoidLoss` share, the optional
`block_size` of the blockwise path (checked once, serialised once);
each subclass adds `call` (a plain Keras loss on a logits matrix) and
`batch_loss` (the interface `LiTModel` calls, see
`ContrastiveLoss.batch_loss`).
"""

import re

import keras

from keras_lit.losses.blockwise import check_block_size


class PairLoss(keras.losses.Loss):
    """A Keras loss over image-text pairs with an optional column block size.

    Two ways to call a subclass:
    - `loss(y_true, y_pred)`, a plain Keras loss on the `[B, B]` logits of
      one batch (`call`).
    - `loss.batch_loss(...)`, what `LiTModel.train_step` calls: this
      replica's normalised embeddings, the `ContrastiveHead` holding the
      learnable parameters, and the gathered embeddings of the global
      batch. A new loss implements `batch_loss` and returns `LossTerms`.

    Args:
        block_size: int or `None`. Compute the training loss over column
            blocks of this size (`keras_lit.losses.blockwise`): the same
            values and gradients with at most `[b, block_size]` logits
            alive. Defaults to `None` (whole `[b, G]` logit matrices).
        name: str. Defaults to the class name in snake case.
        **kwargs: `keras.losses.Loss` arguments (`reduction`, ...).
    """

    def __init__(self, block_size=None, name=None, **kwargs):
        # "ContrastiveLoss" -> "contrastive_loss" (Keras would add "_1").
        name = name or re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__)
        super().__init__(name=name.lower(), **kwargs)
        if block_size is not None:
            check_block_size(block_size)
        self.block_size = block_size

    def get_config(self):
        config = super().get_config()
        config.update({"block_size": self.block_size})
        return config

    def batch_loss(
        self,
        image_embeddings,
        text_embeddings,
        head,
        all_image_embeddings=None,
        all_text_embeddings=None,
        label_offset=0,
    ):
        """This replica's loss and logits (or top-1 hits): `LossTerms`.

        Args:
            image_embeddings: `[b, D]` L2-normalised local image embeddings.
            text_embeddings: `[b, D]` L2-normalised local text embeddings.
            head: the `ContrastiveHead` holding the learnable temperature
                (and bias).
            all_image_embeddings, all_text_embeddings: `[G, D]` gathered
                embeddings of the global batch (`None` on one device).
            label_offset: row of the global batch where local rows start.

        Returns:
            `LossTerms(loss, image_to_text_logits, text_to_image_logits,
            labels)`; with `block_size`, top-1 hits instead of logits.
        """
        raise NotImplementedError
