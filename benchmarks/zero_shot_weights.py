"""Time and peak memory to build zero-shot class weights.

Builds `keras_lit.zero_shot.build_zero_shot_weights` for ImageNet's class
names x CLIP's prompt templates (1000 x 80 = 80,000 prompts by default) with
the demo-sized text tower: `TextEncoder.from_scratch`, width 64, 2 layers,
16 tokens, projecting to 256 (the width of the demo's ResNetV2 image
tower). The vocabulary is learned from the prompts themselves (not timed).
A warm-up call on two classes traces the encoder first, so the timed run is
steady state; the cold time is printed too.

Memory: resident set size sampled every 5 ms during the timed build (the
growth over the RSS just before it), and the peak of Python/numpy
allocations traced by `tracemalloc`. Bounded memory means both stay far
below what 80,000 x 256 float32 embeddings would need at once (78 MiB).

Typical usage:

    python benchmarks/zero_shot_weights.py                  # 1000 x 80
    python benchmarks/zero_shot_weights.py --classes 10 --templates 2
    python benchmarks/zero_shot_weights.py --chunk-size 1024   # less memory
"""

import argparse
import json
import os
import threading
import time
import tracemalloc
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

PROJECTION_DIM = 256


def rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples the resident set size in a thread; `.peak` after exit."""

    def __init__(self, interval=0.005):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def class_names(count):
    from keras_lit.zero_shot import imagenet_class_names

    names = imagenet_class_names()
    names += [f"extra class {i}" for i in range(max(0, count - len(names)))]
    return names[:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--templates", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--sequence-length", type=int, default=16)
    parser.add_argument("--vocabulary-size", type=int, default=4000)
    args = parser.parse_args()

    import keras_cv

    from keras_lit.layers import LockedImageEncoder
    from keras_lit.layers import TextEncoder
    from keras_lit.layers import build_word_piece_vocabulary
    from keras_lit.models import LiTModel
    from keras_lit.zero_shot import build_zero_shot_weights
    from keras_lit.zero_shot import format_prompts
    from keras_lit.zero_shot import prompt_templates

    names = class_names(args.classes)
    templates = prompt_templates("clip_imagenet_80")[: args.templates]
    with warnings.catch_warnings():
        # CLIP's ImageNet list repeats "missile" and "sunglasses".
        warnings.simplefilter("ignore", UserWarning)
        prompts = format_prompts(names, templates)
    vocabulary = build_word_piece_vocabulary(
        prompts, vocabulary_size=args.vocabulary_size
    )
    text_encoder = TextEncoder.from_scratch(
        vocabulary,
        projection_dim=PROJECTION_DIM,
        hidden_dim=args.hidden_dim,
        intermediate_dim=2 * args.hidden_dim,
        num_layers=args.num_layers,
        sequence_length=args.sequence_length,
    )
    # The demo's image tower (pooled 256-d); it does not run here.
    backbone = keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[16, 32, 64],
        stackwise_blocks=[2, 2, 2],
        stackwise_strides=[1, 2, 2],
        include_rescaling=True,
        input_shape=(64, 64, 3),
    )
    image_encoder = LockedImageEncoder(backbone)
    model = LiTModel(image_encoder, text_encoder)

    # Warm-up: trace the text tower on full batches.
    warmup_classes = -(-args.batch_size // len(templates))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        build_zero_shot_weights(
            model,
            class_names(warmup_classes),
            templates,
            batch_size=args.batch_size,
            verbose=0,
        )
    cold_seconds = time.perf_counter() - start

    tracemalloc.start()
    baseline = rss_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with PeakRss() as peak:
            start = time.perf_counter()
            weights = build_zero_shot_weights(
                model,
                names,
                templates,
                batch_size=args.batch_size,
                chunk_size=args.chunk_size,
                verbose=0,
            )
            seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    num_prompts = len(names) * len(templates)
    result = {
        "classes": len(names),
        "templates": len(templates),
        "prompts": num_prompts,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "text_tower": {
            "hidden_dim": args.hidden_dim,
            "num_layers": args.num_layers,
            "sequence_length": args.sequence_length,
            "vocabulary_size": len(vocabulary),
            "projection_dim": PROJECTION_DIM,
        },
        "weights_shape": list(weights.shape),
        "seconds": round(seconds, 3),
        "prompts_per_second": round(num_prompts / seconds, 1),
        "warmup_seconds": round(cold_seconds, 3),
        "peak_rss_growth_mib": round((peak.peak - baseline) / 2**20, 1),
        "peak_rss_mib": round(peak.peak / 2**20, 1),
        "peak_traced_python_mib": round(traced_peak / 2**20, 1),
        "all_embeddings_at_once_mib": round(
            num_prompts * PROJECTION_DIM * 4 / 2**20, 1
        ),
    }
    print(
        f"{num_prompts} prompts ({len(names)} classes x {len(templates)} "
        f"templates) in {seconds:.2f} s ({result['prompts_per_second']} "
        f"prompts/s); peak RSS +{result['peak_rss_growth_mib']} MiB "
        f"(total {result['peak_rss_mib']} MiB), peak traced Python "
        f"{result['peak_traced_python_mib']} MiB"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
