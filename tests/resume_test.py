"""Exact resume: `keras-lit train` killed with SIGKILL, then restarted.

Also the `fit` recipe in-process (`StepBackupAndRestore`).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from cli_test import COLOURS
from cli_test import png

from keras_lit.callbacks import StepBackupAndRestore

STEPS, STEPS_PER_EPOCH = 12, 5  # 3 epochs of 5: the run ends at step 15


def write_run(root):
    from keras_lit.data import serialize_example

    (root / "data").mkdir()
    with tf.io.TFRecordWriter(str(root / "data" / "train.tfrecord")) as out:
        for index in range(40):
            name = list(COLOURS)[index % 4]
            image = png(COLOURS[name], index) if index % 13 else b"garbage"
            out.write(serialize_example(image, [f"a {name} picture"]))
    config = {
        "image_tower": {
            "keras_cv_args": {
                "stackwise_filters": [8, 16],
                "stackwise_blocks": [2, 2],
                "stackwise_strides": [1, 2],
                "include_rescaling": True,
            },
            "image_size": [32, 32],
        },
        "text_tower": {"vocabulary_size": 100},
        "data": {"format": "tfrecord", "train": str(root / "data" / "*")},
        "train": {
            "steps": STEPS,
            "steps_per_epoch": STEPS_PER_EPOCH,
            "global_batch_size": 8,
            "checkpoint_every": 2,
            "tensorboard": False,
        },
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))


def start(root, name):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [
        sys.executable, "-m", "keras_lit", "train", "--quiet", "--smoke",
        "--config", str(root / "config.yaml"),
        "--set", f"output_dir={root / name}",
        "--set", f"train.steps={STEPS}",
        "--set", f"train.steps_per_epoch={STEPS_PER_EPOCH}",
        "--set", f"train.batch_log={root / (name + '.log')}",
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def batch_log(path):
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(int(s), c) for s, c in (line.split() for line in lines if line)]


def backup_step(root):
    path = root / "resumed" / "backup" / "state.json"
    try:
        return json.loads(path.read_text())["step"]
    except (OSError, ValueError):  # Not written yet.
        return 0


def kill_after_backup(process, root, step):
    """SIGKILLs `process` once it has backed up step `step` (or later)."""
    deadline = time.time() + 600
    while process.poll() is None and time.time() < deadline:
        if backup_step(root) >= step:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "finished before the kill"


def final_weights(path):
    model = keras.saving.load_model(path)
    return [weight.numpy() for weight in model.weights]


@pytest.mark.multiprocess
@pytest.mark.large
def test_sigkill_twice_then_resume_matches_uninterrupted_run(tmp_path):
    write_run(tmp_path)
    rng = random.Random()
    # Backups every 2 steps; epochs of 5. The first restart lands in the
    # middle of the first epoch, the second later (a kill lands wherever
    # training is once the backup exists).
    kills = [rng.choice([2, 4]), rng.choice([6, 8, 12])]
    reference = start(tmp_path, "straight")  # runs alongside
    logs = tmp_path / "resumed.log"
    restarts = []
    for kill in kills:
        kill_after_backup(start(tmp_path, "resumed"), tmp_path, kill)
        restarts.append(backup_step(tmp_path))
        logs.rename(tmp_path / f"killed-at-{kill}.log")
    final = start(tmp_path, "resumed")
    output = final.communicate()[0]
    assert final.returncode == 0, output
    reference_output = reference.communicate()[0]
    assert reference.returncode == 0, reference_output

    # Same weights as the uninterrupted run.
    for got, want in zip(
        final_weights(tmp_path / "resumed" / "model.keras"),
        final_weights(tmp_path / "straight" / "model.keras"),
    ):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    # Same batches in the same order: every run's batch `i` is the
    # reference's batch `i`, and each restart begins at the step after its
    # backup (no batch repeated or skipped).
    reference_batches = dict(batch_log(tmp_path / "straight.log"))
    assert len(reference_batches) >= 15
    runs = [tmp_path / f"killed-at-{kill}.log" for kill in kills] + [logs]
    starts = [0] + restarts
    for path, first in zip(runs, starts):
        batches = batch_log(path)
        indices = [index for index, _ in batches]
        assert indices == list(range(first, first + len(indices)))
        for index, checksum in batches:
            assert reference_batches[index] == checksum, (path, index)
    assert restarts[0] % STEPS_PER_EPOCH and restarts[0] < restarts[1]
    assert f"Resuming after step {restarts[1]}" in output
    # The skipped-image counts (precompute ran before the kills and is not
    # read again) survive both restarts.
    summary = "skipped 4 of 40 images (4 corrupt"
    assert summary in output and summary in reference_output


class StopAt(keras.callbacks.Callback):
    """Simulates a crash: raises once the optimizer reaches `step`."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            raise RuntimeError("crash")


@pytest.mark.large
def test_fit_recipe_resumes_mid_epoch_exactly(tmp_path, vocabulary):
    """The README's `fit` recipe: crash at step 7 of 4-step epochs."""
    from conftest import make_lit_model

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (24, 32, 32, 3)).astype("float32")
    data = {"images": images, "texts": [f"a photo {i}" for i in range(24)]}

    def train(backup_dir, crash_at=None):
        # Built afresh, as a restarted process would: iterating one dataset
        # object twice reshuffles it differently the second time.
        keras.utils.set_random_seed(0)
        dataset = (
            tf.data.Dataset.from_tensor_slices(data)
            .shuffle(24, seed=1, reshuffle_each_iteration=True)
            .batch(4, drop_remainder=True)
        )
        model = make_lit_model(vocabulary)
        model.compile(optimizer=keras.optimizers.AdamW(1e-2))
        backup = StepBackupAndRestore(backup_dir, save_every=3, total_steps=12)
        backup.restore(model)
        callbacks = [backup] + ([StopAt(crash_at)] if crash_at else [])
        try:
            model.fit(
                backup.resume_dataset(dataset.repeat()),
                epochs=3,
                steps_per_epoch=4,
                initial_epoch=backup.initial_epoch(4),
                callbacks=callbacks,
                verbose=0,
            )
        except RuntimeError:
            return None
        return model

    straight = train(tmp_path / "a")
    assert train(tmp_path / "b", crash_at=7) is None
    assert json.loads((tmp_path / "b" / "state.json").read_text())["step"] == 6
    resumed = train(tmp_path / "b")
    assert int(resumed.optimizer.iterations) == 12
    for got, want in zip(resumed.weights, straight.weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="save_every"):
        StepBackupAndRestore(tmp_path, save_every=0)
