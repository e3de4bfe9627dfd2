"""Stage 1 of the demo: a supervised image tower, standing in for a preset.

LiT locks an image tower that was pretrained elsewhere. Offline there are no
image weights to download, so the demo trains its own: a KerasCV
`ResNetV2Backbone` learns the four attributes of the `"pretrain"` split (its
own images, disjoint from the LiT and evaluation splits) with one softmax
head per attribute. The heads are thrown away; the backbone's pooled
pre-logits are what LiT locks.

keras_lit ships the result for the demo's settings as package data
(`keras_lit/demo/assets/pretrained_tower/`, 1.1 MB), so the demo starts
from a pretrained tower, as a user with a real preset would. Rebuild it with
`python -m keras_lit.demo.pretrain` (`make demo-tower`; about 3 minutes on
2 cores; multithreaded training is not bit-reproducible, so the weights
come out equivalent, not identical). Other settings, or
`keras-lit demo --retrain-tower`, train here; the result is cached on disk
under a hash of every setting that changes it, so the next run skips this
stage.
"""

import hashlib
import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np

from keras_lit.compat import fuse_batch_normalization
from keras_lit.demo import shapes
from keras_lit.demo.progress import ProgressBar
from keras_lit.files import staged_directory
from keras_lit.schedules import warmup_cosine_decay

# Bump when the data generator or the training code changes the weights
# (then rebuild the shipped tower: `python -m keras_lit.demo.pretrain`).
CACHE_VERSION = 1
SHIPPED_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "assets", "pretrained_tower"
)


def pretrain_settings(seed=0, smoke=False):
    """The stage-1 settings: architecture, data and schedule, as a dict."""
    settings = {
        "cache_version": CACHE_VERSION,
        "seed": int(seed),
        "image_size": shapes.IMAGE_SIZE,
        "stackwise_filters": [16, 32, 64],
        "stackwise_blocks": [2, 2, 2],
        "stackwise_strides": [1, 2, 2],
        "num_images": 12_000,
        "epochs": 8,
        "batch_size": 128,
        "learning_rate": 3e-3,
        "warmup_fraction": 0.05,
        "shape_loss_weight": 3.0,
    }
    if smoke:
        settings.update({"num_images": 512, "epochs": 1, "batch_size": 64})
    return settings


def settings_hash(settings):
    """A short stable hash of a JSON-serialisable settings dict."""
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def build_backbone(settings):
    """The stage-1 architecture, randomly initialised (no download)."""
    import keras_cv

    size = settings["image_size"]
    return keras_cv.models.ResNetV2Backbone(
        stackwise_filters=list(settings["stackwise_filters"]),
        stackwise_blocks=list(settings["stackwise_blocks"]),
        stackwise_strides=list(settings["stackwise_strides"]),
        include_rescaling=True,
        input_shape=(size, size, 3),
    )


def pretrain_backbone(
    settings,
    cache_dir,
    eval_images=None,
    eval_labels=None,
    verbose=True,
    retrain=False,
):
    """Returns a pretrained backbone: cached, shipped, or trained now.

    Looks in `cache_dir` first, then at the tower shipped with keras_lit
    (when `settings` are the ones it was trained with), and trains only when
    neither has it, or when `retrain=True`.

    Args:
        settings: dict from `pretrain_settings`.
        cache_dir: directory holding one sub-directory per settings hash.
        eval_images: optional held-out uint8 images to score the heads on.
        eval_labels: their attribute labels (dict of int arrays).
        verbose: bool. Show progress.
        retrain: bool. Train even if a cached or shipped tower exists (the
            result replaces the cached one). Defaults to `False`.

    Returns:
        `(backbone, info)`. `info` holds `"path"`, `"source"` (`"cache"`,
        `"shipped"` or `"trained"`), `"cached"` (not trained now),
        `"seconds"` (of the training), the per-epoch `"history"` and the
        held-out `"accuracy"` per attribute.
    """
    key = settings_hash(settings)
    path = os.path.join(cache_dir, f"pretrain-{key}")
    candidates = [(path, "cache")]
    if shipped_settings() == settings:
        candidates.append((SHIPPED_DIR, "shipped"))
    for directory, source in [] if retrain else candidates:
        loaded = _load(settings, directory)
        if loaded is not None:
            backbone, info = loaded
            info.update({"path": directory, "source": source, "cached": True})
            where = (
                "shipped with keras_lit" if source == "shipped" else "cached"
            )
            _log(verbose, f"Stage 1: image tower {where}, from {directory}")
            return backbone, info

    start = time.time()
    images, labels = shapes.generate_images(
        settings["seed"], "pretrain", settings["num_images"]
    )
    keras.utils.set_random_seed(settings["seed"])
    backbone = build_backbone(settings)
    fuse_batch_normalization(backbone)  # trains with TF's fused kernel
    classifier = _classifier(backbone)
    steps_per_epoch = settings["num_images"] // settings["batch_size"]
    total_steps = steps_per_epoch * settings["epochs"]
    warmup = max(1, int(settings["warmup_fraction"] * total_steps))
    schedule = warmup_cosine_decay(
        settings["learning_rate"], total_steps, warmup
    )
    classifier.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss={name: _loss() for name in shapes.ATTRIBUTES},
        loss_weights={
            name: settings["shape_loss_weight"] if name == "shape" else 1.0
            for name in shapes.ATTRIBUTES
        },
        metrics={name: ["accuracy"] for name in shapes.ATTRIBUTES},
        steps_per_execution=min(steps_per_epoch, 8),
    )
    progress = ProgressBar(
        total_steps, "Stage 1: pretrain image tower", enabled=verbose
    )
    history = classifier.fit(
        images,
        labels,
        batch_size=settings["batch_size"],
        epochs=settings["epochs"],
        steps_per_epoch=steps_per_epoch,
        shuffle=True,
        verbose=0,
        callbacks=[progress],
    )
    info = {
        "settings": settings,
        "seconds": round(time.time() - start, 1),
        "history": {
            k: [float(v) for v in values]
            for k, values in history.history.items()
        },
        "accuracy": {},
    }
    if eval_images is not None:
        info["accuracy"] = supervised_accuracy(
            classifier, eval_images, eval_labels
        )
    _save(backbone, info, path)
    info.update({"path": path, "source": "trained", "cached": False})
    return backbone, info


def shipped_settings():
    """The settings of the tower shipped with keras_lit, or `None`."""
    try:
        with open(os.path.join(SHIPPED_DIR, "info.json")) as file:
            return json.load(file)["settings"]
    except (OSError, ValueError, KeyError):
        return None


def _load(settings, directory):
    weights_path = os.path.join(directory, "backbone.weights.h5")
    info_path = os.path.join(directory, "info.json")
    if not (os.path.exists(weights_path) and os.path.exists(info_path)):
        return None
    backbone = build_backbone(settings)
    backbone.load_weights(weights_path)
    with open(info_path) as file:
        return backbone, json.load(file)


def supervised_accuracy(classifier, images, labels):
    """Top-1 accuracy of each attribute head on labelled images."""
    predictions = classifier.predict(images, batch_size=256, verbose=0)
    return {
        name: float(np.mean(np.argmax(predictions[name], -1) == labels[name]))
        for name in shapes.ATTRIBUTES
    }


def _classifier(backbone):
    inputs = keras.Input(backbone.input_shape[1:], name="images")
    features = keras.layers.GlobalAveragePooling2D(name="pool")(
        backbone(inputs)
    )
    outputs = {
        name: keras.layers.Dense(len(values), name=name)(features)
        for name, values in shapes.ATTRIBUTES.items()
    }
    return keras.Model(inputs, outputs, name="stage1_classifier")


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _save(backbone, info, path):
    """Writes through a temporary directory and a rename (never half-done)."""
    with staged_directory(path, prefix=".pretrain-") as staging:
        backbone.save_weights(os.path.join(staging, "backbone.weights.h5"))
        with open(os.path.join(staging, "info.json"), "w") as file:
            json.dump(info, file, indent=2)


def _log(verbose, message):
    if verbose:
        print(message, flush=True)


def write_shipped_tower(seed=0, directory=SHIPPED_DIR, num_eval_images=1_200):
    """Trains the demo's stage-1 tower and writes it as the shipped one.

    `python -m keras_lit.demo.pretrain` (`make demo-tower`) runs it; commit
    the two files it writes. Its accuracy is scored on the demo's held-out
    split (`num_eval_images`, as `demo_settings` has it).
    """
    settings = pretrain_settings(seed)
    eval_images, eval_labels = shapes.generate_images(
        seed, "eval", num_eval_images
    )
    with tempfile.TemporaryDirectory() as cache_dir:
        backbone, info = pretrain_backbone(
            settings,
            cache_dir,
            eval_images=eval_images,
            eval_labels=eval_labels,
            retrain=True,
        )
        os.makedirs(directory, exist_ok=True)
        for name in ("backbone.weights.h5", "info.json"):
            shutil.copy(os.path.join(info["path"], name), directory)
    print(f"Wrote the shipped stage-1 tower to {directory}: {info['accuracy']}")
    return directory


if __name__ == "__main__":
    write_shipped_tower()
