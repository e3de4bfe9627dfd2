"""Latency and throughput of each serving signature, in-process.

Exports a LiT model with `keras_lit.export.export_for_serving` (1000 baked
ImageNet classes by default), loads the SavedModel with
`keras_lit.export.load` (what TF Serving runs, minus the RPC layer) and
times every signature at batch 1 and 32 on generated JPEGs. Signatures are
interleaved round by round, so a noisy neighbour slows all of them alike.

It checks the acceptance bound of the serving issue: with 1000 baked
classes, `classify` costs at most 1.2x `embed_image` (median latency at
each batch size); the exit status is 1 when it does not hold.

Typical usage:

    python benchmarks/serving_latency.py                      # ViT-S/16, 224 px
    python benchmarks/serving_latency.py --tower base         # ViT-B/16
    python benchmarks/serving_latency.py --tower tiny --rounds 3   # smoke run
    python benchmarks/serving_latency.py --json results.json

Towers are randomly initialised (no weights are downloaded): latency depends
on the architecture, not on the weights. The text tower is the from-scratch
transformer (16 tokens).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# name: (image size, patch, layers, heads, width, mlp, text width, text layers)
TOWERS = {
    "tiny": None,  # KerasCV ResNetV2 (8, 16 filters) at 32 px, as in tests
    "small": (224, 16, 12, 6, 384, 1536, 256, 4),
    "base": (224, 16, 12, 12, 768, 3072, 512, 6),
}
RATIO_BOUND = 1.2


def build_model(tower, class_names):
    import keras_cv
    import keras_hub

    from keras_lit.layers import LockedImageEncoder
    from keras_lit.layers import TextEncoder
    from keras_lit.layers import build_word_piece_vocabulary
    from keras_lit.models import LiTModel

    captions = [f"a photo of a {name}." for name in class_names]
    vocabulary = build_word_piece_vocabulary(captions, vocabulary_size=4000)
    if tower == "tiny":
        backbone = keras_cv.models.ResNetV2Backbone(
            stackwise_filters=[8, 16],
            stackwise_blocks=[2, 2],
            stackwise_strides=[1, 2],
            include_rescaling=True,
            input_shape=(32, 32, 3),
        )
        image_encoder = LockedImageEncoder(backbone)
        text_options = dict(hidden_dim=16, intermediate_dim=32, num_layers=1)
    else:
        size, patch, layers, heads, width, mlp, text_width, text_layers = (
            TOWERS[tower]
        )
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(size, size, 3),
            patch_size=patch,
            num_layers=layers,
            num_heads=heads,
            hidden_dim=width,
            mlp_dim=mlp,
        )
        image_encoder = LockedImageEncoder(
            backbone, pooling="cls", value_range=(-1, 1)
        )
        text_options = dict(
            hidden_dim=text_width,
            intermediate_dim=4 * text_width,
            num_layers=text_layers,
            num_heads=max(2, text_width // 64),
        )
    text_encoder = TextEncoder.from_scratch(
        vocabulary, projection_dim=image_encoder.output_dim, **text_options
    )
    return LiTModel(image_encoder, text_encoder)


def class_name_list(count):
    try:
        from keras_lit.zero_shot import imagenet_class_names

        names = list(imagenet_class_names())
    except (ImportError, OSError, ValueError):
        names = []
    while len(names) < count:
        names.append(f"object {len(names)}")
    return names[:count]


def make_jpegs(count, height, width, seed=0):
    """Generated photos-alike: smooth colour fields plus sensor noise."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        rows = np.linspace(0, 1, height)[:, None, None]
        columns = np.linspace(0, 1, width)[None, :, None]
        colour = rng.uniform(0, 255, (1, 1, 3))
        field = colour * rows + (255 - colour) * columns
        field = field + rng.normal(0, 12, (height, width, 3))
        pixels = np.clip(field, 0, 255).astype("uint8")
        images.append(tf.io.encode_jpeg(pixels, quality=90).numpy())
    return images


def time_rounds(calls, rounds, warmup):
    """Median-friendly timings: `{name: [seconds per call]}`."""
    for _ in range(warmup):
        for function, inputs in calls.values():
            function(**inputs)
    timings = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (function, inputs) in calls.items():
            start = time.perf_counter()
            outputs = function(**inputs)
            for value in outputs.values():
                value.numpy()
            timings[name].append(time.perf_counter() - start)
    return timings


def percentile(values, fraction):
    values = sorted(values)
    index = min(len(values) - 1, round(fraction * (len(values) - 1)))
    return values[index]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tower", choices=sorted(TOWERS), default="small")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument(
        "--templates",
        default="clip_best_7",
        help="prompt set name for the baked weights and zero_shot",
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "--zero-shot-classes",
        type=int,
        default=10,
        help="class names sent with each zero_shot request",
    )
    parser.add_argument(
        "--source-size",
        type=int,
        nargs=2,
        default=[480, 640],
        metavar=("HEIGHT", "WIDTH"),
        help="size of the generated JPEGs clients send",
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--export-dir", default=None)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_lit.export import export_for_serving
    from keras_lit.export import load

    class_names = class_name_list(args.classes)
    model = build_model(args.tower, class_names)
    export_dir = args.export_dir or tempfile.mkdtemp(prefix="lit_serving_")
    start = time.perf_counter()
    path = export_for_serving(
        model, export_dir, class_names=class_names, templates=args.templates
    )
    export_seconds = time.perf_counter() - start
    signatures = load(path)
    print(
        f"tower={args.tower} image={model.image_encoder.image_size} "
        f"D={model.embedding_dim} classes={args.classes} "
        f"templates={len(signatures.metadata['templates'])} "
        f"export={export_seconds:.1f}s path={path}",
        flush=True,
    )

    height, width = args.source_size
    images = make_jpegs(max(args.batch_sizes), height, width)
    query_classes = class_names[: args.zero_shot_classes]
    results = []
    for batch in args.batch_sizes:
        image_bytes = tf.constant(images[:batch])
        texts = tf.constant(
            [
                f"a photo of a {class_names[i % len(class_names)]}."
                for i in range(batch)
            ]
        )
        calls = {
            "embed_image": (
                signatures["embed_image"],
                {"image_bytes": image_bytes},
            ),
            "classify": (signatures["classify"], {"image_bytes": image_bytes}),
            "embed_text": (signatures["embed_text"], {"texts": texts}),
            "zero_shot": (
                signatures["zero_shot"],
                {
                    "image_bytes": image_bytes,
                    "class_names": tf.constant(query_classes),
                },
            ),
        }
        timings = time_rounds(calls, args.rounds, args.warmup)
        for name, values in timings.items():
            median = statistics.median(values)
            results.append(
                {
                    "signature": name,
                    "batch": batch,
                    "p50_ms": 1000 * median,
                    "p90_ms": 1000 * percentile(values, 0.9),
                    "p99_ms": 1000 * percentile(values, 0.99),
                    "items_per_s": batch / median,
                }
            )

    print(
        f"\n{'signature':<12} {'batch':>5} {'p50 ms':>9} {'p90 ms':>9} "
        f"{'p99 ms':>9} {'items/s':>9}"
    )
    for row in results:
        print(
            f"{row['signature']:<12} {row['batch']:>5} {row['p50_ms']:>9.1f} "
            f"{row['p90_ms']:>9.1f} {row['p99_ms']:>9.1f} "
            f"{row['items_per_s']:>9.1f}"
        )

    ratios = {}
    for batch in args.batch_sizes:
        by_name = {
            row["signature"]: row["p50_ms"]
            for row in results
            if row["batch"] == batch
        }
        ratios[batch] = by_name["classify"] / by_name["embed_image"]
    passed = all(ratio <= RATIO_BOUND for ratio in ratios.values())
    print()
    for batch, ratio in ratios.items():
        verdict = "ok" if ratio <= RATIO_BOUND else "OVER"
        print(
            f"classify / embed_image at batch {batch}: {ratio:.3f} "
            f"(bound {RATIO_BOUND}, {args.classes} classes) {verdict}"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {
                    "tower": args.tower,
                    "classes": args.classes,
                    "source_size": args.source_size,
                    "rounds": args.rounds,
                    "results": results,
                    "classify_over_embed_image": ratios,
                    "passed": passed,
                },
                file,
                indent=2,
            )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
