"""One worker of a real 2-process MultiWorkerMirroredStrategy run.

Started by `multi_worker_test.py` with `TF_CONFIG` set, twice (task 0 and
task 1, on 127.0.0.1). It reads `config.json`, `data.npz` and
`initial.weights.npz` from the work directory, trains a tiny `LiTModel` with
plain `model.fit` and writes `result_<task>.json` and
`weights_<task>.npz`. The test builds the same model in-process
(`build_model`) as the single-process reference.

Usage: python multi_worker_worker.py <work_dir>
"""

import json
import os
import sys
import time

STARTED = time.time()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Importing is fine; the strategy must exist before any TensorFlow op runs.
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_lit.distribute import get_strategy  # noqa: E402
from keras_lit.distribute import shard_dataset  # noqa: E402
from keras_lit.distribute import worker_backup_dir  # noqa: E402


def build_model(vocabulary):
    """The tiny tower pair shared by the workers and the reference run."""
    import keras_cv

    from keras_lit.layers import LockedImageEncoder
    from keras_lit.layers import TextEncoder
    from keras_lit.models import LiTModel

    backbone = keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[8, 16],
        stackwise_blocks=[2, 2],
        stackwise_strides=[1, 2],
        include_rescaling=True,
        input_shape=(32, 32, 3),
    )
    image_encoder = LockedImageEncoder(backbone)
    text_encoder = TextEncoder.from_scratch(
        vocabulary,
        projection_dim=image_encoder.output_dim,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
    )
    return LiTModel(image_encoder, text_encoder)


def write_examples(path, images, texts):
    """Writes `{"images", "texts"}` pairs as a TFRecord file."""
    with tf.io.TFRecordWriter(path) as writer:
        for image, text in zip(images, texts):
            features = {
                "image": _bytes_feature(np.asarray(image, "uint8").tobytes()),
                "text": _bytes_feature(text.encode()),
            }
            example = tf.train.Example(
                features=tf.train.Features(feature=features)
            )
            writer.write(example.SerializeToString())


def parse_example(record):
    features = tf.io.parse_single_example(
        record,
        {
            "image": tf.io.FixedLenFeature([], tf.string),
            "text": tf.io.FixedLenFeature([], tf.string),
        },
    )
    image = tf.io.decode_raw(features["image"], tf.uint8)
    return {"images": tf.reshape(image, [32, 32, 3]), "texts": features["text"]}


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def main(work_dir):
    timings = {"imported": time.time() - STARTED}
    strategy = get_strategy("multi_worker")
    timings["strategy"] = time.time() - STARTED
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    with open(os.path.join(work_dir, "config.json")) as f:
        config = json.load(f)
    data = np.load(os.path.join(work_dir, "data.npz"))
    examples = {key: data[key] for key in data.files if key != "texts"}
    examples["texts"] = data["texts"].tolist()
    result = {"task": task, "replicas": strategy.num_replicas_in_sync}
    result["timings"] = timings

    with strategy.scope():
        model = build_model(config["vocabulary"])
        initial = np.load(os.path.join(work_dir, "initial.weights.npz"))
        model.set_weights([initial[f"w{i}"] for i in range(len(initial))])
        model.compile()

    timings["built"] = time.time() - STARTED
    callbacks = [Recorder(work_dir, task, result, config.get("pause"))]
    if config.get("backup_dir"):
        backup_dir = worker_backup_dir(config["backup_dir"], strategy)
        result["backup_dir"] = backup_dir
        callbacks.insert(
            0,
            keras.callbacks.BackupAndRestore(
                backup_dir, delete_checkpoint=False
            ),
        )
    try:
        history = model.fit(
            examples,
            batch_size=config["global_batch_size"],
            epochs=config["epochs"],
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
    except Exception as error:
        # The test measures how soon a survivor notices a dead peer.
        result["error"] = f"{type(error).__name__}: {error}"
        result["error_time"] = time.time()
        write_json(work_dir, f"result_{task}.json", result)
        raise
    timings["fit_returned"] = time.time() - STARTED
    result["history"] = history.history
    if config.get("files"):
        # TFRecord shards, one per worker: sharded by FILE, each worker
        # reads only its own file.
        files = config["files"]
        dataset = tf.data.TFRecordDataset(files).map(parse_example)
        dataset = shard_dataset(
            dataset, config["global_batch_size"], strategy, files=files
        )
        batches = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: file_losses.append(
                float(logs["loss"])
            )
        )
        file_losses = []
        history = model.fit(dataset, verbose=0, callbacks=[batches])
        result["file_history"] = history.history
        result["file_losses"] = file_losses
    result["iterations"] = int(model.optimizer.iterations.numpy())
    save_weights(model, work_dir, f"weights_{task}.npz")

    if config.get("canary"):
        result["canary"] = unpatched_keras_failures(model, examples)
    timings["done"] = time.time() - STARTED
    write_json(work_dir, f"result_{task}.json", result)


class Recorder(keras.callbacks.Callback):
    """Records the restored progress and tells the test how far it got."""

    def __init__(self, work_dir, task, result, pause):
        super().__init__()
        self.work_dir = work_dir
        self.task = task
        self.result = result
        self.pause = pause
        self.epoch = 0

    def on_train_begin(self, logs=None):
        self.result["timings"]["train_begin"] = time.time() - STARTED
        # BackupAndRestore (the callback before this one) has already
        # restored the weights, the optimizer and the epoch.
        self.result["initial_epoch"] = int(self.model._initial_epoch or 0)
        self.result["initial_iterations"] = int(
            self.model.optimizer.iterations.numpy()
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_end(self, logs=None):
        self.result["timings"]["train_end"] = time.time() - STARTED

    def on_train_batch_end(self, batch, logs=None):
        progress = {"epoch": self.epoch, "batch": batch, "task": self.task}
        write_json(self.work_dir, f"progress_{self.task}.json", progress)
        if self.pause and all(
            progress[key] == self.pause[key]
            for key in ("task", "epoch", "batch")
        ):
            # Hold still here (not in a backup write) for the test to kill.
            time.sleep(self.pause["seconds"])


def unpatched_keras_failures(model, examples):
    """Runs the two Keras 3.15 code paths that LiTModel works around.

    Returns the error each raises, or "ok" once Keras has fixed it.
    """
    from keras.src.backend.tensorflow.trainer import TFEpochIterator
    from keras.src.backend.tensorflow.trainer import reduce_per_replica

    from keras_lit.models.lit_data import as_dataset

    failures = {}
    strategy = model.distribute_strategy
    iterator = TFEpochIterator(
        x=as_dataset(model, examples, None, 8, drop=True),
        distribute_strategy=strategy,
        steps_per_execution=1,
    )
    try:
        keras.Model._maybe_symbolic_build(model, iterator=iterator)
        failures["symbolic_build"] = "ok"
    except Exception as error:  # noqa: BLE001 - recording whatever Keras raises
        failures["symbolic_build"] = f"{type(error).__name__}: {error}"

    # Keras reduces the per-replica logs of each step with this function.
    @tf.function
    def reduce_scalar_logs():
        logs = strategy.run(lambda: {"loss": tf.constant(1.0)})
        return reduce_per_replica(logs, strategy, reduction="auto")

    try:
        reduce_scalar_logs()
        failures["scalar_logs"] = "ok"
    except Exception as error:  # noqa: BLE001
        failures["scalar_logs"] = f"{type(error).__name__}: {error}"
    return failures


def save_weights(model, work_dir, name):
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(os.path.join(work_dir, name), **weights)


def write_json(work_dir, name, value):
    path = os.path.join(work_dir, name)
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    # Everything is written: skip the 7-9 s C++ teardown of the collective
    # runtime at interpreter exit.
    sys.stdout.flush()
    os._exit(0)
