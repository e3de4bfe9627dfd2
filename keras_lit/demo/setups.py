"""Step 3 of the demo: the paper's Lu, Uu and uu setups, trained alike."""

import os
import shutil
import time

import keras
import tensorflow as tf

from keras_lit.demo import pretrain
from keras_lit.demo.progress import ProgressBar
from keras_lit.layers import LockedImageEncoder
from keras_lit.layers import TextEncoder
from keras_lit.models import LiTModel
from keras_lit.models.lit_model import NO_DECAY_NAMES
from keras_lit.schedules import warmup_cosine_decay

SETUPS = ("Lu", "Uu", "uu")
SETUP_DESCRIPTIONS = {
    "Lu": "image tower pretrained and locked (LiT)",
    "Uu": "image tower pretrained, fine-tuned",
    "uu": "both towers from scratch",
}


def shared_settings(seed, smoke):
    """The settings both demos (`keras-lit demo` and `--real`) share."""
    return {
        "seed": int(seed),
        "smoke": bool(smoke),
        "vocabulary_size": 400,
        # The from-scratch text tower of the Lu and Uu setups.
        "text_tower": {
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 64,
            "intermediate_dim": 128,
            "sequence_length": 16,
        },
        "log_every": 15,
        "weight_decay": 1e-4,
        "warmup_fraction": 0.05,
        "temperature_init": 10.0,
    }


def build_setup_model(setup, backbone, vocabulary, settings):
    """A `LiTModel` for `"Lu"`, `"Uu"` or `"uu"` (paper notation)."""
    if setup not in SETUPS:
        raise ValueError(
            f"`setup` must be one of {', '.join(map(repr, SETUPS))}. "
            f"Received: setup={setup!r}"
        )
    keras.utils.set_random_seed(settings["seed"] + 1)
    # The text tower first, so it starts from the same weights in every
    # setup whatever the image side draws.
    text_encoder = TextEncoder.from_scratch(
        vocabulary,
        projection_dim=_feature_dim(backbone),
        **settings["text_tower"],
    )
    if setup == "Lu":
        image_encoder = LockedImageEncoder(backbone, pooling="avg")
    else:
        image_backbone = pretrain.build_backbone(settings["pretrain"])
        if setup == "Uu":
            image_backbone.set_weights(backbone.get_weights())
        image_encoder = LockedImageEncoder(
            image_backbone, pooling="avg", locked=False
        )
    return compile_lit_model(
        image_encoder,
        text_encoder,
        settings,
        settings["learning_rate"],
        steps_per_execution=min(settings["log_every"], 16),
    )


def compile_lit_model(
    image_encoder, text_encoder, settings, learning_rate, **compile_kwargs
):
    """A `LiTModel` of both towers, compiled with the demos' optimizer.

    AdamW with `settings["weight_decay"]` (none on `NO_DECAY_NAMES`),
    global norm clipping at 1 and a warmup-cosine schedule peaking at
    `learning_rate` over `settings["steps"]`; `compile_kwargs` go to
    `model.compile`.
    """
    model = LiTModel(
        image_encoder,
        text_encoder,
        temperature_init=settings["temperature_init"],
    )
    steps = settings["steps"]
    warmup = max(1, int(settings["warmup_fraction"] * steps))
    schedule = warmup_cosine_decay(learning_rate, steps, warmup)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=settings["weight_decay"],
        global_clipnorm=1.0,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    model.compile(optimizer=optimizer, **compile_kwargs)
    return model


def train_setup(
    setup,
    backbone,
    vocabulary,
    data,
    settings,
    verbose=True,
    precompute_dir=None,
):
    """Trains one setup on the caption split; returns model and history.

    Lu trains from precomputed image embeddings: the locked tower runs once
    per image (`keras_lit.precompute`), written to `precompute_dir`. Uu and
    uu must run their image tower on the fly. All three see the same pairs
    with the same batch size, optimizer and number of steps.
    """
    from keras_lit import precompute

    model = build_setup_model(setup, backbone, vocabulary, settings)
    start = time.time()
    precompute_seconds = 0.0
    pairs = tf.data.Dataset.from_tensor_slices(
        {"images": data["lit_images"], "texts": data["lit_captions"]}
    )
    if setup == "Lu":
        # One caption per image, as a `[None]` list: the precompute format
        # stores a variable number of captions per image.
        pairs = tf.data.Dataset.from_tensor_slices(
            {
                "images": data["lit_images"],
                "texts": tf.ragged.constant(
                    [[text] for text in data["lit_captions"]]
                ),
            }
        )
        if precompute_dir is None:
            raise ValueError(
                "Lu trains from precomputed embeddings: pass `precompute_dir`."
            )
        if os.path.exists(precompute_dir):
            shutil.rmtree(precompute_dir)
        precompute.precompute_image_embeddings(
            model.image_encoder,
            pairs,
            precompute_dir,
            batch_size=250,
            verbose=verbose,
        )
        precompute_seconds = time.time() - start
        dataset = precompute.load_precomputed(
            precompute_dir,
            batch_size=settings["batch_size"],
            seed=settings["seed"],
            caption="first",
            image_encoder=model.image_encoder,
        )
    else:
        dataset = pairs.shuffle(
            len(data["lit_captions"]), seed=settings["seed"]
        ).batch(settings["batch_size"], drop_remainder=True)
    steps = settings["steps"]
    log_every = min(settings["log_every"], steps)
    progress = ProgressBar(
        steps,
        f"  {setup} ({SETUP_DESCRIPTIONS[setup]})",
        enabled=verbose,
    )
    history = model.fit(
        dataset.repeat(),
        epochs=max(steps // log_every, 1),
        steps_per_epoch=log_every,
        verbose=0,
        callbacks=[progress],
    )
    seconds = time.time() - start
    history = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    return {
        "model": model,
        "history": history,
        "steps": [
            (epoch + 1) * log_every for epoch in range(len(history["loss"]))
        ],
        "train_seconds": round(seconds, 1),
        "precompute_seconds": round(precompute_seconds, 1),
        "temperature": float(keras.ops.convert_to_numpy(model.temperature)),
    }


def _feature_dim(backbone):
    return int(backbone.output_shape[-1])
