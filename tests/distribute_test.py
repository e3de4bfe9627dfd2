"""Global-batch training under tf.distribute, on 4 logical CPU devices.

The equivalence tests train the same model from the same weights on the
same global batches with no strategy and under MirroredStrategy over 1, 2
and 4 replicas, and check that losses and updated weights agree. The
label-offset and metric tests check the gathered loss against numpy.
"""

import contextlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CAPTIONS
from conftest import make_lit_model
from conftest import random_images

from keras_lit import distribute
from keras_lit.compat import clip_global_gradients
from keras_lit.distribute import get_strategy
from keras_lit.distribute import parse_tf_config
from keras_lit.distribute import per_replica_batch_size
from keras_lit.distribute import shard_dataset

GLOBAL_BATCH_SIZE = 16
STEPS = 3


def cpus(count):
    return [f"/cpu:{i}" for i in range(count)]


def assert_weights_close(names, actual, expected, rtol=1e-5, atol=1e-6):
    """Compares weights (named by `names`) within `rtol` relative.

    Attention key biases (`key/bias`, or the middle third of a fused
    `qkv/bias`) are left out of the relative check: softmax is
    invariant to adding a constant per query, so their exact gradient is 0
    and what they receive is float32 round-off, which Adam's `g / sqrt(v)`
    blows up to ~lr * round-off / epsilon (~1e-6) in any summation order.
    They must stay near 0 instead. `atol` (lr / 1000) covers Adam's
    amplification of round-off in other near-zero gradients; it is small
    against Adam's steps of ~lr. Adam is blind to a constant gradient scale,
    so the SGD tests below catch loss-scaling bugs.
    """
    assert len(names) == len(actual) == len(expected)
    for name, a, b in zip(names, actual, expected):
        if name.endswith("key/bias"):
            assert np.max(np.abs(a)) < 1e-5 and np.max(np.abs(b)) < 1e-5
            continue
        if name.endswith("qkv/bias"):
            # A fused [query | key | value] bias: the middle third is the
            # key bias.
            third = a.shape[-1] // 3
            keys = slice(third, 2 * third)
            assert np.max(np.abs(a[keys])) < 1e-5, name
            assert np.max(np.abs(b[keys])) < 1e-5, name
            a = np.delete(a, keys)
            b = np.delete(b, keys)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)
    # And all of them, as one vector, within `rtol`.
    a = np.concatenate([np.ravel(w) for w in actual])
    b = np.concatenate([np.ravel(w) for w in expected])
    assert np.linalg.norm(a - b) <= rtol * np.linalg.norm(b)


def trainable_weights(model, expected_model):
    """`(names, actual, expected)` for `assert_weights_close`."""
    names = [weight.path for weight in model.trainable_weights]
    actual = [np.asarray(w) for w in model.trainable_weights]
    expected = [np.asarray(w) for w in expected_model.trainable_weights]
    return names, actual, expected


class StepLosses(keras.callbacks.Callback):
    """The loss of each step (Keras logs the running mean of the epoch)."""

    def on_train_begin(self, logs=None):
        self.running = []

    def on_train_batch_end(self, batch, logs=None):
        self.running.append(float(logs["loss"]))

    @property
    def losses(self):
        running = np.array(self.running, "float64")
        steps = np.arange(1, len(running) + 1)
        totals = running * steps
        return np.diff(totals, prepend=0.0)


@pytest.fixture(scope="module")
def training_data():
    size = STEPS * GLOBAL_BATCH_SIZE
    texts = [f"{CAPTIONS[i % 8]} number {i % 7}" for i in range(size)]
    return {"images": random_images(size, seed=5), "texts": texts}


@pytest.fixture(scope="module")
def initial_weights(vocabulary):
    keras.utils.set_random_seed(11)
    return make_lit_model(vocabulary).get_weights()


def fit_steps(vocabulary, weights, data, strategy=None, **compile_kwargs):
    """`STEPS` fit steps from `weights`: (model, step losses, history).

    One device and N replicas run the same TF kernels: `jit_compile="auto"`
    would pick XLA for one replica only (XLA vs TF: `jit_choice_test.py`).
    """
    compile_kwargs.setdefault("jit_compile", False)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = make_lit_model(vocabulary)
        model.set_weights(weights)
        model.compile(**compile_kwargs)
    steps = StepLosses()
    history = model.fit(
        data,
        batch_size=GLOBAL_BATCH_SIZE,
        shuffle=False,
        verbose=0,
        callbacks=[steps],
    )
    assert len(steps.running) == STEPS
    return model, steps.losses, history.history


@pytest.fixture(scope="module")
def single_device_run(vocabulary, initial_weights, training_data):
    return fit_steps(vocabulary, initial_weights, training_data)


# --- Equivalence ---------------------------------------------------------


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_mirrored_fit_matches_one_device(
    replicas, vocabulary, initial_weights, training_data, single_device_run
):
    expected_model, expected_losses, expected_history = single_device_run
    strategy = get_strategy("mirrored", devices=cpus(replicas))
    assert strategy.num_replicas_in_sync == replicas
    # The default compile: AdamW, weight decay and global_clipnorm=1.
    model, losses, history = fit_steps(
        vocabulary, initial_weights, training_data, strategy
    )
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    for name in ("loss", "image_to_text_accuracy", "text_to_image_accuracy"):
        np.testing.assert_allclose(
            history[name], expected_history[name], rtol=1e-5
        )
    # The text tower, the temperature (and nothing else) trained.
    text_weights = model.text_encoder.trainable_weights
    assert len(model.trainable_weights) == len(text_weights) + 1
    assert_weights_close(*trainable_weights(model, expected_model))
    np.testing.assert_allclose(
        float(model.temperature), float(expected_model.temperature), rtol=1e-5
    )
    assert float(model.temperature) != 10.0  # it did train
    assert int(model.optimizer.iterations.numpy()) == STEPS


@pytest.mark.parametrize("clipnorm", [None, 0.05])
def test_sgd_updates_match_one_device(
    clipnorm, vocabulary, initial_weights, training_data
):
    """SGD moves weights by the gradient itself: a wrong loss scale shows.

    (N replicas each scaled by 1 instead of 1/N give N times the update:
    OpenCLIP issue 616.) With a tight `global_clipnorm` every step is
    clipped, and the clip must use the norm of the dense global gradient:
    Keras clips each replica's part and mis-measures embedding
    (IndexedSlices) gradients; LiTModel clips the global one. Two replicas
    show both (each replica traces the step once more: keep it cheap).
    """
    runs = []
    for strategy in (None, get_strategy("mirrored", devices=cpus(2))):
        # An optimizer holds state: a new one for each run.
        optimizer = keras.optimizers.SGD(0.5, global_clipnorm=clipnorm)
        runs.append(
            fit_steps(
                vocabulary,
                initial_weights,
                training_data,
                strategy,
                optimizer=optimizer,
            )
        )
    (model, losses, _), (expected_model, expected_losses, _) = runs[1], runs[0]
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    assert_weights_close(
        *trainable_weights(model, expected_model),
        atol=1e-7,
    )


def test_loss_scaling_matches_one_device_and_sees_every_replica(
    vocabulary, initial_weights, training_data
):
    """`LossScaleOptimizer` without clipping, on 2 replicas.

    Keras' loss scaler checks only the first replica's gradients for
    inf/NaN. LiTModel hands every replica the summed gradient, so the
    check covers all of them, and training still equals one device.
    """

    def optimizer():
        return keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(0.5), initial_scale=2.0**10
        )

    strategy = get_strategy("mirrored", devices=cpus(2))
    model, losses, _ = fit_steps(
        vocabulary,
        initial_weights,
        training_data,
        strategy,
        optimizer=optimizer(),
    )
    expected_model, expected_losses, _ = fit_steps(
        vocabulary, initial_weights, training_data, optimizer=optimizer()
    )
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    assert_weights_close(*trainable_weights(model, expected_model), atol=1e-7)

    # An overflow on the second replica only reaches the first one too.
    def per_replica(context):
        if context.replica_id_in_sync_group == 0:
            return tf.constant([1.0, 2.0])
        return tf.constant([np.inf, 4.0])

    values = strategy.experimental_distribute_values_from_function(per_replica)
    scale = float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale))
    results = strategy.experimental_local_results(
        strategy.run(
            lambda g: clip_global_gradients(model.optimizer, [g * scale], 2)[0],
            args=(values,),
        )
    )
    for result in results:
        result = result.numpy() / scale
        assert np.isinf(result[0])
        np.testing.assert_allclose(result[1], 3.0)  # (2 + 4) / 2
    assert not bool(model.optimizer.check_finite([results[0]]))


# --- The gathered loss against numpy --------------------------------------


def numpy_global_loss(image_embeddings, text_embeddings, temperature):
    """Symmetric InfoNCE of one device holding the whole batch (float64)."""
    images = np.asarray(image_embeddings, "float64")
    texts = np.asarray(text_embeddings, "float64")
    logits = temperature * images @ texts.T
    labels = np.arange(len(logits))

    def cross_entropy(scores):
        scores = scores - scores.max(axis=1, keepdims=True)
        log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        return -log_probs[labels, labels]

    losses = 0.5 * (cross_entropy(logits) + cross_entropy(logits.T))
    image_correct = logits.argmax(axis=1) == labels
    text_correct = logits.T.argmax(axis=1) == labels
    return losses, image_correct, text_correct


def embeddings_of(model, data):
    images = model.encode_images(data["images"])
    texts = model.encode_texts(data["texts"])
    return images, texts


def test_gathered_loss_and_metrics_are_global(vocabulary, initial_weights):
    """4 replicas of 2 rows: the reported loss is the numpy global loss.

    Labels must be offset by `replica_id * local_batch`; without the offset
    (or scoring local rows only) the loss changes. Every replica reports the
    global values, so they are global whichever replica Keras reads
    (TPUStrategy reads replica 0's).
    """
    strategy = get_strategy("mirrored", devices=cpus(4))
    with strategy.scope():
        model = make_lit_model(vocabulary)
        model.set_weights(initial_weights)
        model.compile()
    data = {"images": random_images(8, seed=9), "texts": CAPTIONS}
    logs = model.evaluate(data, batch_size=8, verbose=0, return_dict=True)

    images, texts = embeddings_of(model, data)
    temperature = float(model.temperature)
    losses, image_correct, text_correct = numpy_global_loss(
        images, texts, temperature
    )
    np.testing.assert_allclose(logs["loss"], losses.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        logs["image_to_text_accuracy"], image_correct.mean(), rtol=1e-6
    )
    np.testing.assert_allclose(
        logs["text_to_image_accuracy"], text_correct.mean(), rtol=1e-6
    )
    np.testing.assert_allclose(logs["temperature"], temperature, rtol=1e-6)
    # Replica 0 alone (its 2 rows against the 8) reports something else,
    # and so would local negatives or labels without offsets.
    assert abs(losses[:2].mean() - losses.mean()) > 1e-3
    local = [
        numpy_global_loss(images[i : i + 2], texts[i : i + 2], temperature)[0]
        for i in range(0, 8, 2)
    ]
    assert abs(np.concatenate(local).mean() - losses.mean()) > 1e-3

    model.reset_metrics()
    batch = tf.data.Dataset.from_tensors(model.preprocessor(data))

    @tf.function
    def test_step(batch):
        return strategy.run(model.test_step, args=(batch,))

    distributed = strategy.experimental_distribute_dataset(batch)
    per_replica = test_step(next(iter(distributed)))
    replica_losses = strategy.experimental_local_results(per_replica["loss"])
    assert len(replica_losses) == 4
    for replica_loss in replica_losses:
        np.testing.assert_allclose(replica_loss, losses.mean(), rtol=1e-5)

    # A global batch that does not divide by the replicas is refused.
    with pytest.raises(ValueError, match=r"replicas \(4\), so that every"):
        model.fit(data, batch_size=6, verbose=0)


def test_unknown_length_dataset_counts_only_real_steps(vocabulary):
    """Keras finds the end of a TFRecord-like dataset by running the step
    once more; that run must not count a step, decay weights or report."""
    model = make_lit_model(vocabulary)
    model.compile()
    data = {"images": random_images(8), "texts": CAPTIONS}
    dataset = (
        tf.data.Dataset.from_tensor_slices(data)
        .filter(lambda example: True)  # unknown cardinality
        .batch(4, drop_remainder=True)
    )
    assert dataset.cardinality() == tf.data.UNKNOWN_CARDINALITY
    used, temperatures = [], []  # the temperature each real step used
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: used.append(
            float(model.temperature)
        ),
        on_train_batch_end=lambda batch, logs: temperatures.append(used[-1]),
    )
    history = model.fit(dataset, epochs=2, verbose=0, callbacks=[recorder])
    assert int(model.optimizer.iterations.numpy()) == 4
    # The temperature logged at the end of each epoch is the one its last
    # real step used.
    np.testing.assert_allclose(
        history.history["temperature"],
        [temperatures[1], temperatures[3]],
        rtol=1e-6,
    )


def test_uneven_last_batch_is_exact(vocabulary, initial_weights):
    """Batches of 8 then 5 on 4 replicas: the last one splits 2, 2, 1, 0.

    `tf.data` without `drop_remainder` splits a partial batch unevenly: the
    label offsets come from the gathered row counts, each replica's share
    of the loss is `b / G`, and an empty replica adds nothing. Evaluation
    matches numpy and a training epoch matches one device. (Precomputed
    image embeddings: the KerasCV ResNet itself fails on 0 images.)
    """
    rng = np.random.default_rng(3)
    data = {
        "image_embeddings": rng.normal(size=(13, 64)).astype("float32"),
        "texts": CAPTIONS + CAPTIONS[:5],
    }
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(8)
    assert dataset.element_spec["texts"].shape[0] is None

    def build(strategy):
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = make_lit_model(vocabulary)
            model.set_weights(initial_weights)
            model.compile()
        return model

    model = build(get_strategy("mirrored", devices=cpus(4)))
    logs = model.evaluate(dataset, verbose=0, return_dict=True)
    images = data["image_embeddings"]
    images = images / np.linalg.norm(images, axis=1, keepdims=True)
    texts = model.encode_texts(data["texts"])
    temperature = float(model.temperature)
    first = numpy_global_loss(images[:8], texts[:8], temperature)[0]
    second = numpy_global_loss(images[8:], texts[8:], temperature)[0]
    expected = np.concatenate([first, second]).mean()
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)

    model.fit(dataset, verbose=0)
    reference = build(None)
    reference.fit(dataset, verbose=0)
    assert_weights_close(*trainable_weights(model, reference))


def test_xla_single_replica_runs_the_distributed_path(
    vocabulary, initial_weights, training_data, single_device_run, monkeypatch
):
    """`jit_compile=True` on one replica, through all_gather/all_reduce.

    XLA fails on multi-replica CPU setups (no CollectiveGatherV2 kernel),
    so this is the static-shape (TPU-style) compile check: a strategy with
    one replica, a `shard_dataset` pipeline with static shapes.
    """
    from keras_lit.models import global_batch

    contexts = []

    def spy():
        context = distribute.replica_context()
        contexts.append(context)
        return context

    monkeypatch.setattr(global_batch, "replica_context", spy)
    strategy = get_strategy("mirrored", devices=cpus(1))
    with strategy.scope():
        model = make_lit_model(vocabulary)
        model.set_weights(initial_weights)
        model.compile(jit_compile=True)
    dataset = shard_dataset(
        tf.data.Dataset.from_tensor_slices(training_data),
        GLOBAL_BATCH_SIZE,
        strategy,
    )
    assert dataset.element_spec["images"].shape[0] == GLOBAL_BATCH_SIZE
    steps = StepLosses()
    model.fit(dataset, verbose=0, callbacks=[steps])
    assert model.jit_compile is True
    assert any(
        context is not None and context.num_replicas_in_sync == 1
        for context in contexts
    )
    expected_model, expected_losses, _ = single_device_run
    np.testing.assert_allclose(steps.losses, expected_losses, rtol=1e-5)
    for a, b in zip(model.trainable_weights, expected_model.trainable_weights):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), rtol=1e-4, atol=2e-5
        )


# --- keras_lit.distribute -------------------------------------------------


def test_get_strategy_names(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    default = tf.distribute.get_strategy()
    assert get_strategy("default") is default
    # No TF_CONFIG, no TPU and no GPUs here: "auto" is the default.
    assert get_strategy("auto") is default
    assert get_strategy("mirrored", devices=cpus(2)).num_replicas_in_sync == 2
    with pytest.raises(ValueError, match="`name` must be one of"):
        get_strategy("horovod")
    with pytest.raises(ValueError, match="distinct device names"):
        get_strategy("mirrored", devices=["/cpu:0", "/cpu:0"])
    with pytest.raises(ValueError, match="`communication` must be one of"):
        get_strategy("multi_worker", communication="mpi")


def test_mirrored_strategies_of_different_sizes_coexist():
    """Each MirroredStrategy starts its collective keys at 1 in TF 2.21.

    Two of them with different device sets in one process then clash
    ("joining a group with size4, but that group has size 2"); the ones
    `get_strategy` makes do not.
    """
    for count in (2, 4, 2):
        strategy = get_strategy("mirrored", devices=cpus(count))

        @tf.function
        def gather():
            def replica_fn():
                context = tf.distribute.get_replica_context()
                return context.all_gather(
                    tf.reshape(context.replica_id_in_sync_group, [1]), axis=0
                )

            return strategy.experimental_local_results(
                strategy.run(replica_fn)
            )[0]

        np.testing.assert_array_equal(gather(), np.arange(count))


def test_get_strategy_tpu_without_a_tpu_fails_clearly():
    with pytest.raises(RuntimeError, match="No usable TPU for tpu='local'"):
        get_strategy("tpu", tpu="local")


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment"):
        get_strategy("multi_worker")


def test_multi_worker_must_come_first(monkeypatch):
    """After TF has started, the strategy cannot configure collectives."""
    tf.constant(1.0) + 1.0  # TensorFlow is running in this process.
    tf_config = {
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 0},
    }
    monkeypatch.setenv("TF_CONFIG", "")  # restored after the test
    with pytest.raises(RuntimeError, match="at the start of the program"):
        get_strategy("multi_worker", tf_config=tf_config)
    # `tf_config=` is checked, then exported for TensorFlow to read.
    assert json.loads(os.environ["TF_CONFIG"]) == tf_config
    with pytest.raises(ValueError, match="task index must be in"):
        get_strategy(
            "multi_worker",
            tf_config={
                "cluster": tf_config["cluster"],
                "task": {"type": "worker", "index": 5},
            },
        )


GOOD = {
    "cluster": {"worker": ["host1:2222", "host2:2222"]},
    "task": {"type": "worker", "index": 1},
}


def test_parse_tf_config_accepts_a_cluster(monkeypatch):
    assert parse_tf_config(json.dumps(GOOD)) == GOOD
    assert parse_tf_config(GOOD) == GOOD
    monkeypatch.setenv("TF_CONFIG", json.dumps(GOOD))
    assert parse_tf_config() == GOOD
    chief = {
        "cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
        "task": {"type": "chief", "index": 0},
    }
    assert parse_tf_config(chief) == chief


MALFORMED_TF_CONFIGS = [
    ("{not json", "must be valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"task": GOOD["task"]}, "non-empty 'cluster'"),
    ({"cluster": {}, "task": GOOD["task"]}, "non-empty 'cluster'"),
    (
        {"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {}},
        "ParameterServerStrategy",
    ),
    ({"cluster": {"workers": ["a:1"]}, "task": {}}, "jobs must be among"),
    ({"cluster": {"worker": "a:1"}, "task": {}}, "non-empty list"),
    ({"cluster": {"worker": ["a"]}, "task": {}}, "'host:port' strings"),
    ({"cluster": {"worker": ["a:99999"]}, "task": {}}, "'host:port'"),
    ({"cluster": {"worker": [":80"]}, "task": {}}, "'host:port'"),
    ({"cluster": {"worker": ["a:1", "a:1"]}, "task": {}}, "twice"),
    (
        {"cluster": {"chief": ["a:1", "b:1"]}, "task": {}},
        "at most one 'chief'",
    ),
    ({"cluster": GOOD["cluster"]}, "must have a 'task'"),
    (
        {"cluster": GOOD["cluster"], "task": {"type": "chief"}},
        "task type must be one of",
    ),
    (
        {"cluster": GOOD["cluster"], "task": {"type": "worker"}},
        "index must be an integer",
    ),
    (
        {
            "cluster": GOOD["cluster"],
            "task": {"type": "worker", "index": 2},
        },
        r"must be in \[0, 2\)",
    ),
]


def test_parse_tf_config_rejects_malformed(monkeypatch):
    for tf_config, message in MALFORMED_TF_CONFIGS:
        with pytest.raises(ValueError, match=message):
            parse_tf_config(tf_config)
        # The same through the environment and get_strategy.
        if not isinstance(tf_config, str):
            tf_config = json.dumps(tf_config)
        monkeypatch.setenv("TF_CONFIG", tf_config)
        with pytest.raises(ValueError, match=message):
            get_strategy("multi_worker")


def test_per_replica_batch_size():
    four = get_strategy("mirrored", devices=cpus(4))
    assert per_replica_batch_size(4096, four) == 1024
    assert per_replica_batch_size(30, get_strategy("default")) == 30
    with pytest.raises(ValueError, match=r"use 28 or 32\. Received: "):
        per_replica_batch_size(30, four)
    with pytest.raises(ValueError, match="use 4 or 4"):
        per_replica_batch_size(2, four)
    for bad in (0, -8, 8.0, "8", True):
        with pytest.raises(ValueError, match="positive integer"):
            per_replica_batch_size(bad, four)


def test_shard_dataset_policies_and_static_batches(tmp_path):
    strategy = get_strategy("mirrored", devices=cpus(2))
    examples = {"image_embeddings": np.ones((10, 4), "float32")}
    examples["texts"] = [f"caption {i}" for i in range(10)]
    dataset = tf.data.Dataset.from_tensor_slices(examples)

    batched = shard_dataset(dataset, 4, strategy)
    assert [len(b["texts"]) for b in batched] == [4, 4]  # remainder dropped
    assert batched.element_spec["texts"].shape[0] == 4  # static
    policy = batched.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA

    # TFRecord shards: by FILE when every host has at least one.
    files = []
    for shard in range(2):
        path = str(tmp_path / f"shard-{shard}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(4):
                writer.write(f"caption {shard}-{i}".encode())
        files.append(path)
    records = tf.data.TFRecordDataset(files).map(lambda t: {"texts": t})
    batched = shard_dataset(records, 2, strategy, files=files)
    policy = batched.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.FILE
    assert distribute.auto_shard_policy([], strategy) == (
        tf.data.experimental.AutoShardPolicy.DATA
    )

    # The same shuffle on every host (DATA sharding needs it).
    orders = [
        [
            t.decode()
            for b in shard_dataset(dataset, 2, strategy, shuffle_seed=4)
            for t in b["texts"].numpy()
        ]
        for _ in range(2)
    ]
    assert orders[0] == orders[1] != sorted(orders[0])

    with pytest.raises(ValueError, match="divisible by the number of replicas"):
        shard_dataset(dataset, 3, strategy)
    with pytest.raises(ValueError, match="unbatched tf.data.Dataset"):
        shard_dataset(examples, 4, strategy)


def test_worker_backup_dir_without_a_cluster():
    assert distribute.worker_backup_dir("/backups/run") == "/backups/run"
    assert not distribute.is_multi_worker(get_strategy("mirrored", cpus(2)))
    assert distribute.num_workers(get_strategy("mirrored", cpus(2))) == 1
