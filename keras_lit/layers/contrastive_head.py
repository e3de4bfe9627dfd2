import math

import keras
from keras import ops

from keras_lit.losses import contrastive_logits


@keras.saving.register_keras_serializable(package="keras_lit")
class ContrastiveHead(keras.layers.Layer):
    """Scores every image in a batch against every text.

    Holds the learnable parameters of the loss (the log-temperature), which
    `LiTModel` hands to its loss object every step. Embeddings are
    L2-normalised in float32 (a zero vector stays zero instead of NaN), and the
    logits are `t * image_embeddings @ text_embeddings.T` with
    `t = min(exp(log_t), max_temperature)`.

    Args:
        temperature_init: float. Initial logit scale `t`. Defaults to `10.0`
            (big_vision's LiT setting).
        max_temperature: float. Upper clamp on `t`. Defaults to `100.0`.
        bias_init: optional float. Initial learnable logit bias `b` for the
            sigmoid loss (SigLIP uses `-10.0`); logits become
            `t * cosine + b`. Defaults to `None` (no bias: softmax loss).

    Call arguments:
        image_embeddings: `[N, D]` image embeddings.
        text_embeddings: `[K, D]` text embeddings.

    Example:
    >>> import numpy as np
    >>> head = ContrastiveHead()
    >>> tuple(head(np.ones((2, 4)), np.ones((3, 4))).shape)
    (2, 3)
    """

    def __init__(
        self,
        temperature_init=10.0,
        max_temperature=100.0,
        bias_init=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not temperature_init > 0:
            raise ValueError(
                "`temperature_init` must be > 0. "
                f"Received: temperature_init={temperature_init}"
            )
        if not max_temperature >= temperature_init:
            raise ValueError(
                "`max_temperature` must be >= `temperature_init`. Received: "
                f"max_temperature={max_temperature}, "
                f"temperature_init={temperature_init}"
            )
        if bias_init is not None and not math.isfinite(bias_init):
            raise ValueError(
                f"`bias_init` must be a finite float. Received: {bias_init}"
            )
        self.temperature_init = float(temperature_init)
        self.max_temperature = float(max_temperature)
        self.bias_init = None if bias_init is None else float(bias_init)
        self.bias = None
        if self.bias_init is not None:
            # SigLIP's learnable logit bias (init -10).
            self.bias = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(self.bias_init),
                name="bias",
                dtype="float32",
                autocast=False,
            )
        self.log_temperature = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(
                math.log(self.temperature_init)
            ),
            name="log_temperature",
            dtype="float32",
            autocast=False,
        )
        self.built = True

    @property
    def temperature(self):
        # A Python float bound keeps the clamp in float32.
        log_max = math.log(self.max_temperature)
        return ops.exp(ops.minimum(self.log_temperature, log_max))

    def probabilities(self, cosines):
        """Cosine similarities `[N, K]` -> class probabilities `[N, K]`.

        A softmax over `t * cosines` for the softmax loss; for the sigmoid
        loss (a head with a bias) each pair's own `sigmoid(t * cosine + b)`,
        as SigLIP reports them (rows need not sum to 1).
        """
        logits = ops.cast(cosines, "float32") * self.temperature
        if self.bias is None:
            return ops.softmax(logits, axis=-1)
        return ops.sigmoid(logits + self.bias)

    def normalize(self, embeddings):
        return ops.normalize(ops.cast(embeddings, "float32"), axis=-1)

    def call(self, image_embeddings, text_embeddings):
        logits = contrastive_logits(
            self.normalize(image_embeddings),
            self.normalize(text_embeddings),
            self.temperature,
        )
        if self.bias is not None:
            logits = logits + self.bias
        return logits

    def compute_output_spec(self, image_embeddings, text_embeddings):
        return keras.KerasTensor(
            (image_embeddings.shape[0], text_embeddings.shape[0]),
            dtype="float32",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature_init": self.temperature_init,
                "max_temperature": self.max_temperature,
                "bias_init": self.bias_init,
            }
        )
        return config
