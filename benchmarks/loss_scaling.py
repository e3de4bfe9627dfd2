"""Losses at scale: blockwise losses and gradient caching (issue 17).

Three measurements, each configuration in its own child process (peak
memory is the child's `VmHWM`, read from `/proc/self/status` inside it:
Linux keeps `ru_maxrss` across `exec`). A watchdog thread in the child
stops it when its resident memory passes `--budget-gb` x 1.25, so a run
that does not fit ends early instead of taking the machine down.

- `loss`: the loss alone, forward + backward, on one device, at global
  batch G: softmax and sigmoid, materialised (`[G, G]` logits) and
  blockwise (`--block` columns). Reports peak memory, the median time, and
  that time over the matmul FLOP time at the machine's measured float32
  matmul rate (3 matmuls of `2 G^2 D` FLOPs: logits, and the two
  gradients; the blockwise loss computes the logits twice, 4).
- `memory`: `LiTModel.fit` steps from precomputed image embeddings at
  doubling G, plain / blockwise / blockwise + gradient caching, with the
  demo text tower or BERT-base (random weights, built offline); the
  largest G whose peak stays within `--budget-gb`.
- `time`: the same training steps timed against G (median step time).
- `zero-shot`: the offline demo's Lu setup (same data, pretrained tower,
  batch, optimizer and steps) trained with the softmax and with the
  sigmoid loss; zero-shot top-1 per label set on the held-out images.

Memory figures can be measured on a busy machine; timings need a quiet
one. Typical usage:

    python benchmarks/loss_scaling.py loss --global-batches 1024 2048 4096
    python benchmarks/loss_scaling.py memory --tower demo --budget-gb 24
    python benchmarks/loss_scaling.py memory --tower bert_base --budget-gb 24
    python benchmarks/loss_scaling.py time --global-batches 1024 4096 16384
    python benchmarks/loss_scaling.py zero-shot
    python benchmarks/loss_scaling.py loss --smoke   # tiny, checks it runs

Prints one JSON line per configuration, then a Markdown table for
`benchmarks/RESULTS.md`.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

DEMO_IMAGE_DIM = 256  # the demo's pretrained ResNet pooled features
TOWERS = {
    # The demo text tower (keras_lit.demo.pipeline.demo_settings).
    "demo": dict(
        image_dim=DEMO_IMAGE_DIM,
        vocabulary_size=400,
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        intermediate_dim=128,
        sequence_length=16,
    ),
    # BERT-base (LiT's B16B), 16 tokens, against ViT-B/16's 768-d
    # embeddings.
    "bert_base": dict(
        image_dim=768,
        vocabulary_size=30522,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        intermediate_dim=3072,
        sequence_length=16,
    ),
}
MODES = {
    "plain": dict(loss_block_size=None, text_sub_batch=None),
    "blockwise": dict(loss_block_size=1024, text_sub_batch=None),
    "blockwise+cache": dict(loss_block_size=1024, text_sub_batch=512),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "part", choices=["loss", "memory", "time", "zero-shot", "_child"]
    )
    parser.add_argument("--global-batches", type=int, nargs="+")
    parser.add_argument("--losses", nargs="+", default=["softmax", "sigmoid"])
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--tower", choices=sorted(TOWERS), default="demo")
    parser.add_argument("--dim", type=int, default=DEMO_IMAGE_DIM)
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--sub-batch", type=int, default=512)
    parser.add_argument("--budget-gb", type=float, default=24.0)
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps (0: memory only)"
    )
    parser.add_argument(
        "--jit-compile",
        nargs="+",
        default=["false"],
        choices=["false", "true"],
        help="loss: XLA settings of the step (LiTModel's one-device step "
        "runs XLA by default)",
    )
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--cache-dir",
        default="lit_runs/demo/cache",
        help="zero-shot: the demo's pretrained-tower cache",
    )
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.global_batches is None:
        args.global_batches = {
            "loss": [1024, 2048, 4096, 8192],
            "memory": [1024, 2048, 4096, 8192, 16384, 32768],
            "time": [1024, 2048, 4096, 8192, 16384],
        }.get(args.part, [])
    if args.smoke:
        args.global_batches = [64, 128]
        args.block, args.sub_batch, args.steps = 32, 32, 1
    return args


# --- Child processes ------------------------------------------------------


def peak_rss_gb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def current_rss_gb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def start_watchdog(limit_gb):
    def watch():
        while True:
            if current_rss_gb() > limit_gb:
                print(json.dumps({"over_budget": True}), flush=True)
                os._exit(3)
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()


def run_child(config):
    """Runs one configuration in a fresh process; returns its JSON row."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "_child",
        "--config",
        json.dumps(config),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = [
        line for line in result.stdout.splitlines() if line.startswith("{")
    ]
    row = dict(config)
    if lines:
        row.update(json.loads(lines[-1]))
    if result.returncode == 3:
        row["fits"] = False
    elif result.returncode != 0:
        row["error"] = (result.stderr.strip().splitlines() or ["?"])[-1]
    return row


def child(config):
    start_watchdog(config["budget_gb"] * 1.25)
    if config["part"] == "loss":
        row = child_loss(config)
    elif config["part"] == "zero-shot":
        row = child_zero_shot(config)
    else:
        row = child_train(config)
    row["peak_rss_gb"] = round(peak_rss_gb(), 3)
    row.setdefault("fits", row["peak_rss_gb"] <= config["budget_gb"])
    print(json.dumps(row), flush=True)


def matmul_rate(tf, size=2048, dim=256, repeats=5):
    """Measured float32 matmul FLOP/s on `[size, dim] x [dim, size]`."""
    a = tf.random.normal([size, dim])
    b = tf.random.normal([size, dim])
    f = tf.function(
        lambda a, b: tf.reduce_sum(tf.matmul(a, b, transpose_b=True))
    )
    f(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * size * size * dim / min(times)


def child_loss(config):
    import numpy as np
    import tensorflow as tf

    from keras_lit.losses import blockwise_contrastive_loss
    from keras_lit.losses import contrastive_loss
    from keras_lit.losses import sigmoid_loss

    size, dim, block = config["global_batch"], config["dim"], config["block"]
    rng = np.random.default_rng(0)

    def unit(shape):
        x = rng.normal(size=shape).astype("float32")
        return tf.constant(x / np.linalg.norm(x, axis=-1, keepdims=True))

    x, y = unit((size, dim)), unit((size, dim))
    t, b = tf.constant(10.0), tf.constant(-10.0)
    blocked = config["mode"] == "blockwise"

    def loss(x, y, t, b):
        if config["loss"] == "sigmoid":
            return sigmoid_loss(
                x, y, t, b, block_size=block if blocked else None
            )
        if blocked:
            return blockwise_contrastive_loss(x, y, t, block_size=block)
        return contrastive_loss(x, y, t)

    @tf.function(jit_compile=config.get("jit_compile", False))
    def step(x, y, t, b):
        with tf.GradientTape() as tape:
            tape.watch([x, y, t, b])
            value = loss(x, y, t, b)
        grads = tape.gradient(value, [x, y, t])
        return value, [tf.reduce_sum(g) for g in grads]

    step(x, y, t, b)
    times = []
    for _ in range(config["steps"]):
        start = time.perf_counter()
        tf.nest.map_structure(lambda v: v.numpy(), step(x, y, t, b))
        times.append(time.perf_counter() - start)
    rate = matmul_rate(tf, size=min(size, 2048), dim=dim)
    matmuls = 4 if blocked else 3
    flop_time = matmuls * 2 * size * size * dim / rate
    median = float(np.median(times))
    return {
        "step_ms": round(1000 * median, 2),
        "matmul_gflops": round(rate / 1e9, 1),
        "time_over_flop_time": round(
            median / (3 * 2 * size**2 * dim / rate), 2
        ),
        "matmuls": matmuls,
        "flop_ms": round(1000 * flop_time, 2),
    }


def build_model(config):
    import keras
    import keras_cv

    from keras_lit.layers import LockedImageEncoder
    from keras_lit.layers import TextEncoder
    from keras_lit.layers import build_word_piece_vocabulary
    from keras_lit.models import LiTModel

    tower = dict(TOWERS[config["tower"]])
    image_dim = tower.pop("image_dim")
    vocabulary_size = tower.pop("vocabulary_size")
    # Never run (inputs are precomputed embeddings), but part of the model:
    # a tiny backbone whose pooled features have the image width.
    backbone = keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[8, image_dim // 4],
        stackwise_blocks=[2, 2],
        stackwise_strides=[1, 2],
        include_rescaling=True,
        input_shape=(32, 32, 3),
    )
    words = [f"w{i}" for i in range(vocabulary_size)]
    vocabulary = build_word_piece_vocabulary(
        [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)],
        vocabulary_size=min(vocabulary_size, 2000),
    )
    keras.utils.set_random_seed(0)
    text_encoder = TextEncoder.from_scratch(
        vocabulary, projection_dim=image_dim, **tower
    )
    model = LiTModel(
        LockedImageEncoder(backbone),
        text_encoder,
        loss=config["loss"],
        **MODES[config["mode"]] | config.get("mode_overrides", {}),
    )
    return model, len(vocabulary), tower["sequence_length"], image_dim


def child_train(config):
    import numpy as np
    import tensorflow as tf

    model, vocabulary_size, length, image_dim = build_model(config)
    model.compile()
    size = config["global_batch"]
    rng = np.random.default_rng(0)
    batch = {
        "image_embeddings": rng.normal(size=(size, image_dim)).astype(
            "float32"
        ),
        "token_ids": rng.integers(
            1, vocabulary_size, (size, length), dtype="int32"
        ),
        "padding_mask": np.ones((size, length), "int32"),
    }
    dataset = tf.data.Dataset.from_tensors(batch).repeat(config["steps"] + 1)
    times = []
    start = time.perf_counter()
    for step, element in enumerate(dataset):
        logs = model.train_on_batch(element, return_dict=True)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
    del logs, step
    if len(times) < 2:  # --steps 0: one (traced) step, memory only
        return {}
    return {"step_ms": round(1000 * float(np.median(times[1:])), 1)}


def child_zero_shot(config):
    """The demo's Lu setup with `config["loss"]`: zero-shot top-1."""
    import functools

    from keras_lit.demo import data as demo_data
    from keras_lit.demo import evaluation
    from keras_lit.demo import pipeline
    from keras_lit.demo import pretrain
    from keras_lit.demo import setups
    from keras_lit.layers import build_word_piece_vocabulary

    settings = pipeline.demo_settings(0, smoke=config["smoke"])
    data = demo_data.build_data(settings, verbose=False)
    backbone, _ = pretrain.pretrain_backbone(
        settings["pretrain"], config["cache_dir"], verbose=False
    )
    vocabulary = build_word_piece_vocabulary(
        data["lit_captions"], settings["vocabulary_size"]
    )
    # The demo builds LiTModel(...) itself: hand it the loss.
    setups.LiTModel = functools.partial(setups.LiTModel, loss=config["loss"])
    run = setups.train_setup(
        "Lu",
        backbone,
        vocabulary,
        data,
        settings,
        verbose=False,
        precompute_dir=os.path.join(config["cache_dir"], config["loss"]),
    )
    scores = evaluation.evaluate(run["model"], data, settings)
    return {
        "zero_shot_mean": round(scores["zero_shot_mean"], 4),
        "top1": {
            k: round(v["top1"], 4) for k, v in scores["zero_shot"].items()
        },
        "train_seconds": run["train_seconds"],
        "final_loss": round(run["history"]["loss"][-1], 4),
    }


# --- Parent ---------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    if args.part == "_child":
        child(json.loads(args.config))
        return
    if args.part == "zero-shot":
        rows = []
        for loss in args.losses:
            row = run_child(
                dict(
                    part="zero-shot",
                    loss=loss,
                    smoke=args.smoke,
                    budget_gb=args.budget_gb,
                    cache_dir=os.path.abspath(args.cache_dir),
                )
            )
            print(json.dumps(row), flush=True)
            rows.append(row)
        print()
        print("| loss | zero-shot top-1 (mean of label sets) | per label set |")
        print("| --- | ---: | --- |")
        for row in rows:
            print(
                f"| {row['loss']} | {row.get('zero_shot_mean', '-')} | "
                f"{row.get('top1', row.get('error', '-'))} |"
            )
        return
    rows = []
    for loss in args.losses:
        for mode in args.modes:
            if args.part == "loss" and mode == "blockwise+cache":
                continue
            jits = args.jit_compile if args.part == "loss" else ["false"]
            for jit, global_batch in itertools.product(
                jits, args.global_batches
            ):
                config = dict(
                    part=args.part,
                    loss=loss,
                    mode=mode,
                    global_batch=global_batch,
                    dim=args.dim,
                    block=args.block,
                    tower=args.tower,
                    steps=args.steps,
                    budget_gb=args.budget_gb,
                    jit_compile=jit == "true",
                )
                if args.part != "loss":
                    blocks = MODES[mode]
                    overrides = {}
                    if blocks["loss_block_size"]:
                        overrides["loss_block_size"] = args.block
                    if blocks["text_sub_batch"]:
                        overrides["text_sub_batch"] = args.sub_batch
                    config["mode_overrides"] = overrides
                row = run_child(config)
                print(json.dumps(row), flush=True)
                rows.append(row)
                if not row.get("fits", True) or "error" in row:
                    break  # larger batches will not fit either
    print()
    print(markdown(rows, args))


def markdown(rows, args):
    lines = [
        "| loss | mode | XLA | G | peak RSS (GB) | fits "
        f"{args.budget_gb:g} GB | step (ms) | time / FLOP time |",
        "| --- | --- | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for row in rows:
        xla = "on" if row.get("jit_compile") else "off"
        if args.part != "loss":
            xla = "auto"
        lines.append(
            f"| {row['loss']} | {row['mode']} | {xla} | "
            f"{row['global_batch']} | "
            f"{row.get('peak_rss_gb', '-')} | "
            f"{'yes' if row.get('fits') else 'no'} | "
            f"{row.get('step_ms', '-')} | "
            f"{row.get('time_over_flop_time', '-')} |"
        )
    if args.part != "loss":
        lines.append("")
        lines.append(f"Tower: {args.tower}; largest G within the budget:")
        for loss in args.losses:
            for mode in args.modes:
                fits = [
                    r["global_batch"]
                    for r in rows
                    if r["loss"] == loss and r["mode"] == mode and r.get("fits")
                ]
                lines.append(f"- {loss}, {mode}: {max(fits) if fits else '-'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
