"""Two real worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy.

Each test starts `multi_worker_worker.py` twice with `TF_CONFIG` (free ports
from portpicker), lets them train with plain `model.fit`, and compares with
a single-process run in this process on the same global batches. Every wait
has a timeout, so a hung worker fails the test instead of the suite.
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import portpicker
import pytest
from conftest import CAPTIONS
from distribute_test import assert_weights_close
from multi_worker_worker import build_model
from multi_worker_worker import write_examples

WORKER = os.path.join(os.path.dirname(__file__), "multi_worker_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH_SIZE = 8
# Generous: two TF processes on a busy 2-core machine. A quiet one needs
# about a third of it.
RUN_TIMEOUT = 240


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory, vocabulary):
    """Two workers fit 3 global batches; one process fits the same ones."""
    work_dir = tmp_path_factory.mktemp("two_workers")
    examples = _write_inputs(work_dir, vocabulary, steps=3, canary=True)
    # Then two TFRecord shards of 2 x 4 examples, sharded by FILE: step k
    # is rows 4k..4k+3 of shard 0 followed by the same rows of shard 1.
    rng = np.random.default_rng(8)
    images = rng.integers(0, 256, (2, 8, 32, 32, 3), dtype=np.uint8)
    texts = [
        [f"{CAPTIONS[(i + shard) % 8]} {shard}" for i in range(8)]
        for shard in (0, 1)
    ]
    files = [str(work_dir / f"shard-{shard}.tfrecord") for shard in (0, 1)]
    for shard in (0, 1):
        write_examples(files[shard], images[shard], texts[shard])
    _rewrite_config(work_dir, files=files)
    order = [
        (shard, row)
        for step in (0, 1)
        for shard in (0, 1)
        for row in range(4 * step, 4 * step + 4)
    ]
    file_examples = {
        "images": np.stack([images[shard, row] for shard, row in order]),
        "texts": [texts[shard][row] for shard, row in order],
    }

    started = time.time()
    workers = _start_workers(work_dir)
    # The single-process reference trains while the workers do.
    history, model = _reference_fit(work_dir, vocabulary, examples, 1)
    file_history = model.fit(
        file_examples,
        batch_size=GLOBAL_BATCH_SIZE,
        shuffle=False,
        verbose=0,
    ).history
    _wait_all(workers, work_dir)
    return {
        "elapsed": time.time() - started,
        "expected_history": history,
        "expected_file_history": file_history,
        "names": [weight.path for weight in model.weights],
        "expected_weights": model.get_weights(),
        "results": [_read_json(work_dir / f"result_{i}.json") for i in (0, 1)],
        "weights": [
            _read_weights(work_dir / f"weights_{i}.npz") for i in (0, 1)
        ],
    }


def test_two_workers_fit_like_one_process(two_worker_run):
    results = two_worker_run["results"]
    assert [result["replicas"] for result in results] == [2, 2]
    weights = two_worker_run["weights"]
    # Both workers hold the same weights, bit for bit ...
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    # ... and match one process on the same global batches.
    assert_weights_close(
        two_worker_run["names"],
        weights[0],
        two_worker_run["expected_weights"],
        rtol=1e-4,
    )
    # 3 in-memory steps and 2 from the TFRecord shards (and no phantom
    # step at the end of the shards, whose length is unknown).
    assert [result["iterations"] for result in results] == [5, 5]
    assert len(results[0]["file_losses"]) == 2
    for key in ("history", "file_history"):
        for name, values in two_worker_run[f"expected_{key}"].items():
            np.testing.assert_allclose(
                results[0][key][name], values, rtol=1e-4, err_msg=key
            )
            assert results[0][key][name] == results[1][key][name]
    elapsed = two_worker_run["elapsed"]
    print(f"two workers: started to done in {elapsed:.1f} s")
    assert elapsed < 120, f"the two-worker fit took {elapsed:.1f} s"


def test_keras_still_needs_the_multi_worker_workaround(two_worker_run):
    """Fails loudly once Keras fixes `fit` under MultiWorkerMirroredStrategy.

    After their patched `fit`, the workers re-ran the two Keras 3.15 code
    paths that LiTModel works around. When these stop failing, the
    workarounds in keras_lit/compat.py (`TrainerWorkarounds`'s
    `_maybe_symbolic_build` and `multi_worker_logs`) can go.
    """
    for result in two_worker_run["results"]:
        canary = result["canary"]
        assert canary["symbolic_build"] != "ok", (
            "Keras now builds models from a multi-worker dataset: "
            "compat.TrainerWorkarounds is no longer needed "
            "(keras-team/keras#20585)."
        )
        assert "Attempt to convert a value" in canary["symbolic_build"]
        assert "PerReplica" in canary["symbolic_build"]
        assert canary["scalar_logs"] != "ok", (
            "Keras now reduces scalar logs over workers: the [1]-shaped "
            "logs of compat.multi_worker_logs are no longer needed "
            "(keras-team/keras#20329)."
        )
        assert "Invalid reduction dimension 0" in canary["scalar_logs"]


def test_worker_death_then_resume_from_backups(tmp_path, vocabulary):
    epochs, steps = 3, 2
    backup_dir = tmp_path / "backup"
    examples = _write_inputs(
        tmp_path,
        vocabulary,
        steps=steps,
        epochs=epochs,
        backup_dir=str(backup_dir),
        # Worker 1 holds still after the first step of epoch 1 (after the
        # backup of epoch 0), for the kill.
        pause={"task": 1, "epoch": 1, "batch": 0, "seconds": 60},
        image_embeddings=True,
    )
    survivor, victim = _start_workers(tmp_path)
    _wait_for(
        lambda: _progress(tmp_path, 1) == {"epoch": 1, "batch": 0, "task": 1},
        [survivor, victim],
        tmp_path,
    )
    victim.send_signal(signal.SIGKILL)
    killed = time.time()
    try:
        returncode = survivor.wait(timeout=30)
    except subprocess.TimeoutExpired:
        survivor.kill()
        pytest.fail("The surviving worker hung for 30 s after its peer died")
    noticed = time.time() - killed
    print(f"survivor exited {noticed:.1f} s after its peer was killed")
    victim.wait(timeout=10)
    result = _read_json(tmp_path / "result_0.json")
    assert returncode != 0
    assert "Another worker of this multi-worker run failed" in (result["error"])
    assert "BackupAndRestore" in result["error"]
    assert result["error_time"] - killed < 30
    assert noticed < 30

    # One backup directory per worker, each at an epoch boundary.
    saved = {}
    for task in (0, 1):
        directory = backup_dir / f"worker-{task}"
        assert (directory / "latest.weights.h5").exists()
        saved[task] = _read_json(directory / "training_metadata.json")
    assert saved[0]["epoch"] == saved[1]["epoch"] == 1

    # Restart both: training resumes from the backups and ends where an
    # uninterrupted single-process run ends.
    for task in (0, 1):
        (tmp_path / f"result_{task}.json").unlink(missing_ok=True)
    _rewrite_config(tmp_path, pause=None)
    workers = _start_workers(tmp_path)
    _, model = _reference_fit(tmp_path, vocabulary, examples, epochs=epochs)
    _wait_all(workers, tmp_path)
    results = [_read_json(tmp_path / f"result_{i}.json") for i in (0, 1)]
    for result in results:
        assert result["initial_epoch"] == saved[0]["epoch"]
        assert result["initial_iterations"] == saved[0]["epoch"] * steps
        assert len(result["history"]["loss"]) == epochs - saved[0]["epoch"]
    weights = [_read_weights(tmp_path / f"weights_{i}.npz") for i in (0, 1)]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    names = [weight.path for weight in model.weights]
    assert_weights_close(names, weights[0], model.get_weights(), rtol=1e-4)


# --- Helpers --------------------------------------------------------------


def _write_inputs(
    work_dir,
    vocabulary,
    steps,
    epochs=1,
    canary=False,
    backup_dir=None,
    pause=None,
    image_embeddings=False,
):
    size = steps * GLOBAL_BATCH_SIZE
    rng = np.random.default_rng(7)
    texts = [f"{CAPTIONS[i % 8]} {i % 5}" for i in range(size)]
    keras.utils.set_random_seed(3)
    model = build_model(vocabulary)
    if image_embeddings:
        images = rng.normal(size=(size, model.embedding_dim))
        examples = {"image_embeddings": images.astype("float32")}
    else:
        images = rng.integers(0, 256, (size, 32, 32, 3), dtype=np.uint8)
        examples = {"images": images}
    np.savez(work_dir / "data.npz", texts=np.array(texts), **examples)
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(work_dir / "initial.weights.npz", **weights)
    config = {
        "vocabulary": vocabulary,
        "global_batch_size": GLOBAL_BATCH_SIZE,
        "epochs": epochs,
        "canary": canary,
        "backup_dir": backup_dir,
        "pause": pause,
    }
    (work_dir / "config.json").write_text(json.dumps(config))
    examples["texts"] = texts
    return examples


def _rewrite_config(work_dir, **changes):
    config = _read_json(work_dir / "config.json")
    config.update(changes)
    (work_dir / "config.json").write_text(json.dumps(config))


def _start_workers(work_dir, count=2):
    ports = [portpicker.pick_unused_port() for _ in range(count)]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for task in range(count):
        tf_config = {
            "cluster": cluster,
            "task": {"type": "worker", "index": task},
        }
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(tf_config),
            PYTHONPATH=os.pathsep.join(
                [ROOT, os.environ.get("PYTHONPATH", "")]
            ),
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        log = open(work_dir / f"worker_{task}.log", "w")
        workers.append(
            subprocess.Popen(
                [sys.executable, WORKER, str(work_dir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
    return workers


def _wait_all(workers, work_dir, timeout=RUN_TIMEOUT):
    deadline = time.time() + timeout
    try:
        for task, worker in enumerate(workers):
            returncode = worker.wait(timeout=max(1, deadline - time.time()))
            assert returncode == 0, _log_tail(work_dir, task)
    finally:
        _kill(workers)


def _wait_for(condition, workers, work_dir, timeout=RUN_TIMEOUT):
    deadline = time.time() + timeout
    while not condition():
        for task, worker in enumerate(workers):
            if worker.poll() is not None:
                _kill(workers)
                pytest.fail(
                    f"worker {task} exited early\n" + _log_tail(work_dir, task)
                )
        if time.time() > deadline:
            _kill(workers)
            pytest.fail("workers made no progress\n" + _log_tail(work_dir, 0))
        time.sleep(0.1)


def _kill(workers):
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)


def _reference_fit(work_dir, vocabulary, examples, epochs):
    model = build_model(vocabulary)
    initial = _read_weights(work_dir / "initial.weights.npz")
    model.set_weights(initial)
    model.compile()
    history = model.fit(
        examples,
        batch_size=GLOBAL_BATCH_SIZE,
        epochs=epochs,
        shuffle=False,
        verbose=0,
    )
    return history.history, model


def _progress(work_dir, task):
    path = work_dir / f"progress_{task}.json"
    return _read_json(path) if path.exists() else {}


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _read_weights(path):
    weights = np.load(path)
    return [weights[f"w{i}"] for i in range(len(weights))]


def _log_tail(work_dir, task, lines=30):
    path = work_dir / f"worker_{task}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text().splitlines()[-lines:])
