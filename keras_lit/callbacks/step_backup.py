"""Exact resume: back up every N steps, restart at the next step."""

import glob
import json
import os
import zlib

import keras
import numpy as np
import tensorflow as tf

STATE_FILENAME = "state.json"


class StepBackupAndRestore(keras.callbacks.Callback):
    """Backs training up every `save_every` steps; resumes at the next step.

    Keras' `BackupAndRestore` restarts an interrupted epoch at its first
    batch, so batches run twice and the data order after a restart differs
    from an uninterrupted run. This callback saves, every `save_every`
    training steps (and when training ends), the weights, the optimizer
    state (its step counter drives the learning-rate schedule), the input
    pipeline's position (the number of batches consumed) and the values of
    `counters` (e.g. a reader's `SkippedImages`). A restarted run restores
    them and skips the batches already consumed, so it trains step `s + 1`
    next: killed at any step and restarted with the same command, the run
    ends with the weights of an uninterrupted run and sees the same batches
    in the same order.

    The input pipeline must be deterministic (a fixed `seed`, as every
    `keras_lit.data` reader and `load_precomputed` offer). Skipping replays
    the pipeline up to the saved position (records are read, not trained
    on): fast for precomputed embeddings, about one pass of image decoding
    otherwise. A pipeline's own counters are thereby rebuilt by the replay;
    pass in `counters` only counters filled before `fit` (e.g. those of a
    precompute run, whose finished shards are not read again). After a
    resume, epoch boundaries fall `s % steps_per_epoch` steps later than in
    an uninterrupted run (this moves only per-epoch logs).

    Backups are written atomically (a temporary file, then a rename), so a
    kill while saving leaves the previous backup intact. Under multi-worker
    training give each worker its own `backup_dir`
    (`keras_lit.distribute.worker_backup_dir`): each resumes from its own.

    Args:
        backup_dir: str. Directory for the backups.
        save_every: int. Training steps between backups. Defaults to `100`.
        total_steps: optional int. Stop once the optimizer has taken this
            many steps (a resumed run's last epoch ends early). Defaults to
            `None` (train the epochs `fit` was given).
        counters: list of objects with a `variable` (an int `tf.Variable`),
            such as `SkippedImages`, saved and restored. Defaults to `()`.

    Example (the `fit` recipe):
    >>> backup = StepBackupAndRestore(  # doctest: +SKIP
    ...     "run/backup", save_every=50, total_steps=epochs * steps_per_epoch)
    >>> step = backup.restore(model)  # doctest: +SKIP
    >>> model.fit(  # doctest: +SKIP
    ...     backup.resume_dataset(dataset.repeat()),
    ...     epochs=epochs,
    ...     steps_per_epoch=steps_per_epoch,
    ...     initial_epoch=backup.initial_epoch(steps_per_epoch),
    ...     callbacks=[backup],
    ... )
    """

    def __init__(
        self, backup_dir, save_every=100, total_steps=None, counters=()
    ):
        super().__init__()
        if isinstance(save_every, bool) or not isinstance(save_every, int):
            raise ValueError(
                "`save_every` must be a positive int. "
                f"Received: save_every={save_every!r}"
            )
        if save_every < 1:
            raise ValueError(
                "`save_every` must be a positive int. "
                f"Received: save_every={save_every!r}"
            )
        self.backup_dir = str(backup_dir)
        self.save_every = save_every
        self.total_steps = None if total_steps is None else int(total_steps)
        self.counters = list(counters)
        self.restored_step = 0
        self._saved_step = None

    # --- Before fit -------------------------------------------------------

    def state(self):
        """The last backup's state dict, or `None` when there is none."""
        path = os.path.join(self.backup_dir, STATE_FILENAME)
        if not os.path.exists(path):
            return None
        with open(path) as file:
            return json.load(file)

    def restore(self, model):
        """Loads the last backup into `model`; returns the steps it had done.

        Call after `compile` and before `fit`. Returns `0` (and leaves
        `model` as it is) when `backup_dir` holds no backup.
        """
        state = self.state()
        if state is None:
            self.restored_step = 0
            return 0
        optimizer = model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        step = int(state["step"])
        if optimizer is not None and int(optimizer.iterations) != step:
            raise ValueError(
                f"Backup {self.backup_dir} is inconsistent: state.json says "
                f"step {step}, the optimizer was saved at step "
                f"{int(optimizer.iterations)}."
            )
        for counter, values in zip(self.counters, state.get("counters", [])):
            counter.variable.assign(np.asarray(values, "int64"))
        self.restored_step = step
        self._saved_step = step
        return step

    def resume_dataset(self, dataset):
        """`dataset` without the batches the restored run already consumed.

        Pass the dataset exactly as `fit` would get it (batched, repeated).
        """
        if not self.restored_step:
            return dataset
        return dataset.skip(self.restored_step)

    def initial_epoch(self, steps_per_epoch):
        """The epoch `fit` resumes in (its `initial_epoch` argument)."""
        return self.restored_step // int(steps_per_epoch)

    # --- During fit -------------------------------------------------------

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        last = self._saved_step or 0
        if step // self.save_every > last // self.save_every:
            self.save()
        if self.total_steps is not None and step >= self.total_steps:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._step() != self._saved_step:
            self.save()

    def save(self):
        """Writes a backup of the current step now."""
        step = self._step()
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = f"step-{step:09d}.weights.h5"
        path = os.path.join(self.backup_dir, weights)
        partial = path + ".partial.weights.h5"
        self.model.save_weights(partial, overwrite=True)
        os.replace(partial, path)
        state = {
            "step": step,
            "weights": weights,
            "counters": [
                np.asarray(counter.variable.numpy()).tolist()
                for counter in self.counters
            ],
        }
        _write_json_atomically(
            os.path.join(self.backup_dir, STATE_FILENAME), state
        )
        for old in glob.glob(os.path.join(self.backup_dir, "step-*.h5")):
            if os.path.basename(old) != weights:
                os.remove(old)
        self._saved_step = step


def _write_json_atomically(path, value):
    partial = path + ".partial"
    with open(partial, "w") as file:
        json.dump(value, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def log_batches(dataset, path, first_step=0):
    """`dataset`, appending `<step> <crc32>` to `path` per batch it yields.

    A debugging aid for resumes: batch `first_step` is the first one a
    resumed `fit` trains on. Lines are written when the pipeline produces a
    batch, so they may run a few batches ahead of training (prefetch).
    """

    def record(step, *tensors):
        checksum = 0
        for tensor in tensors:
            values = tensor.numpy()
            if values.dtype == object:
                data = b"\x00".join(values.reshape(-1).tolist())
            else:
                data = values.tobytes()
            checksum = zlib.crc32(data, checksum)
        with open(path, "a") as file:
            file.write(f"{int(step)} {checksum:08x}\n")
        return step

    def write(step, batch):
        done = tf.py_function(record, [step, *tf.nest.flatten(batch)], tf.int64)
        with tf.control_dependencies([done]):
            return tf.nest.map_structure(tf.identity, batch)

    return dataset.enumerate(first_step).map(write)
