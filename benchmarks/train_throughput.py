"""Training pairs/s: keras_lit vs OpenCLIP in LiT mode, side by side.

Runs alternating rounds, each in a fresh process: OpenCLIP's LiT mode (the
peer harness in ../shared/peers, in the venv made by setup_peer_venv.sh) and
keras_lit with the same tower shapes (image 64 px, ViT 6 x 192, patch 16;
text 4 x 128, 16 tokens, vocabulary 8192), fp32, AdamW (lr 5e-4, betas
0.9/0.98, eps 1e-6, wd 0.2), one reused random batch, `model.fit`. It also
measures TensorFlow's float32 4096^2 matmul rate in the same run, the
practical ceiling on this CPU.

Typical usage:

    bash benchmarks/setup_peer_venv.sh       # once, needs PyPI
    python benchmarks/train_throughput.py --rounds 3 --steps 30
    python benchmarks/train_throughput.py --no-peer   # keras_lit only
    python benchmarks/train_throughput.py --jit-compile false   # no XLA rows

keras_lit modes: `locked` (the image tower runs forward, no backward),
`precomputed` (image embeddings are inputs: the tower never runs; OpenCLIP
has no such mode) and `unlocked` (CLIP-style, both towers train), each
compiled without and with XLA (`keras_lit` and `keras_lit+xla` rows; Keras
leaves XLA off on CPU unless asked).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_SCRIPT = os.environ.get(
    "PEER_SCRIPT",
    os.path.join(HERE, "..", "..", "shared", "peers", "openclip_lit_bench.py"),
)
PEER_PYTHON = os.environ.get(
    "PEER_PYTHON", os.path.join(HERE, ".peer_venv", "bin", "python")
)

IMAGE_SIZE, PATCH, VISION_WIDTH, VISION_LAYERS, VISION_HEADS = 64, 16, 192, 6, 3
TEXT_WIDTH, TEXT_LAYERS, TEXT_HEADS, TOKENS, VOCAB = 128, 4, 4, 16, 8192


def analytic_flops(batch, mode):
    """FLOPs of one keras_lit step, counted as the peer README counts them.

    Matmul, conv and attention work only; a multiply-add is 2 FLOPs.
    keras_lit has no image head (the paper's best setting), so the text
    tower projects to the image width (192) instead of to 128.
    """
    n = (IMAGE_SIZE // PATCH) ** 2 + 1
    d, mlp = VISION_WIDTH, 4 * VISION_WIDTH
    patch = (n - 1) * 2 * (PATCH * PATCH * 3) * d
    block = (
        2 * n * d * 3 * d
        + 2 * n * d * d
        + 2 * (2 * n * d * mlp)
        + 2 * (2 * n * n * d)
    )
    image_forward = patch + VISION_LAYERS * block
    t, w, tm = TOKENS, TEXT_WIDTH, 4 * TEXT_WIDTH
    text_block = (
        2 * t * w * 3 * w
        + 2 * t * w * w
        + 2 * (2 * t * w * tm)
        + 2 * (2 * t * t * w)
    )
    text_forward = TEXT_LAYERS * text_block + 2 * w * VISION_WIDTH
    embed = VISION_WIDTH
    similarity = 2 * batch * batch * embed
    if mode == "locked":
        # Two [B, B] logit matmuls forward, one gradient matmul each back.
        return batch * (image_forward + 3 * text_forward) + 4 * similarity
    if mode == "precomputed":
        return batch * 3 * text_forward + 4 * similarity
    image_backward = 2 * image_forward - patch
    return (
        batch * (image_forward + image_backward + 3 * text_forward)
        + 6 * similarity
    )


def keras_lit_worker(mode, batch, steps, warmup, jit_compile=False):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    from keras_lit import LiTModel
    from keras_lit import LockedImageEncoder
    from keras_lit import TextEncoder
    from keras_lit import TransformerTextBackbone

    keras.utils.set_random_seed(0)
    vision = keras_hub.models.ViTBackbone(
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        patch_size=PATCH,
        num_layers=VISION_LAYERS,
        num_heads=VISION_HEADS,
        hidden_dim=VISION_WIDTH,
        mlp_dim=4 * VISION_WIDTH,
    )
    image_encoder = LockedImageEncoder(
        vision, pooling="cls", value_range=(0, 1), locked=mode != "unlocked"
    )
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [
        f"w{i}" for i in range(VOCAB - 4)
    ]
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary)
    text_backbone = TransformerTextBackbone(
        vocabulary_size=VOCAB,
        num_layers=TEXT_LAYERS,
        num_heads=TEXT_HEADS,
        hidden_dim=TEXT_WIDTH,
        intermediate_dim=4 * TEXT_WIDTH,
        max_sequence_length=TOKENS,
    )
    text_encoder = TextEncoder(
        text_backbone, tokenizer, projection_dim=VISION_WIDTH
    )
    model = LiTModel(image_encoder, text_encoder)
    optimizer = keras.optimizers.AdamW(
        learning_rate=5e-4,
        beta_1=0.9,
        beta_2=0.98,
        epsilon=1e-6,
        weight_decay=0.2,
    )
    optimizer.exclude_from_weight_decay(
        var_names=["bias", "gamma", "beta", "log_temperature"]
    )
    model.compile(optimizer=optimizer, jit_compile=jit_compile)

    rng = np.random.default_rng(0)
    batch_data = {
        "token_ids": rng.integers(0, VOCAB, (batch, TOKENS)).astype("int32"),
        "padding_mask": np.ones((batch, TOKENS), "int32"),
    }
    if mode == "precomputed":
        batch_data["image_embeddings"] = rng.normal(
            size=(batch, VISION_WIDTH)
        ).astype("float32")
    else:
        batch_data["images"] = rng.normal(
            size=(batch, IMAGE_SIZE, IMAGE_SIZE, 3)
        ).astype("float32")
    # One batch, made once and reused, as the peer does; already
    # preprocessed, so the timed step is the training step alone.
    dataset = tf.data.Dataset.from_tensors(batch_data).repeat()

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch_index, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch_index, logs=None):
            # Reading the loss forces the step to finish.
            float(logs["loss"])
            self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    keras.Model.fit(
        model,
        dataset,
        steps_per_epoch=warmup + steps,
        epochs=1,
        verbose=0,
        callbacks=[timer],
    )
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    timed = timer.times[warmup:]
    median = statistics.median(timed)
    flops = analytic_flops(batch, mode)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    total = sum(int(np.prod(v.shape)) for v in model.weights)
    return {
        "impl": "keras_lit+xla" if jit_compile else "keras_lit",
        "mode": mode,
        "batch_size": batch,
        "steps": steps,
        "pairs_per_sec": batch / median,
        "step_ms_median": 1000 * median,
        "step_ms_min": 1000 * min(timed),
        "step_ms_max": 1000 * max(timed),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024,
        "cpu_util_cores": cpu / wall,
        "flops_per_step_analytic": flops,
        "achieved_gflops_analytic": flops / median / 1e9,
        "trainable_params": trainable,
        "total_params": total,
    }


def tf_matmul_peak(n=4096, repeats=7):
    """Median float32 n x n matmul GFLOP/s in TensorFlow (a subprocess)."""
    code = (
        "import os, time, statistics;"
        "os.environ['TF_CPP_MIN_LOG_LEVEL']='3';"
        "import tensorflow as tf;"
        f"a=tf.random.normal(({n},{n}));b=tf.random.normal(({n},{n}));"
        "f=tf.function(lambda: tf.reduce_sum(tf.matmul(a,b)));f();"
        "ts=[];\n"
        f"for _ in range({repeats}):\n"
        "  t=time.perf_counter();f().numpy();ts.append(time.perf_counter()-t)\n"
        f"print(2*{n}**3/statistics.median(ts)/1e9)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def run_subprocess(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0,):
        sys.stderr.write(result.stderr[-2000:])
        raise RuntimeError(f"benchmark run failed: {' '.join(command)}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["locked", "precomputed", "unlocked"],
        choices=["locked", "precomputed", "unlocked"],
    )
    parser.add_argument(
        "--jit-compile",
        nargs="+",
        default=["false", "true"],
        choices=["false", "true"],
        help="XLA settings for the keras_lit rows (both by default)",
    )
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--output", default=None, help="write JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="locked", help=argparse.SUPPRESS)
    parser.add_argument("-b", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--jit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(
            json.dumps(
                keras_lit_worker(
                    args.mode, args.b, args.steps, args.warmup, args.jit
                )
            )
        )
        return 0

    peer = not args.no_peer and os.path.exists(PEER_PYTHON)
    if not args.no_peer and not peer:
        print(
            f"peer venv not found at {PEER_PYTHON}: run "
            "benchmarks/setup_peer_venv.sh, or pass --no-peer"
        )
        return 2
    runs = []
    peak = []
    for round_index in range(args.rounds):
        peak.append(tf_matmul_peak())
        for batch in args.batch_sizes:
            for mode in args.modes:
                if peer and mode != "precomputed":
                    command = [
                        PEER_PYTHON,
                        PEER_SCRIPT,
                        "-b",
                        str(batch),
                        "-n",
                        str(args.steps),
                        "--warmup",
                        str(args.warmup),
                        "--no-flop-count",
                    ]
                    if mode == "unlocked":
                        command.append("--unlocked")
                    result = run_subprocess(command)
                    result.update(
                        impl="openclip",
                        mode=mode,
                        batch_size=batch,
                        round=round_index,
                    )
                    runs.append(result)
                for jit in args.jit_compile:
                    command = [
                        sys.executable,
                        __file__,
                        "--worker",
                        "--mode",
                        mode,
                        "-b",
                        str(batch),
                        "--steps",
                        str(args.steps),
                        "--warmup",
                        str(args.warmup),
                    ]
                    result = run_subprocess(
                        command + (["--jit"] if jit == "true" else [])
                    )
                    result["round"] = round_index
                    runs.append(result)
                    last = runs[-1]
                    print(
                        f"round {round_index} {last['impl']:13s} {mode:11s} "
                        f"B={batch:4d} {last['pairs_per_sec']:8.1f} pairs/s "
                        f"cpu={last['cpu_util_cores']:.2f}",
                        flush=True,
                    )

    peak_median = statistics.median(peak)
    print(
        f"\nTF float32 4096^2 matmul: {peak_median:.0f} GFLOP/s "
        f"(rounds: {', '.join(f'{p:.0f}' for p in peak)})"
    )
    print(
        "\n| impl | mode | B | pairs/s median [range] | vs OpenCLIP locked "
        "| achieved GFLOP/s | % of TF matmul peak | peak RSS MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    summary = []
    for batch in args.batch_sizes:
        peer_locked = [
            r["pairs_per_sec"]
            for r in runs
            if r["impl"] == "openclip"
            and r["mode"] == "locked"
            and r["batch_size"] == batch
        ]
        reference = statistics.median(peer_locked) if peer_locked else None
        for impl in ("openclip", "keras_lit", "keras_lit+xla"):
            for mode in args.modes:
                rows = [
                    r
                    for r in runs
                    if r["impl"] == impl
                    and r["mode"] == mode
                    and r["batch_size"] == batch
                ]
                if not rows:
                    continue
                rates = [r["pairs_per_sec"] for r in rows]
                median = statistics.median(rates)
                gflops = statistics.median(
                    r.get("achieved_gflops_analytic", float("nan"))
                    for r in rows
                )
                ratio = f"{median / reference:.2f}x" if reference else "-"
                rss = max(r["peak_rss_mib"] for r in rows)
                print(
                    f"| {impl} | {mode} | {batch} | {median:.0f} "
                    f"[{min(rates):.0f}-{max(rates):.0f}] | {ratio} | "
                    f"{gflops:.0f} | {100 * gflops / peak_median:.0f}% | "
                    f"{rss:.0f} |"
                )
                summary.append(
                    dict(
                        impl=impl,
                        mode=mode,
                        batch_size=batch,
                        pairs_per_sec=median,
                        ratio=ratio,
                        gflops=gflops,
                    )
                )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(
                {"runs": runs, "tf_matmul_gflops": peak, "summary": summary},
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
