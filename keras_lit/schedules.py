"""Learning-rate schedules shared by the command line and the demo."""

import keras


def warmup_cosine_decay(learning_rate, total_steps, warmup_steps):
    """Linear warmup from 0 to `learning_rate`, then cosine decay to 0.

    Args:
        learning_rate: float. The peak learning rate, reached after
            `warmup_steps`.
        total_steps: int. Steps of the whole run; the rate is 0 at the end.
        warmup_steps: int. Steps of the linear warmup.

    Returns:
        A `keras.optimizers.schedules.CosineDecay`.
    """
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )
