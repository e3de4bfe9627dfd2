"""A compact progress bar for `fit`: one tqdm bar per training run."""

import keras
from tqdm import tqdm


class ProgressBar(keras.callbacks.Callback):
    """Shows one bar over all steps of a `fit` call, with the latest loss.

    Works with `steps_per_execution > 1` (Keras then reports every N steps).

    Args:
        total_steps: int. Steps over all epochs.
        description: string. Label in front of the bar.
        enabled: bool. `False` shows nothing. Defaults to `True`.
        metric: string. The log shown beside the bar. Defaults to `"loss"`.
    """

    def __init__(self, total_steps, description, enabled=True, metric="loss"):
        super().__init__()
        self.total_steps = int(total_steps)
        self.description = description
        self.enabled = enabled
        self.metric = metric
        self._bar = None
        self._done = 0
        self._epoch_start = 0

    def on_train_begin(self, logs=None):
        self._bar = tqdm(
            total=self.total_steps,
            desc=self.description,
            disable=not self.enabled,
            unit="step",
            leave=True,
            dynamic_ncols=True,
        )
        self._done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._done

    def on_train_batch_end(self, batch, logs=None):
        steps = (self.params or {}).get("steps") or (int(batch) + 1)
        done = self._epoch_start + min(int(batch) + 1, int(steps))
        self._bar.update(max(done - self._done, 0))
        self._done = done
        if logs and self.metric in logs:
            self._bar.set_postfix(
                {self.metric: f"{float(logs[self.metric]):.3f}"}
            )

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.update(max(self.total_steps - self._done, 0))
            self._bar.close()
