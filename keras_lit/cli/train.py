"""`keras-lit train`: a LiT model from a config file."""

import math
import os

from keras_lit.cli.common import CLIError
from keras_lit.cli.common import existing_path
from keras_lit.cli.common import import_tensorflow
from keras_lit.cli.common import log
from keras_lit.cli.towers import build_image_encoder
from keras_lit.cli.towers import build_text_encoder
from keras_lit.cli.train_data import image_text_dataset
from keras_lit.cli.train_data import read_captions

NAME = "train"
HELP = "train a LiT model"


def add_arguments(parser):
    parser.add_argument("--config", help="YAML file or .py with get_config()")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.steps=500 (repeatable)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="shrink the run for a quick check"
    )
    parser.add_argument("--quiet", action="store_true", help="one line/epoch")


def run(args):
    from keras_lit.config import load_config

    config = load_config(args.config, args.set or (), smoke=args.smoke)
    import_tensorflow()
    import keras

    from keras_lit import distribute

    train = config["train"]
    output_dir = os.path.abspath(config["output_dir"])
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(int(config["seed"]))
    if train["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    strategy = distribute.get_strategy(train["strategy"])
    global_batch = int(train["global_batch_size"])
    distribute.per_replica_batch_size(global_batch, strategy)
    log(
        f"Strategy {type(strategy).__name__} with "
        f"{strategy.num_replicas_in_sync} replica(s), global batch "
        f"{global_batch}"
    )
    model = build_model(config, strategy)
    callbacks = [keras.callbacks.TerminateOnNaN()]
    dataset = training_dataset(
        config, model.image_encoder, strategy, output_dir, callbacks
    )
    steps = int(train["steps"])
    steps_per_epoch = max(1, min(int(train["steps_per_epoch"]), steps))
    epochs = math.ceil(steps / steps_per_epoch)
    dataset = dataset.repeat()
    initial_epoch = 0
    first_step = 0
    if train["checkpoints"]:
        backup = step_backup(config, model, strategy, output_dir, callbacks)
        backup.total_steps = epochs * steps_per_epoch
        first_step = backup.restore(model)
        if first_step:
            log(f"Resuming after step {first_step} from {backup.backup_dir}")
        dataset = backup.resume_dataset(dataset)
        initial_epoch = backup.initial_epoch(steps_per_epoch)
        callbacks.append(backup)
    if train["batch_log"]:
        from keras_lit.callbacks.step_backup import log_batches

        dataset = log_batches(dataset, train["batch_log"], first_step)
    if train["tensorboard"]:
        callbacks.append(
            keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard"))
        )
    log(f"Training {steps} steps ({epochs} epochs of {steps_per_epoch})")
    history = model.fit(
        dataset,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=2 if args.quiet else 1,
    )
    model_path = os.path.join(output_dir, "model.keras")
    model.save(model_path)
    final = {k: float(v[-1]) for k, v in history.history.items()}
    log("Final " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(final.items())))
    log(f"Saved {model_path}")
    return 0


def step_backup(config, model, strategy, output_dir, callbacks):
    """The exact-resume callback of `train.checkpoints` (not yet restored).

    Saves every `train.checkpoint_every` steps into `<output_dir>/backup`
    (one directory per worker). The skipped-image counts of a precompute
    run are saved and restored with it: a restarted precompute skips its
    finished shards without counting them again. A reader's counts need no
    saving: resuming replays the pipeline, which counts them again.
    """
    from keras_lit import distribute
    from keras_lit.callbacks import StepBackupAndRestore
    from keras_lit.data import SkippedImages

    counters = []
    if _precomputed(config, model.image_encoder):
        counters = [c for c in callbacks if isinstance(c, SkippedImages)]
    return StepBackupAndRestore(
        distribute.worker_backup_dir(
            os.path.join(output_dir, "backup"), strategy
        ),
        save_every=check_positive_int(
            "train.checkpoint_every", config["train"]["checkpoint_every"]
        ),
        counters=counters,
    )


def build_model(config, strategy):
    """The compiled `LiTModel` of `config`, built under `strategy`."""
    from keras_lit.models import LiTModel

    train, data = config["train"], config["data"]
    captions = []
    if config["text_tower"]["source"] == "scratch":
        captions = read_captions(data, data["max_vocabulary_captions"])
    with strategy.scope():
        image_encoder = build_image_encoder(config["image_tower"])
        text_encoder = build_text_encoder(
            config["text_tower"], image_encoder.output_dim, captions
        )
        model = LiTModel(
            image_encoder,
            text_encoder,
            temperature_init=train["temperature_init"],
        )
        jit_compile = resolve_jit_compile(
            train["jit_compile"], _precomputed(config, image_encoder), strategy
        )
        model.compile(
            optimizer=make_optimizer(train),
            jit_compile=jit_compile,
            steps_per_execution=check_steps_per_execution(
                train["steps_per_execution"]
            ),
        )
    if model.jit_compile:
        log("XLA compiles the training step (train.jit_compile)")
    if model.steps_per_execution > 1:
        log(
            f"{model.steps_per_execution} training steps per call "
            "(train.steps_per_execution)"
        )
    return model


def _precomputed(config, image_encoder):
    """Whether training reads precomputed image embeddings."""
    return config["data"]["format"] == "precomputed" or bool(
        config["train"]["precompute"] and image_encoder.locked
    )


def training_dataset(config, image_encoder, strategy, output_dir, callbacks):
    """The training batches; appends the skipped-image counter to callbacks.

    With `train.precompute` (and a locked tower) the image embeddings are
    precomputed into `<output_dir>/embeddings` first.
    """
    from keras_lit.precompute import load_precomputed
    from keras_lit.precompute import precompute_image_embeddings

    train, data = config["train"], config["data"]
    global_batch = int(train["global_batch_size"])
    seed = int(config["seed"])
    if data["format"] == "precomputed":
        return load_precomputed(
            existing_path(data["train"], "data.train"),
            batch_size=global_batch,
            seed=seed,
            image_encoder=image_encoder,
        )
    if not _precomputed(config, image_encoder):
        dataset = image_text_dataset(
            data, image_encoder.image_size, False, global_batch, seed
        )
        callbacks.append(dataset.skipped_images)
        return dataset
    if data["augment"]:
        raise CLIError(
            "train.precompute stores one view per image, so it cannot "
            "use data.augment; set train.precompute=false or drop the "
            "augmentation."
        )
    source = image_text_dataset(
        data, image_encoder.image_size, True, None, seed
    )
    embeddings_dir = os.path.join(output_dir, "embeddings")
    log(f"Precomputing image embeddings into {embeddings_dir}")
    precompute_image_embeddings(
        image_encoder,
        source,
        embeddings_dir,
        dtype=train["precompute_dtype"],
        strategy=strategy,
    )
    callbacks.append(source.skipped_images)
    return load_precomputed(embeddings_dir, batch_size=global_batch, seed=seed)


def make_optimizer(train):
    """AdamW with the `train` section's schedule, decay and clipping."""
    import keras

    from keras_lit.models.lit_model import NO_DECAY_NAMES
    from keras_lit.schedules import warmup_cosine_decay

    steps = int(train["steps"])
    warmup = train["warmup_steps"]
    if warmup is None:
        warmup = max(1, int(0.03 * steps))
    learning_rate = float(train["learning_rate"])
    if train["schedule"] == "cosine":
        schedule = warmup_cosine_decay(learning_rate, steps, warmup)
    elif train["schedule"] == "constant":
        schedule = learning_rate
    else:
        raise CLIError(
            "train.schedule must be 'cosine' or 'constant'. "
            f"Received: {train['schedule']!r}"
        )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=float(train["weight_decay"]),
        global_clipnorm=train["clipnorm"],
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    return optimizer


def resolve_jit_compile(value, precomputed, strategy):
    """`train.jit_compile`: `"auto"` is `LiTModel.compile`'s own choice.

    keras_lit's `"auto"` (`keras_lit.models.jit_choice`) turns XLA on for
    one replica, also on CPU; text-only steps (precomputed embeddings), whose
    many small ops XLA fuses (on 2 CPU cores the BERT-base text step ran
    1.2x faster, the demo's 1.0x to 2.3x, benchmarks/RESULTS.md), get it
    here directly. Runs on several replicas keep it off: XLA on CPU has no
    kernel for their all-gather.
    """
    if value in (True, False):
        return value
    if value != "auto":
        raise CLIError(
            "train.jit_compile must be true, false or 'auto'. "
            f"Received: {value!r}"
        )
    if precomputed and strategy.num_replicas_in_sync == 1:
        return True
    return "auto"


def check_positive_int(key, value):
    """A config value that must be a positive integer, else one line."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CLIError(f"{key} must be a positive integer. Received: {value!r}")
    return value


def check_steps_per_execution(value):
    """`train.steps_per_execution`: training steps per compiled call."""
    return check_positive_int("train.steps_per_execution", value)
