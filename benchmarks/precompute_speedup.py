"""Training from precomputed image embeddings vs running the locked tower.

For each tower pair it measures, with `LiTModel.fit`:

1. `training`: pairs/s on the fly (`{"images", "texts"}`: the locked image
   tower runs forward every step) and from precomputed embeddings
   (`{"image_embeddings", "texts"}`: only the text tower runs), at each of
   the config's batch sizes, with XLA off and on (`--jit-compile`), compiled
   with the config's `steps_per_execution` (the demo's 15), and the
   measured speed-up beside the FLOP-count ideal
   `(image forward + text step) / text step`, where a text training step
   counts 3x its forward FLOPs (forward + backward) plus the logits. Each
   step gets one batch that was tokenised once, as the input pipeline
   delivers it (tokenising is part 3's business). The two modes alternate
   for `--rounds` rounds of at least `--steps` timed steps and
   `--min-round-seconds`; each figure is the median round.
2. `memory`: the largest batch that trains within a fixed memory budget,
   both ways (peak resident memory, `VmHWM`, of a fresh process running 2
   steps, or the GPU's peak memory; doubling, then bisection, up to
   `max_batch`).
3. `pipeline`: input pipeline throughput vs training throughput: JPEG
   TFRecord shards through `keras_lit.data.tfrecord_dataset` +
   `model.preprocessor`, and precomputed shards through `load_precomputed`
   + `model.preprocessor`, each against the fastest training step it feeds
   (when `training` ran too). It also reports what precompute itself costs
   (images/s through the tower, once).

Tower pairs (random weights, nothing downloaded):
- `demo`: the demo's towers: KerasCV ResNetV2 [16, 32, 64] x [2, 2, 2] at
  64 px (pooled 256-d) and a 2 x 64 transformer text tower, 16 tokens;
  batch 128 (the demo's) and 1024.
- `vit_b16_bert_base`: KerasHub `ViTBackbone` B/16 at 224 px (CLS pooling,
  768-d) and `BertBackbone` base (12 x 768, 30522 tokens), 16 tokens,
  batch 32.

Typical usage (on a quiet machine; all parts of both pairs take ~45
minutes on 2 CPU cores, most of it the ViT-B memory search):

    python benchmarks/precompute_speedup.py
    python benchmarks/precompute_speedup.py --parts training pipeline
    python benchmarks/precompute_speedup.py --smoke   # tiny, checks it runs

It prints one JSON line per measurement and Markdown summary tables for
`benchmarks/RESULTS.md`; `--output FILE` also writes all results as JSON.
"""

import argparse
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

CONFIGS = {
    "demo": {
        "image": {
            "kind": "resnet_v2",
            "image_size": 64,
            "stackwise_filters": [16, 32, 64],
            "stackwise_blocks": [2, 2, 2],
            "stackwise_strides": [1, 2, 2],
        },
        "text": {
            "kind": "scratch",
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 64,
            "intermediate_dim": 128,
            "vocabulary_size": 400,
        },
        "sequence_length": 16,
        "batch_size": 128,
        "batch_sizes": [128, 1024],
        # As the demo compiles its model: min(log_every, 16).
        "steps_per_execution": 15,
        "max_batch": 16384,
        "memory_budget_mb": 2048,
        "stored_image_size": 64,
        "pipeline_images": 2048,
    },
    "vit_b16_bert_base": {
        "image": {
            "kind": "vit",
            "image_size": 224,
            "patch_size": 16,
            "num_layers": 12,
            "num_heads": 12,
            "hidden_dim": 768,
            "mlp_dim": 3072,
        },
        "text": {
            "kind": "bert",
            "num_layers": 12,
            "num_heads": 12,
            "hidden_dim": 768,
            "intermediate_dim": 3072,
            "vocabulary_size": 30522,
        },
        "sequence_length": 16,
        "batch_size": 32,
        "batch_sizes": [32],
        "steps_per_execution": 1,
        "max_batch": 1024,
        "memory_budget_mb": 6144,
        "stored_image_size": 256,
        "pipeline_images": 256,
    },
}

# Tiny stand-ins with the same structure, for `--smoke`.
SMOKE_CONFIGS = {
    "demo": {
        **CONFIGS["demo"],
        "image": {
            **CONFIGS["demo"]["image"],
            "image_size": 32,
            "stackwise_filters": [8, 16],
            "stackwise_blocks": [2, 2],
            "stackwise_strides": [1, 2],
        },
        "text": {**CONFIGS["demo"]["text"], "hidden_dim": 16},
        "batch_size": 8,
        "batch_sizes": [8],
        "max_batch": 32,
        "memory_budget_mb": 1500,
        "stored_image_size": 40,
        "pipeline_images": 32,
    },
    "vit_b16_bert_base": {
        **CONFIGS["vit_b16_bert_base"],
        "image": {
            "kind": "vit",
            "image_size": 32,
            "patch_size": 8,
            "num_layers": 1,
            "num_heads": 2,
            "hidden_dim": 16,
            "mlp_dim": 32,
        },
        "text": {
            "kind": "bert",
            "num_layers": 1,
            "num_heads": 2,
            "hidden_dim": 16,
            "intermediate_dim": 32,
            "vocabulary_size": 500,
        },
        "batch_size": 8,
        "batch_sizes": [8],
        "max_batch": 32,
        "memory_budget_mb": 1500,
        "stored_image_size": 40,
        "pipeline_images": 32,
    },
}

WORDS = (
    "a the red blue green yellow small large circle square star triangle "
    "ring cross on striped plain noisy checkered gradient background photo "
    "of tiny big bright dark shape picture with near"
).split()


# --- Building the towers ------------------------------------------------------


def vocabulary_for(size):
    """A WordPiece vocabulary of exactly `size` tokens (random towers)."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + WORDS
    tokens += [f"tok{i}" for i in range(size - len(tokens))]
    return tokens[:size]


def build_model(config, jit_compile=False, steps_per_execution=1):
    """A LiTModel with randomly initialised towers shaped as `config`."""
    import keras
    import keras_hub

    from keras_lit.layers import LockedImageEncoder
    from keras_lit.layers import TextEncoder
    from keras_lit.models import LiTModel

    keras.utils.set_random_seed(0)
    image, text = config["image"], config["text"]
    size = image["image_size"]
    if image["kind"] == "resnet_v2":
        import keras_cv

        backbone = keras_cv.models.ResNetV2Backbone(
            stackwise_filters=image["stackwise_filters"],
            stackwise_blocks=image["stackwise_blocks"],
            stackwise_strides=image["stackwise_strides"],
            include_rescaling=True,
            input_shape=(size, size, 3),
        )
        image_encoder = LockedImageEncoder(backbone, pooling="avg")
    else:
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(size, size, 3),
            patch_size=image["patch_size"],
            num_layers=image["num_layers"],
            num_heads=image["num_heads"],
            hidden_dim=image["hidden_dim"],
            mlp_dim=image["mlp_dim"],
        )
        image_encoder = LockedImageEncoder(
            backbone, pooling="cls", value_range=(-1, 1)
        )
    vocabulary = vocabulary_for(text["vocabulary_size"])
    if text["kind"] == "scratch":
        text_encoder = TextEncoder.from_scratch(
            vocabulary,
            projection_dim=image_encoder.output_dim,
            num_layers=text["num_layers"],
            num_heads=text["num_heads"],
            hidden_dim=text["hidden_dim"],
            intermediate_dim=text["intermediate_dim"],
            sequence_length=config["sequence_length"],
        )
    else:
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocabulary, lowercase=True
        )
        bert = keras_hub.models.BertBackbone(
            vocabulary_size=len(vocabulary),
            num_layers=text["num_layers"],
            num_heads=text["num_heads"],
            hidden_dim=text["hidden_dim"],
            intermediate_dim=text["intermediate_dim"],
            dropout=0.0,
            max_sequence_length=max(config["sequence_length"], 16),
        )
        text_encoder = TextEncoder(
            bert,
            tokenizer,
            projection_dim=image_encoder.output_dim,
            sequence_length=config["sequence_length"],
        )
    model = LiTModel(image_encoder, text_encoder)
    model.compile(
        jit_compile=jit_compile, steps_per_execution=steps_per_execution
    )
    return model


# --- FLOP counts --------------------------------------------------------------


def transformer_flops(tokens, width, mlp, layers):
    """Forward FLOPs of `layers` pre-norm transformer blocks (2 per MAC)."""
    projections = 2 * tokens * width * 4 * width  # q, k, v, output
    attention = 2 * 2 * tokens * tokens * width  # scores, weighted sum
    feed_forward = 2 * 2 * tokens * width * mlp
    return layers * (projections + attention + feed_forward)


def conv_flops(backbone):
    """Forward FLOPs of the Conv2D/Dense layers of a functional backbone."""
    import keras

    total = 0
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            kh, kw, cin, cout = layer.kernel.shape
            total += 2 * height * width * kh * kw * cin * cout // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


def flop_counts(config, model):
    """Per-pair FLOPs: image forward, text training step, logits."""
    image, text = config["image"], config["text"]
    tokens = config["sequence_length"]
    dim = model.image_encoder.output_dim
    if image["kind"] == "resnet_v2":
        image_forward = conv_flops(model.image_encoder.backbone)
    else:
        patches = (image["image_size"] // image["patch_size"]) ** 2
        patch_embedding = 2 * patches * image["patch_size"] ** 2 * 3
        patch_embedding *= image["hidden_dim"]
        image_forward = patch_embedding + transformer_flops(
            patches + 1,
            image["hidden_dim"],
            image["mlp_dim"],
            image["num_layers"],
        )
    text_forward = transformer_flops(
        tokens,
        text["hidden_dim"],
        text["intermediate_dim"],
        text["num_layers"],
    )
    text_forward += 2 * text["hidden_dim"] * dim  # projection
    batch = config["batch_size"]
    # Logits B x B x D (twice: image->text shares them) fwd + bwd, per pair.
    logits = 3 * 2 * batch * dim
    text_step = 3 * text_forward + logits
    return {
        "image_forward_flops": image_forward,
        "text_step_flops": text_step,
        "ideal_speedup": (image_forward + text_step) / text_step,
    }


# --- Measurements -------------------------------------------------------------


def random_batch(config, model, mode, batch_size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=8)) for _ in range(batch_size)]
    if mode == "precomputed":
        embeddings = rng.standard_normal(
            (batch_size, model.image_encoder.feature_dim)
        ).astype("float32")
        return {"image_embeddings": embeddings, "texts": texts}
    size = config["image"]["image_size"]
    images = rng.integers(0, 256, (batch_size, size, size, 3), dtype="uint8")
    return {"images": images, "texts": texts}


def train_pairs_per_second(model, batch, steps, warmup, rounds):
    """`fit` on one reused, preprocessed batch: pairs/s per round.

    The batch is tokenised (and its images cast) once, as the input
    pipeline would deliver it: tokenising belongs to the pipeline, whose
    throughput is measured on its own. Each round is one `fit` of `steps`
    timed steps after `warmup` untimed ones (the first round also traces
    and compiles); returns the pairs/s of every round. Both counts are
    rounded up to whole executions of the model's `steps_per_execution`.
    """
    import keras
    import tensorflow as tf

    batch = model.preprocessor(batch)
    batch_size = int(batch["token_ids"].shape[0])
    per_call = model.steps_per_execution
    warmup = per_call * math.ceil(warmup / per_call)
    steps = per_call * math.ceil(steps / per_call)

    class Timer(keras.callbacks.Callback):
        # With steps_per_execution > 1, Keras calls this once per
        # execution, with the index of its last step.
        def on_train_batch_end(self, step, logs=None):
            if step + 1 == warmup:
                self.start = time.perf_counter()
            self.end = time.perf_counter()

    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    measured = []
    for _ in range(rounds):
        timer = Timer()
        model.fit(
            dataset,
            steps_per_epoch=warmup + steps,
            epochs=1,
            callbacks=[timer],
            verbose=0,
        )
        measured.append(batch_size * steps / (timer.end - timer.start))
    return measured


def dataset_pairs_per_second(dataset, batches, warmup, min_seconds=3.0):
    """Pairs/s of iterating a dataset: `batches` batches, and >= 3 s."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    pairs = count = 0
    while count < batches or time.perf_counter() - start < min_seconds:
        batch = next(iterator)
        pairs += int(batch["token_ids"].shape[0])
        count += 1
    return pairs / (time.perf_counter() - start)


def write_jpeg_shards(directory, config, seed=0):
    """Synthetic JPEG photos in TFRecord shards (like converted data)."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from keras_lit.data import serialize_example

    rng = np.random.default_rng(seed)
    size = config["stored_image_size"]
    count = config["pipeline_images"]
    shards = max(1, count // 256)
    for shard in range(shards):
        path = os.path.join(directory, f"train-{shard:05d}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(count // shards):
                # Smooth random images: JPEG sizes like photos'.
                small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                image = Image.fromarray(small).resize((size, size))
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=90)
                texts = [" ".join(rng.choice(WORDS, size=8)) for _ in range(2)]
                writer.write(serialize_example(buffer.getvalue(), texts))
    return os.path.join(directory, "train-*.tfrecord")


def measure_training(name, config, batch_size, jit_compile, args):
    """Pairs/s both ways at one batch size and XLA setting."""
    import statistics

    config = {**config, "batch_size": batch_size}
    per_call = args.steps_per_execution or config["steps_per_execution"]
    model = build_model(config, jit_compile, per_call)
    row = {
        "batch_size": batch_size,
        "jit_compile": jit_compile,
        "steps_per_execution": per_call,
    }
    row.update(flop_counts(config, model))
    batches = {
        mode: random_batch(config, model, mode, batch_size)
        for mode in ("on_the_fly", "precomputed")
    }
    # A first round per mode traces the step and times it, so that every
    # measured round lasts at least `--min-round-seconds`.
    steps = {}
    for mode, batch in batches.items():
        (rate,) = train_pairs_per_second(
            model, batch, args.steps, args.warmup, rounds=1
        )
        needed = args.min_round_seconds * rate / batch_size
        steps[mode] = max(args.steps, math.ceil(needed))
    row["steps_per_round"] = steps
    rounds = {mode: [] for mode in batches}
    # Rounds alternate between the modes, so a slow spell of a shared
    # machine hits both; each mode's figure is its median round.
    for _ in range(args.rounds):
        for mode, batch in batches.items():
            rounds[mode] += train_pairs_per_second(
                model, batch, steps[mode], args.warmup, rounds=1
            )
    for mode, measured in rounds.items():
        row[f"{mode}_rounds"] = [round(x, 2) for x in measured]
        row[f"{mode}_pairs_per_s"] = statistics.median(measured)
        emit(
            name,
            f"train_{mode}_b{batch_size}_jit_{jit_compile}",
            row[f"{mode}_pairs_per_s"],
        )
    row["speedup"] = (
        row["precomputed_pairs_per_s"] / row["on_the_fly_pairs_per_s"]
    )
    row["fraction_of_ideal"] = row["speedup"] / row["ideal_speedup"]
    return row


def measure_config(name, config, args):
    batch_size = config["batch_size"]
    results = {"config": name, "batch_size": batch_size, "training": []}
    if "training" in args.parts:
        for size in config["batch_sizes"]:
            for jit_compile in args.jit_compile:
                row = measure_training(name, config, size, jit_compile, args)
                results["training"].append(row)
        # The pipeline must keep up with the fastest training step measured
        # at the config's batch size, whatever its XLA setting.
        at_batch = [
            r for r in results["training"] if r["batch_size"] == batch_size
        ]
        for mode in ("on_the_fly", "precomputed"):
            results[f"{mode}_pairs_per_s"] = max(
                r[f"{mode}_pairs_per_s"] for r in at_batch
            )
    if "pipeline" in args.parts:
        results.update(measure_pipeline(name, config, args))
        if "training" in args.parts:
            results["pipeline_over_training"] = (
                results["pipeline_pairs_per_s"]
                / results["on_the_fly_pairs_per_s"]
            )
            results["precomputed_pipeline_over_training"] = (
                results["precomputed_pipeline_pairs_per_s"]
                / results["precomputed_pairs_per_s"]
            )
    if "memory" in args.parts:
        budget = args.memory_budget_mb or config["memory_budget_mb"]
        results["memory_budget_mb"] = budget
        for mode in ("on_the_fly", "precomputed"):
            results[f"{mode}_max_batch"] = largest_batch(
                name, mode, budget, config["max_batch"], args
            )
            emit(name, f"max_batch_{mode}", results[f"{mode}_max_batch"])
    return results


def measure_pipeline(name, config, args):
    """Input pipelines (JPEG shards, precomputed shards) and precompute."""
    from keras_lit import data
    from keras_lit.precompute import load_precomputed
    from keras_lit.precompute import precompute_image_embeddings

    results = {}
    batch_size = config["batch_size"]
    model = build_model(config)
    with tempfile.TemporaryDirectory() as directory:
        pattern = write_jpeg_shards(directory, config)
        image_size = model.image_encoder.image_size
        raw = data.tfrecord_dataset(
            pattern, image_size=image_size, batch_size=batch_size, seed=0
        ).repeat()
        results["pipeline_pairs_per_s"] = dataset_pairs_per_second(
            raw.map(model.preprocessor, num_parallel_calls=-1).prefetch(-1),
            args.pipeline_batches,
            args.warmup,
        )
        emit(name, "pipeline_images", results["pipeline_pairs_per_s"])

        embeddings_dir = os.path.join(directory, "embeddings")
        source = data.tfrecord_dataset(
            pattern, image_size=image_size, shuffle=False, caption="all"
        )
        start = time.perf_counter()
        summary = precompute_image_embeddings(
            model.image_encoder,
            source,
            embeddings_dir,
            shard_size=max(256, batch_size),
            batch_size=batch_size,
            verbose=False,
        )
        results["precompute_images_per_s"] = summary["num_examples"] / (
            time.perf_counter() - start
        )
        emit(name, "precompute_images", results["precompute_images_per_s"])
        precomputed = load_precomputed(
            embeddings_dir, batch_size=batch_size, seed=0
        ).repeat()
        # As `fit` feeds it: tokenised in parallel, then prefetched.
        results["precomputed_pipeline_pairs_per_s"] = dataset_pairs_per_second(
            precomputed.map(model.preprocessor, num_parallel_calls=-1).prefetch(
                -1
            ),
            args.pipeline_batches,
            args.warmup,
        )
        emit(
            name,
            "pipeline_precomputed",
            results["precomputed_pipeline_pairs_per_s"],
        )
    return results


# --- Memory: the largest batch within a budget --------------------------------


def probe_memory(name, mode, batch_size, smoke):
    """Runs 2 training steps; returns the peak memory in MB."""
    import tensorflow as tf

    config = (SMOKE_CONFIGS if smoke else CONFIGS)[name]
    model = build_model(config)
    batch = random_batch(config, model, mode, batch_size)
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
    if tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_memory_info("GPU:0")
        return info["peak"] / 2**20
    return peak_rss_mb()


def peak_rss_mb():
    """This process's peak resident memory in MB.

    Linux's `ru_maxrss` survives `exec`: a probe forked from a big parent
    would report the parent's size. `VmHWM` belongs to the process's own
    address space, which `exec` replaces.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fits(name, mode, batch_size, budget, args):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--probe",
        name,
        mode,
        str(batch_size),
    ] + (["--smoke"] if args.smoke else [])
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        # Out of memory or killed: show why, the search goes on.
        tail = completed.stderr.strip().splitlines()[-3:]
        print(
            json.dumps(
                {
                    "probe_failed": [name, mode, batch_size],
                    "returncode": completed.returncode,
                    "stderr": tail,
                }
            ),
            file=sys.stderr,
        )
        return False
    peak = json.loads(completed.stdout.strip().splitlines()[-1])["peak_mb"]
    emit(name, f"peak_mb_{mode}_b{batch_size}", peak)
    return peak <= budget


def largest_batch(name, mode, budget, cap, args):
    """Doubling then bisection: the largest batch whose peak fits."""
    low, high = 0, 8
    while high <= cap and fits(name, mode, high, budget, args):
        low, high = high, high * 2
    high = min(high, cap + 1)
    while high - low > max(1, low // 8):  # within 12.5%
        middle = (low + high) // 2
        if fits(name, mode, middle, budget, args):
            low = middle
        else:
            high = middle
    return low


# --- Output -------------------------------------------------------------------


def emit(config, measurement, value):
    print(json.dumps({"config": config, measurement: round(value, 2)}))
    sys.stdout.flush()


def markdown(all_results):
    lines = [
        "| towers | batch | XLA | steps/call | on the fly pairs/s | "
        "precomputed pairs/s | speed-up | FLOP ideal | % of ideal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in all_results:
        for r in result["training"]:
            lines.append(
                f"| {result['config']} | {r['batch_size']} "
                f"| {'on' if r['jit_compile'] else 'off'} "
                f"| {r['steps_per_execution']} "
                f"| {r['on_the_fly_pairs_per_s']:.1f} "
                f"| {r['precomputed_pairs_per_s']:.1f} "
                f"| {r['speedup']:.2f}x | {r['ideal_speedup']:.2f}x "
                f"| {100 * r['fraction_of_ideal']:.0f}% |"
            )
    lines += [
        "",
        "| towers | batch | JPEG pipeline (/ on-the-fly training) | "
        "precomputed pipeline (/ precomputed training) | precompute "
        "images/s | max batch (budget) fly / pre |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in all_results:
        memory = "not measured"
        if "on_the_fly_max_batch" in r:
            memory = (
                f"{r['on_the_fly_max_batch']} / {r['precomputed_max_batch']}"
                f" ({r['memory_budget_mb']} MB)"
            )
        cells = ["not measured"] * 3
        if "pipeline_pairs_per_s" in r:
            cells = [
                f"{r['pipeline_pairs_per_s']:.0f} pairs/s",
                f"{r['precomputed_pipeline_pairs_per_s']:.0f} pairs/s",
                f"{r['precompute_images_per_s']:.0f}",
            ]
            if "pipeline_over_training" in r:
                cells[0] += f" ({r['pipeline_over_training']:.2f}x)"
                cells[1] += f" ({r['precomputed_pipeline_over_training']:.2f}x)"
        lines.append(
            f"| {r['config']} | {r['batch_size']} | "
            + " | ".join(cells)
            + f" | {memory} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS)
    )
    parser.add_argument(
        "--steps", type=int, default=10, help="timed steps per round"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per mode"
    )
    parser.add_argument(
        "--min-round-seconds",
        type=float,
        default=3.0,
        help="more steps per round for fast steps",
    )
    parser.add_argument(
        "--jit-compile",
        nargs="+",
        default=["false", "true"],
        choices=["false", "true"],
        help="XLA settings to measure training with (both by default)",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=None,
        help="training steps per compiled call (default: the config's; "
        "the demo's is 15, as the demo compiles its model)",
    )
    parser.add_argument("--pipeline-batches", type=int, default=20)
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["training", "pipeline", "memory"],
        choices=["training", "pipeline", "memory"],
        help="what to measure (all by default; memory is the slow part)",
    )
    parser.add_argument("--memory-budget-mb", type=float, default=None)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny towers, few steps"
    )
    parser.add_argument("--output", default=None, help="JSON results file")
    parser.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        name, mode, batch_size = args.probe
        peak = probe_memory(name, mode, int(batch_size), args.smoke)
        print(json.dumps({"peak_mb": peak}))
        return 0
    args.jit_compile = [value == "true" for value in args.jit_compile]
    if args.smoke:
        args.steps, args.warmup, args.pipeline_batches = 2, 1, 2
        args.rounds, args.min_round_seconds = 1, 0.0
    configs = SMOKE_CONFIGS if args.smoke else CONFIGS
    results = [measure_config(n, configs[n], args) for n in args.configs]
    print(markdown(results))
    if args.output:
        with open(args.output, "w") as file:
            json.dump(results, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
