"""Training pairs/s: keras_lit vs OpenCLIP in LiT mode, side by side.

Runs alternating rounds, each in a fresh process: OpenCLIP's LiT mode (the
peer harness in ../shared/peers, in the venv made by setup_peer_venv.sh) and
keras_lit with the same tower shapes (image 64 px, ViT 6 x 192, patch 16;
text 4 x 128, 16 tokens, vocabulary 8192), fp32, AdamW (lr 5e-4, betas
0.9/0.98, eps 1e-6, wd 0.2), one reused random batch, `model.fit`. It also
measures the machine's best float32 4096^2 matmul rate in the same run
(the maximum of numpy, torch and TensorFlow with oneDNN off and on, through
../shared/peers/matmul_peak.py), the practical ceiling on this CPU.

Typical usage:

    bash benchmarks/setup_peer_venv.sh       # once, needs PyPI
    python benchmarks/train_throughput.py --rounds 3 --steps 20 \
        --batch-sizes 256 64 --modes locked --jit-compile auto false \
        --onednn 0 1
    python benchmarks/train_throughput.py --no-peer   # keras_lit only

keras_lit modes: `locked` (the image tower runs forward, no backward),
`precomputed` (image embeddings are inputs: the tower never runs; OpenCLIP
has no such mode) and `unlocked` (CLIP-style, both towers train).
`--jit-compile`: `auto` is a plain `model.compile()` (keras_lit chooses
XLA; the row says what it chose), `false`/`true` force it. `--onednn`:
`TF_ENABLE_ONEDNN_OPTS` of each keras_lit process, `0`, `1` or `default`
(unset: TF's own rule, and keras_lit's where TF leaves oneDNN off). `0` shows
what TF's default gives on CPUs without AVX-512 VNNI/BF16, AVX-VNNI or AMX;
`1` is keras_lit's default on every x86-64 CPU with AVX2.
"""

import argparse
import importlib
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
MATMUL_SCRIPT = os.environ.get(
    "MATMUL_SCRIPT",
    os.path.join(HERE, "..", "..", "shared", "peers", "matmul_peak.py"),
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


def keras_lit_worker(mode, batch, steps, warmup, jit_compile="auto"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    # keras_lit first: its oneDNN choice must precede TensorFlow's start.
    importlib.import_module("keras_lit")
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

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
    jit_compile = {"auto": "auto", "true": True, "false": False}[jit_compile]
    if jit_compile == "auto":
        model.compile(optimizer=optimizer)  # keras_lit's own defaults
    else:
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
    impl = {"auto": "keras_lit", True: "keras_lit+xla", False: "keras_lit-xla"}
    return {
        "impl": impl[jit_compile],
        "xla": bool(model.jit_compile),
        "onednn_variable": onednn,
        "onednn_on": bool(_pywrap_util_port.IsMklEnabled()),
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


def matmul_peaks(peer, onednn_settings=("0", "1"), n=4096, repeats=7):
    """GFLOP/s of a float32 n x n matmul per backend, one process each.

    numpy and torch in the peer venv (numpy here without it), TensorFlow
    here with each `TF_ENABLE_ONEDNN_OPTS` setting. Returns a dict
    `{"numpy": ..., "torch": ..., "tf onednn=0": ..., ...}`.
    """
    jobs = [("numpy", PEER_PYTHON if peer else sys.executable, {})]
    if peer:
        jobs.append(("torch", PEER_PYTHON, {}))
    for value in onednn_settings:
        jobs.append((f"tf onednn={value}", sys.executable, _onednn_env(value)))
    rates = {}
    for name, python, env in jobs:
        backend = name.split()[0]
        command = [python, MATMUL_SCRIPT, "--inline", "--backend", backend]
        command += ["--sizes", str(n), "--repeats", str(repeats)]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=dict(env, OPENBLAS_NUM_THREADS=str(_cores())),
        )
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-1000:])
            continue
        line = json.loads(result.stdout.strip().splitlines()[-1])
        rates[name] = line["gflops_median"]
    return rates


def _cores():
    return len(os.sched_getaffinity(0))


def _onednn_env(value):
    env = dict(os.environ)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if value != "default":
        env["TF_ENABLE_ONEDNN_OPTS"] = value
    return env


def peer_command(mode, batch, steps, warmup):
    """OpenCLIP's LiT-mode benchmark (`locked` or `unlocked`), one process."""
    command = [PEER_PYTHON, PEER_SCRIPT, "-b", str(batch), "-n", str(steps)]
    command += ["--warmup", str(warmup), "--no-flop-count"]
    if mode == "unlocked":
        command.append("--unlocked")
    return command


def worker_command(mode, batch, steps, warmup, jit="auto"):
    """One keras_lit worker process of this script (`keras_lit_worker`)."""
    command = [sys.executable, __file__, "--worker", "--mode", mode]
    command += ["-b", str(batch), "--steps", str(steps)]
    return command + ["--warmup", str(warmup), "--jit", jit]


def run_subprocess(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
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
        default=["auto", "false"],
        choices=["auto", "false", "true"],
        help="keras_lit rows: `auto` is a plain compile() (default: auto, "
        "false)",
    )
    parser.add_argument(
        "--onednn",
        nargs="+",
        default=["0", "1"],
        choices=["0", "1", "default"],
        help="TF_ENABLE_ONEDNN_OPTS of the keras_lit rows (default: 0 1)",
    )
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--output", default=None, help="write JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="locked", help=argparse.SUPPRESS)
    parser.add_argument("-b", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--jit", default="auto", help=argparse.SUPPRESS)
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
        peak.append(matmul_peaks(peer, args.onednn))
        print(f"round {round_index} matmul GFLOP/s: {peak[-1]}", flush=True)
        for batch in args.batch_sizes:
            for mode in args.modes:
                if peer and mode != "precomputed":
                    command = peer_command(mode, batch, args.steps, args.warmup)
                    result = run_subprocess(command)
                    result.update(
                        impl="openclip",
                        mode=mode,
                        batch_size=batch,
                        round=round_index,
                    )
                    runs.append(result)
                for jit, onednn in [
                    (jit, onednn)
                    for jit in args.jit_compile
                    for onednn in args.onednn
                ]:
                    command = worker_command(
                        mode, batch, args.steps, args.warmup, jit
                    )
                    result = run_subprocess(command, env=_onednn_env(onednn))
                    result["round"] = round_index
                    runs.append(result)
                    last = runs[-1]
                    print(
                        f"round {round_index} {last['impl']:13s} "
                        f"onednn={onednn} xla={last['xla']} {mode:11s} "
                        f"B={batch:4d} {last['pairs_per_sec']:8.1f} pairs/s "
                        f"cpu={last['cpu_util_cores']:.2f}",
                        flush=True,
                    )

    backends = sorted({name for rates in peak for name in rates})
    backend_medians = {
        name: statistics.median(r[name] for r in peak if name in r)
        for name in backends
    }
    best = max(backend_medians.values())
    print(
        "\nfloat32 4096^2 matmul GFLOP/s, median of rounds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in backend_medians.items())
        + f"; machine's best {best:.0f}"
    )
    print(
        "\n| impl | TF_ENABLE_ONEDNN_OPTS | XLA | mode | B | pairs/s median "
        "[range] | vs OpenCLIP locked | achieved GFLOP/s | % of best matmul "
        f"({best:.0f}) | peak RSS MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
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
        groups = {}
        for r in runs:
            if r["batch_size"] == batch:
                key = (r["impl"], r.get("onednn_variable", "-"), r["mode"])
                groups.setdefault(key, []).append(r)
        for (impl, onednn, mode), rows in groups.items():
            rates = [r["pairs_per_sec"] for r in rows]
            median = statistics.median(rates)
            gflops = statistics.median(
                r.get("achieved_gflops_analytic", float("nan")) for r in rows
            )
            ratio = f"{median / reference:.2f}x" if reference else "-"
            rss = max(r["peak_rss_mib"] for r in rows)
            xla = {str(r.get("xla", "-")) for r in rows}
            print(
                f"| {impl} | {onednn} | {'/'.join(sorted(xla))} | {mode} | "
                f"{batch} | {median:.0f} [{min(rates):.0f}-{max(rates):.0f}] "
                f"| {ratio} | {gflops:.0f} | {100 * gflops / best:.0f}% | "
                f"{rss:.0f} |"
            )
            summary.append(
                dict(
                    impl=impl,
                    onednn=onednn,
                    xla=sorted(xla),
                    mode=mode,
                    batch_size=batch,
                    pairs_per_sec=median,
                    ratio=ratio,
                    gflops=gflops,
                    percent_of_best_matmul=100 * gflops / best,
                )
            )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(
                {
                    "runs": runs,
                    "matmul_gflops": peak,
                    "matmul_best_gflops": best,
                    "summary": summary,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
