import keras
import keras_hub

from keras_lit.layers.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="keras_lit")
class TransformerTextBackbone(keras.Model):
    """A small transformer text encoder trained from scratch (LiT's "u").

    Token and position embeddings followed by `num_layers` pre-norm
    `TransformerBlock`s (fused QKV) and a final LayerNorm.

    Args:
        vocabulary_size: int. Number of token ids.
        num_layers: int. Transformer blocks.
        num_heads: int. Attention heads per block.
        hidden_dim: int. Embedding width.
        intermediate_dim: int. Width of the feed-forward layer.
        max_sequence_length: int. Longest sequence (position embeddings).
        dropout: float. Dropout rate. Defaults to `0.0`.
        activation: feed-forward activation of the blocks, e.g. `"relu"`
            (default) or `"gelu_approximate"` (Google's LiT towers).
        layer_norm_epsilon: optional float for every LayerNorm. Defaults to
            `None`: `1e-5` in the blocks and `1e-6` in the final norm.
        use_padding_mask: bool. Whether padded tokens are hidden from
            attention. `False` for towers that attend to every position
            (Google's LiT-L16S/L16Ti read out the last token, padding
            included). Defaults to `True`.

    Call arguments:
        inputs: dict with `"token_ids"` and `"padding_mask"`, both
            `[batch, sequence_length]`.

    Returns a `[batch, sequence_length, hidden_dim]` sequence.

    Example:
    >>> import numpy as np
    >>> backbone = TransformerTextBackbone(
    ...     vocabulary_size=10, num_layers=1, num_heads=2, hidden_dim=8,
    ...     intermediate_dim=16, max_sequence_length=4)
    >>> inputs = {"token_ids": np.ones((2, 4), "int32"),
    ...           "padding_mask": np.ones((2, 4), bool)}
    >>> tuple(backbone(inputs).shape)
    (2, 4, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        intermediate_dim=128,
        max_sequence_length=16,
        dropout=0.0,
        layer_norm_epsilon=None,
        use_padding_mask=True,
        activation="relu",
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=vocabulary_size,
            sequence_length=max_sequence_length,
            embedding_dim=hidden_dim,
            dtype=dtype,
            name="token_and_position_embedding",
        )
        blocks = [
            TransformerBlock(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                dropout=dropout,
                activation=activation,
                layer_norm_epsilon=layer_norm_epsilon or 1e-5,
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon or 1e-6,
            dtype=dtype,
            name="final_layer_norm",
        )

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(
            shape=(None,), dtype="int32", name="padding_mask"
        )
        x = embedding(token_ids)
        for block in blocks:
            x = block(
                x, padding_mask=padding_mask if use_padding_mask else None
            )
        outputs = final_norm(x)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs=outputs,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.dropout = dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_padding_mask = use_padding_mask

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "vocabulary_size": self.vocabulary_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "max_sequence_length": self.max_sequence_length,
            "dropout": self.dropout,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "use_padding_mask": self.use_padding_mask,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
