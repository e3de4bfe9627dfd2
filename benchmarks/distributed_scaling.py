"""Global-batch LiT training under MirroredStrategy: step time and memory.

Each replica scores its `b = G / R` local rows against all `G` rows of the
global batch, so its loss needs `b x G` logits, never `G x G`. This script
trains with `LiTModel.fit` under `MirroredStrategy` over R logical CPU
devices and, for each global batch G and replica count R, reports:

- the median step time (after a warm-up epoch that traces the step);
- the peak of TensorFlow's CPU allocator during the timed steps. Logical
  CPU devices share one allocator, so this covers all R replicas at once;
  "per replica" divides it by R;
- the largest tensor any one replica holds, read from the traced training
  step (every op output of the step graph, forward and backward): it is
  the `[b, G]` logit matrix, against `[G, G]` for one device.

Memory per replica then grows as `b x G` = G^2 / R: at a fixed global
batch, 4 replicas hold a quarter of the logits of one device each, and at
a fixed local batch (G = R x b, adding replicas as the batch grows) it grows
linearly in G, not as G^2.

Inputs are precomputed image embeddings and a tiny text tower, so the loss
dominates what is measured. Compute is shared: R logical devices on a
2-core machine run one after the other, so step time shows cost, not
speed-up.

Typical usage (on a quiet machine, ~5 minutes on 2 cores):

    python benchmarks/distributed_scaling.py
    python benchmarks/distributed_scaling.py --smoke   # tiny, checks it runs

Prints one JSON line per configuration, then a Markdown table for
`benchmarks/RESULTS.md`.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

EMBEDDING_DIM = 64


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--global-batches",
        type=int,
        nargs="+",
        default=[256, 512, 1024, 2048, 4096],
    )
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny settings (global batches 16 32, 1-2 replicas, 2 steps)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.global_batches, args.replicas, args.steps = [16, 32], [1, 2], 2
    return args


def main():
    args = parse_args()
    # Logical devices must be set up before TensorFlow initialises.
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * max(args.replicas)
    )
    rows = []
    for replicas in args.replicas:
        for global_batch in args.global_batches:
            if global_batch % replicas:
                continue
            row = measure(global_batch, replicas, args.steps)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print()
    print(markdown(rows))


def build_model(vocabulary):
    import keras_cv

    from keras_lit.layers import LockedImageEncoder
    from keras_lit.layers import TextEncoder
    from keras_lit.models import LiTModel

    # Never run (the inputs are precomputed embeddings), but part of the
    # model: 64-d pooled features (bottleneck blocks widen 16 to 64).
    backbone = keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[8, EMBEDDING_DIM // 4],
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
        hidden_dim=32,
        intermediate_dim=64,
    )
    return LiTModel(image_encoder, text_encoder)


def measure(global_batch, replicas, steps):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_lit.distribute import get_strategy
    from keras_lit.distribute import shard_dataset
    from keras_lit.layers import build_word_piece_vocabulary

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    words = ["red", "blue", "green", "small", "large", "circle", "square"]
    rng = np.random.default_rng(0)
    size = (steps + 1) * global_batch
    texts = [" ".join(rng.choice(words, 4)) for _ in range(size)]
    embeddings = rng.normal(size=(size, EMBEDDING_DIM)).astype("float32")
    vocabulary = build_word_piece_vocabulary(texts[:256], vocabulary_size=64)

    strategy = get_strategy(
        "mirrored", devices=[f"/cpu:{i}" for i in range(replicas)]
    )
    with strategy.scope():
        model = build_model(vocabulary)
        model.compile()
    examples = {"image_embeddings": embeddings, "texts": texts}
    dataset = shard_dataset(
        tf.data.Dataset.from_tensor_slices(examples), global_batch, strategy
    )
    warm_up = dataset.take(1)
    timed = dataset.skip(1)
    model.fit(warm_up, verbose=0)  # traces the step

    timer = StepTimer()
    tf.config.experimental.reset_memory_stats("CPU:0")
    model.fit(timed, verbose=0, callbacks=[timer])
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    largest, square = largest_replica_tensor(
        model, strategy, warm_up, global_batch
    )
    local_batch = global_batch // replicas
    return {
        "global_batch": global_batch,
        "replicas": replicas,
        "local_batch": local_batch,
        "step_ms": 1000 * statistics.median(timer.times),
        "pairs_per_s": global_batch / statistics.median(timer.times),
        "peak_mib_all_replicas": peak / 2**20,
        "peak_mib_per_replica": peak / replicas / 2**20,
        "largest_tensor_per_replica": largest,
        "has_g_by_g_tensor": square,
        "logits_mib_per_replica": local_batch * global_batch * 4 / 2**20,
        "logits_mib_one_device": global_batch**2 * 4 / 2**20,
    }


class StepTimer:
    def __new__(cls):
        import keras

        class _StepTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_train_batch_begin(self, batch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                float(logs["loss"])  # waits for the step
                self.times.append(time.perf_counter() - self.start)

        return _StepTimer()


def largest_replica_tensor(model, strategy, dataset, global_batch):
    """The largest float tensor of one replica's training step.

    Returns its shape, and whether the step holds a `[G, G]` matrix, as one
    device computing the whole loss does.
    """
    import numpy as np
    import tensorflow as tf

    batch = next(iter(dataset.map(model.preprocessor)))
    distributed = strategy.experimental_distribute_values_from_function(
        lambda context: tf.nest.map_structure(
            lambda t: tf.split(t, strategy.num_replicas_in_sync)[
                context.replica_id_in_sync_group
            ],
            batch,
        )
    )

    @tf.function
    def step(data):
        return strategy.run(model.train_step, args=(data,))

    # Tracing only: nothing runs, no weight changes.
    graph = step.get_concrete_function(distributed).graph
    largest, shape, square = 0, None, False
    for operation in graph.get_operations():
        if operation.name.startswith("replica_"):
            continue  # replica 0's ops have no prefix; the others mirror it
        for output in operation.outputs:
            if not output.dtype.is_floating:
                continue
            dims = output.shape
            if dims.rank is None or not dims.is_fully_defined():
                continue
            elements = int(np.prod(dims.as_list() or [1]))
            square = square or dims.as_list() == [global_batch] * 2
            if elements > largest:
                largest, shape = elements, dims.as_list()
    return shape, square


def markdown(rows):
    lines = [
        "| global batch G | replicas R | local b | step ms | pairs/s "
        "| peak MiB (all R) | peak MiB / replica | largest tensor / replica "
        "| any G x G tensor | b x G logits MiB | G x G logits MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['global_batch']} | {row['replicas']} "
            f"| {row['local_batch']} | {row['step_ms']:.0f} "
            f"| {row['pairs_per_s']:.0f} "
            f"| {row['peak_mib_all_replicas']:.1f} "
            f"| {row['peak_mib_per_replica']:.1f} "
            f"| {row['largest_tensor_per_replica']} "
            f"| {'yes' if row['has_g_by_g_tensor'] else 'no'} "
            f"| {row['logits_mib_per_replica']:.1f} "
            f"| {row['logits_mib_one_device']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
