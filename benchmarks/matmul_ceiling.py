"""What a step's matmuls alone cost: the speed no implementation can beat.

Issue 19 sets two speed goals in units that hide the shapes involved:
pairs/s against OpenCLIP (B = 256 and 64, the `train_throughput.py`
towers) and the FLOP-count ideal of training from precomputed embeddings
(the demo's towers, batch 128, `precompute_speedup.py`). Both towers are
narrow (widths 64 to 192), so their matmuls are small and run far below
the machine's large-square matmul rate. This script lists every matmul of
one training step (forward, and for the trained text tower both gradient
matmuls of each), times each shape on its own with every float32 backend
on the machine (TensorFlow with and without XLA, numpy, and torch from the
peer venv), and adds the fastest time of each shape up. That sum is the
step's time if every other op (normalisation, softmax, GELU, the loss,
the optimizer, data movement) were free and every matmul ran at the best
speed any of these libraries reaches for its shape: an upper bound on
pairs/s. In the same run it measures the real steps (OpenCLIP and
keras_lit for `vit_locked`, keras_lit on the fly and precomputed for
`demo_precomputed`) and prints the goals beside the bound.

The matmul list counts the QKV projection as one `[width, 3 * width]`
matmul (keras_lit's text block; KerasHub's ViT runs three) and one logit
matmul forward and one back (the image side is locked): the smallest
decomposition, so the bound is generous.

Typical usage (a quiet machine, ~6 minutes on 2 cores):

    python benchmarks/matmul_ceiling.py
    python benchmarks/matmul_ceiling.py --configs demo_precomputed --no-steps
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import train_throughput  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def dense(rows, k, n, train, count=1):
    """`[rows, k] @ [k, n]`, and with `train` its two gradient matmuls."""
    shapes = [((1, rows, k, n), count)]
    if train:
        shapes.append(((1, rows, n, k), count))  # d input
        shapes.append(((1, k, rows, n), count))  # d kernel
    return shapes


def attention(batch, heads, tokens, head_dim, train, count=1):
    """Scores `[t, d] @ [d, t]` and weighted sum `[t, t] @ [t, d]`."""
    b = batch * heads
    shapes = [((b, tokens, head_dim, tokens), count)]
    shapes.append(((b, tokens, tokens, head_dim), count))
    if train:
        # Each batched matmul's two gradients have the other's shapes.
        shapes.append(((b, tokens, tokens, head_dim), 2 * count))
        shapes.append(((b, tokens, head_dim, tokens), 2 * count))
    return shapes


def transformer(batch, tokens, width, mlp, layers, heads, train):
    rows = batch * tokens
    shapes = []
    shapes += dense(rows, width, 3 * width, train, layers)
    shapes += dense(rows, width, width, train, layers)
    shapes += dense(rows, width, mlp, train, layers)
    shapes += dense(rows, mlp, width, train, layers)
    shapes += attention(batch, heads, tokens, width // heads, train, layers)
    return shapes


def step_matmuls(config, batch):
    """`[((batch, m, k, n), count), ...]`: every matmul of one step."""
    if config == "vit_locked":
        t = train_throughput
        patches = (t.IMAGE_SIZE // t.PATCH) ** 2
        shapes = dense(batch * patches, t.PATCH**2 * 3, t.VISION_WIDTH, False)
        shapes += transformer(
            batch,
            patches + 1,
            t.VISION_WIDTH,
            4 * t.VISION_WIDTH,
            t.VISION_LAYERS,
            t.VISION_HEADS,
            train=False,
        )
        text = (t.TOKENS, t.TEXT_WIDTH, 4 * t.TEXT_WIDTH, t.TEXT_LAYERS)
        shapes += transformer(batch, *text, t.TEXT_HEADS, train=True)
        embed = t.VISION_WIDTH
    elif config == "demo_precomputed":
        text = (16, 64, 128, 2)  # the demo's text tower (demo/setups.py)
        shapes = transformer(batch, *text, heads=2, train=True)
        embed = 256  # the demo image tower's pooled width
    else:
        raise ValueError(f"Unknown config: {config!r}")
    width = text[1]
    shapes += dense(batch, width, embed, True)  # text projection
    shapes.append(((1, batch, embed, batch), 1))  # logits
    shapes.append(((1, batch, batch, embed), 1))  # d text embeddings
    return shapes


def flops(shape):
    b, m, k, n = shape
    return 2 * b * m * k * n


# --- Per-backend timings (each backend in its own process) ----------------

TIMER = r"""
import json, sys, time, os
backend, shapes = sys.argv[1], json.loads(sys.argv[2])
seconds = float(sys.argv[3])
REPS = 8  # independent products per timed call: no per-call overhead bound

def measure(run):
    run()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        run(); calls += 1
    return (time.perf_counter() - start) / calls / REPS

def operands(lib, b, m, k, n):
    shape_a = (REPS, m, k) if b == 1 else (REPS, b, m, k)
    shape_b = (k, n) if b == 1 else (b, k, n)
    return lib(shape_a), lib(shape_b)

out = {}
if backend.startswith("tf"):
    import tensorflow as tf
    jit = backend == "tf_xla"
    for b, m, k, n in shapes:
        a, w = operands(lambda s: tf.random.normal(s), b, m, k, n)
        @tf.function(jit_compile=jit)
        def products(a, w):
            return [tf.matmul(a[i], w) for i in range(REPS)]
        out[str((b, m, k, n))] = measure(lambda: products(a, w)[-1].numpy())
elif backend == "torch":
    import torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    for b, m, k, n in shapes:
        a, w = operands(lambda s: torch.randn(*s), b, m, k, n)
        def run():
            with torch.no_grad():
                for i in range(REPS):
                    torch.matmul(a[i], w)
        out[str((b, m, k, n))] = measure(run)
else:
    import numpy as np
    rng = np.random.default_rng(0)
    for b, m, k, n in shapes:
        a, w = operands(
            lambda s: rng.standard_normal(s, dtype=np.float32), b, m, k, n
        )
        def run():
            for i in range(REPS):
                np.matmul(a[i], w)
        out[str((b, m, k, n))] = measure(run)
print(json.dumps(out))
"""


def time_shapes(backend, shapes, seconds):
    """Seconds per matmul of each shape: `{str(shape): seconds}`."""
    python = sys.executable
    env = dict(os.environ)
    if backend == "torch":
        python = train_throughput.PEER_PYTHON
        if not os.path.exists(python):
            return None
    if backend == "tf_onednn0":
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    elif backend.startswith("tf"):
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    command = [python, "-c", TIMER, backend.replace("_onednn0", "")]
    command += [json.dumps(shapes), str(seconds)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-1500:])
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


BACKENDS = ("tf", "tf_xla", "tf_onednn0", "numpy", "torch")


def ceiling(config, batch, seconds):
    """Per-backend and best-per-shape matmul seconds of one step."""
    matmuls = step_matmuls(config, batch)
    unique = sorted({shape for shape, _ in matmuls})
    timings = {}
    for backend in BACKENDS:
        measured = time_shapes(backend, [list(s) for s in unique], seconds)
        if measured is not None:
            timings[backend] = measured
    totals = {
        backend: sum(
            count * measured[str(tuple(shape))] for shape, count in matmuls
        )
        for backend, measured in timings.items()
    }
    best = {
        shape: min(t[str(tuple(shape))] for t in timings.values())
        for shape in unique
    }
    best_total = sum(count * best[shape] for shape, count in matmuls)
    total_flops = sum(count * flops(shape) for shape, count in matmuls)
    return {
        "config": config,
        "batch_size": batch,
        "matmuls_per_step": sum(count for _, count in matmuls),
        "matmul_gflop_per_step": total_flops / 1e9,
        "seconds_per_step_by_backend": totals,
        "seconds_per_step_best_per_shape": best_total,
        "best_gflops_per_shape": {
            str(shape): flops(shape) / best[shape] / 1e9 for shape in unique
        },
        "ceiling_pairs_per_s": batch / best_total,
        "seconds_per_matmul_by_backend": timings,
    }


# --- The real steps, in the same run --------------------------------------


def vit_steps(batch, steps):
    """OpenCLIP and keras_lit (plain `compile()`) pairs/s at `batch`."""
    t = train_throughput
    rates = {}
    if os.path.exists(t.PEER_PYTHON):
        command = t.peer_command("locked", batch, steps, warmup=3)
        rates["openclip"] = t.run_subprocess(command)["pairs_per_sec"]
    command = t.worker_command("locked", batch, steps, warmup=3)
    rates["keras_lit"] = t.run_subprocess(command)["pairs_per_sec"]
    return rates


def demo_steps(batch):
    """keras_lit on the fly and precomputed, demo towers (subprocess)."""
    code = (
        "import sys, json, argparse; sys.path.insert(0, %r)\n"
        "import keras_lit, precompute_speedup as ps\n"
        "args = argparse.Namespace(steps=10, warmup=2, rounds=3,\n"
        "    min_round_seconds=3.0, steps_per_execution=None)\n"
        "row = ps.measure_training(\n"
        "    'demo', ps.CONFIGS['demo'], %d, True, args)\n"
        "print(json.dumps(row))\n"
    ) % (HERE, batch)
    return train_throughput.run_subprocess([sys.executable, "-c", code])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["vit_locked", "demo_precomputed"],
        choices=["vit_locked", "demo_precomputed"],
    )
    parser.add_argument(
        "--vit-batch-sizes", type=int, nargs="+", default=[256, 64]
    )
    parser.add_argument("--demo-batch-size", type=int, default=128)
    parser.add_argument(
        "--seconds", type=float, default=0.3, help="timing per shape"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--no-steps", action="store_true", help="matmul bound only"
    )
    parser.add_argument("--output", default=None, help="write JSON here")
    args = parser.parse_args(argv)

    results = []
    for config in args.configs:
        batches = (
            args.vit_batch_sizes
            if config == "vit_locked"
            else [args.demo_batch_size]
        )
        for batch in batches:
            row = ceiling(config, batch, args.seconds)
            if not args.no_steps and config == "vit_locked":
                row["measured_pairs_per_s"] = vit_steps(batch, args.steps)
            elif not args.no_steps:
                row["measured"] = demo_steps(batch)
            results.append(row)
            report(row)
            sys.stdout.flush()
    if args.output:
        with open(args.output, "w") as file:
            json.dump(results, file, indent=1)
    return 0


def report(row):
    batch = row["batch_size"]
    print(
        f"\n## {row['config']}, B = {batch}: {row['matmuls_per_step']} "
        f"matmuls, {row['matmul_gflop_per_step']:.2f} GFLOP per step"
    )
    for backend, seconds in row["seconds_per_step_by_backend"].items():
        print(
            f"  matmuls alone, {backend:10s} {1000 * seconds:7.2f} ms/step = "
            f"{batch / seconds:7.0f} pairs/s "
            f"({row['matmul_gflop_per_step'] / seconds:.0f} GFLOP/s)"
        )
    best = row["seconds_per_step_best_per_shape"]
    print(
        f"  matmuls alone, best per shape {1000 * best:.2f} ms/step = "
        f"{row['ceiling_pairs_per_s']:.0f} pairs/s: the bound"
    )
    rates = sorted(row["best_gflops_per_shape"].items(), key=lambda x: x[1])
    print(
        "  best GFLOP/s per shape (batch, m, k, n), slowest first: "
        + "; ".join(f"{s} {g:.0f}" for s, g in rates[:6])
    )
    if "measured_pairs_per_s" in row:
        rates = row["measured_pairs_per_s"]
        for impl, rate in rates.items():
            print(f"  measured {impl}: {rate:.0f} pairs/s")
        if "openclip" in rates:
            goal = 1.8 * rates["openclip"]
            print(
                f"  goal 1.8x OpenCLIP = {goal:.0f} pairs/s; the bound is "
                f"{row['ceiling_pairs_per_s'] / rates['openclip']:.2f}x "
                f"OpenCLIP; keras_lit "
                f"{rates['keras_lit'] / rates['openclip']:.2f}x"
            )
    if "measured" in row:
        m = row["measured"]
        fly, pre = m["on_the_fly_pairs_per_s"], m["precomputed_pairs_per_s"]
        ideal = m["ideal_speedup"]
        bound = row["ceiling_pairs_per_s"] / fly / ideal
        print(
            f"  measured: on the fly {fly:.0f}, precomputed {pre:.0f} pairs/s"
            f" = {pre / fly:.2f}x of a FLOP ideal {ideal:.2f}x "
            f"({100 * pre / fly / ideal:.0f}%); goal 80% needs "
            f"{0.8 * ideal * fly:.0f} pairs/s precomputed; the matmul bound "
            f"alone allows {100 * bound:.0f}%"
        )


if __name__ == "__main__":
    sys.exit(main())
