"""The Uu step with TF's fused batch norm vs Keras' own batch norm ops.

Keras 3.15 trains `BatchNormalization` on TensorFlow with a dozen separate
ops per layer; keras_lit's image encoder swaps in TF's fused kernel
(`keras_lit.compat.fuse_batch_normalization`). This times the training
step of the demo's unlocked setup (KerasCV ResNetV2 [16, 32, 64] x
[2, 2, 2] at 64 px with 19 batch norms, the 2 x 64 text tower, batch 128,
`steps_per_execution` 15, XLA off as keras_lit chooses for it; or with
`--tower lite0`, `make demo-real`'s: ImageNet EfficientNet-Lite0 at 64 px,
batch 64) both ways,
alternating fresh processes, and prints the median step times and their
ratio. One reused batch, so the input pipeline is not timed.

    python benchmarks/batch_norm_step.py --rounds 5 --steps 60
    python benchmarks/batch_norm_step.py --tower lite0 --rounds 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def worker(tower, fused, steps):
    import numpy as np
    import tensorflow as tf

    import keras_lit  # noqa: F401  (its oneDNN choice precedes TF's start)
    from keras_lit.compat import all_layers
    from keras_lit.layers import build_word_piece_vocabulary

    captions = ["a big red circle on blue", "a small green square"] * 50
    vocabulary = build_word_piece_vocabulary(captions, 400)
    if tower == "demo":
        from keras_lit.demo import pipeline
        from keras_lit.demo import pretrain
        from keras_lit.demo import setups

        settings = pipeline.demo_settings()
        backbone = pretrain.build_backbone(settings["pretrain"])
        model = setups.build_setup_model("uu", backbone, vocabulary, settings)
    else:  # `make demo-real`'s Uu: ImageNet EfficientNet-Lite0 fine-tuned
        from keras_lit.demo import real
        from keras_lit.layers import LockedImageEncoder
        from keras_lit.real import efficientnet_lite0

        settings = real.real_demo_settings()
        preset = efficientnet_lite0.efficientnet_lite0_preset()
        size = (settings["image_size"],) * 2
        encoder = LockedImageEncoder.from_preset(preset, image_size=size)
        model = real.build_model("Uu", preset, encoder, vocabulary, settings)
    batch_size, size = settings["batch_size"], model.image_encoder.image_size
    if not fused:  # back to Keras' own `BatchNormalization.call`
        for layer in all_layers(model.image_encoder):
            vars(layer).pop("call", None)
    swapped = sum("call" in vars(x) for x in all_layers(model.image_encoder))
    rng = np.random.default_rng(0)
    batch = model.preprocessor(
        {
            "images": rng.integers(
                0, 256, (batch_size, *size, 3), dtype="uint8"
            ),
            "texts": [captions[i % len(captions)] for i in range(batch_size)],
        }
    )
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    per_call = model.steps_per_execution
    model.fit(dataset, steps_per_epoch=per_call, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = (time.perf_counter() - start) / steps
    return {
        "fused_layers": swapped,
        "xla": bool(model.jit_compile),
        "step_s": seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument(
        "--tower",
        choices=["demo", "lite0"],
        default="demo",
        help="demo: make demo's Uu/uu (default); lite0: make demo-real's Uu",
    )
    parser.add_argument("--worker", choices=["fused", "keras"])
    args = parser.parse_args(argv)
    if args.worker:
        fused = args.worker == "fused"
        print(json.dumps(worker(args.tower, fused, args.steps)))
        return 0
    times = {"keras": [], "fused": []}
    for round_index in range(args.rounds):
        for name in times:
            command = [sys.executable, __file__, "--worker", name]
            command += ["--tower", args.tower]
            command += ["--steps", str(args.steps)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                sys.stderr.write(result.stderr[-2000:])
                return 1
            row = json.loads(result.stdout.strip().splitlines()[-1])
            times[name].append(row["step_s"])
            print(
                f"round {round_index} {name:5s} batch norm: "
                f"{1000 * row['step_s']:.0f} ms/step (XLA {row['xla']}, "
                f"{row['fused_layers']} fused layers)",
                flush=True,
            )
    keras_ms = 1000 * statistics.median(times["keras"])
    fused_ms = 1000 * statistics.median(times["fused"])
    print(
        f"\nmedian of {args.rounds} rounds: Keras' ops {keras_ms:.0f} ms/step, "
        f"fused kernel {fused_ms:.0f} ms/step: {keras_ms / fused_ms:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
