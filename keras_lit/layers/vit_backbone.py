import keras
import keras_hub

from keras_lit.layers.transformer_block import get_activation


@keras.saving.register_keras_serializable(package="keras_lit")
class ViTBackbone(keras_hub.models.ViTBackbone):
    """KerasHub's `ViTBackbone` with a choice of MLP activation.

    KerasHub's ViT computes the exact (erf) GELU in its MLP blocks. The
    original ViT and LiT code (`flax.linen.gelu`) uses the tanh
    approximation; the two differ by about 6e-5 in the final embeddings, so
    a faithful port of Google's checkpoints needs the approximate one.
    Everything else (weights, names, config) is KerasHub's.

    Args:
        mlp_activation: `"gelu"` (exact, KerasHub's default) or
            `"gelu_approximate"` (tanh, as Flax), or any Keras activation
            name. Defaults to `"gelu"`.
        **kwargs: the arguments of `keras_hub.models.ViTBackbone`.

    Example:
    >>> import numpy as np
    >>> backbone = ViTBackbone(
    ...     image_shape=(32, 32, 3), patch_size=16, num_layers=1,
    ...     num_heads=2, hidden_dim=8, mlp_dim=16,
    ...     mlp_activation="gelu_approximate")
    >>> tuple(backbone(np.zeros((1, 32, 32, 3))).shape)
    (1, 5, 8)
    """

    def __init__(self, mlp_activation="gelu", **kwargs):
        super().__init__(**kwargs)
        activation = get_activation(mlp_activation)
        # The MLP reads `dense_1.activation` when called; the functional
        # graph above was only traced symbolically, so setting it here
        # changes every later call.
        encoder = self.get_layer("vit_encoder")
        for block in encoder.encoder_layers:
            block.mlp.dense_1.activation = activation
        self.mlp_activation = mlp_activation

    def get_config(self):
        config = super().get_config()
        config["mlp_activation"] = self.mlp_activation
        return config
