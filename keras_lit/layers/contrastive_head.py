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

    Call arguments:
        image_embeddings: `[N, D]` image embeddings.
        text_embeddings: `[K, D]` text embeddings.

    Example:
    >>> import numpy as np
    >>> head = ContrastiveHead()
    >>> tuple(head(np.ones((2, 4)), np.ones((3, 4))).shape)
    (2, 3)
    """

    def __init__(self, temperature_init=10.0, max_temperature=100.0, **kwargs):
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
        self.temperature_init = float(temperature_init)
        self.max_temperature = float(max_temperature)
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

    def normalize(self, embeddings):
        return ops.normalize(ops.cast(embeddings, "float32"), axis=-1)

    def call(self, image_embeddings, text_embeddings):
        return contrastive_logits(
            self.normalize(image_embeddings),
            self.normalize(text_embeddings),
            self.temperature,
        )

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
            }
        )
        return config
