"""`PairLoss`: the base of the Keras losses `LiTModel` trains with.

It holds what `ContrastiveLoss` and `SigmoidLoss` share, the optional
`block_size` of the blockwise path (checked once, serialised once);
each subclass adds `call` (a plain Keras loss on a logits matrix) and
`batch_loss` (the interface `LiTModel` calls, see
`ContrastiveLoss.batch_loss`).
"""

import keras

from keras_lit.losses.blockwise import check_block_size


class PairLoss(keras.losses.Loss):
    """A Keras loss over image-text pairs with an optional column block size.

    Args:
        block_size: int or `None`. Columns per block of the blockwise path;
            `None` computes whole `[b, G]` logit matrices.
        **kwargs: `keras.losses.Loss` arguments (`name`, `reduction`, ...).
    """

    def __init__(self, block_size=None, **kwargs):
        super().__init__(**kwargs)
        if block_size is not None:
            check_block_size(block_size)
        self.block_size = block_size

    def get_config(self):
        config = super().get_config()
        config.update({"block_size": self.block_size})
        return config
