"""`keras-lit`: train, precompute, evaluate, export, classify and demo.

Every subcommand prints one clear line and exits with status 2 on a user
error (a bad config key, a missing path, an unknown tower name); `--debug`
shows the full traceback instead.
"""

import argparse
import math
import os
import sys
import time

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


class CLIError(Exception):
    """A user error, shown as one line."""


def import_tensorflow():
    # `import keras_lit` already started TF with its C++ logs hidden.
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def log(message):
    print(f"[keras-lit] {message}", flush=True)


# --- Building blocks ------------------------------------------------------


def build_image_encoder(tower):
    import keras

    from keras_lit.layers import LockedImageEncoder
    from keras_lit.models import LiTModel

    image_size = tuple(tower["image_size"]) if tower["image_size"] else None
    options = dict(
        pooling=tower["pooling"],
        head_dim=tower["head_dim"],
        locked=tower["locked"],
    )
    source = tower["source"]
    if source == "keras_cv":
        import keras_cv

        name = tower["keras_cv_class"]
        backbone_class = getattr(keras_cv.models, str(name), None)
        if backbone_class is None or not name.endswith("Backbone"):
            known = sorted(
                n for n in dir(keras_cv.models) if n.endswith("Backbone")
            )
            raise CLIError(
                f"Unknown image tower keras_cv_class={name!r}. Known KerasCV "
                f"backbones: {', '.join(known[:12])}, ..."
            )
        if image_size is None:
            raise CLIError("image_tower.image_size is required for keras_cv.")
        backbone = backbone_class(
            input_shape=(*image_size, 3), **tower["keras_cv_args"]
        )
        return LockedImageEncoder(
            backbone,
            value_range=tuple(tower["value_range"]),
            image_size=image_size,
            **options,
        )
    if source == "keras_file":
        path = _existing_path(tower["keras_file"], "image_tower.keras_file")
        loaded = keras.saving.load_model(path, compile=False)
        if isinstance(loaded, LiTModel):
            return loaded.image_encoder
        if isinstance(loaded, LockedImageEncoder):
            return loaded
        return LockedImageEncoder(
            loaded,
            value_range=tuple(tower["value_range"]),
            image_size=image_size,
            **options,
        )
    if source == "preset":
        if not tower["preset"]:
            raise CLIError("image_tower.preset must name a preset.")
        return LockedImageEncoder.from_preset(tower["preset"], **options)
    raise CLIError(
        "image_tower.source must be 'keras_cv', 'keras_file' or 'preset'. "
        f"Received: {source!r}"
    )


def build_text_encoder(tower, projection_dim, captions):
    from keras_lit.layers import TextEncoder
    from keras_lit.layers import build_word_piece_vocabulary

    source = tower["source"]
    if source == "scratch":
        log(f"Learning a WordPiece vocabulary from {len(captions)} captions")
        vocabulary = build_word_piece_vocabulary(
            captions, vocabulary_size=tower["vocabulary_size"]
        )
        return TextEncoder.from_scratch(
            vocabulary,
            projection_dim=projection_dim,
            num_layers=tower["num_layers"],
            num_heads=tower["num_heads"],
            hidden_dim=tower["hidden_dim"],
            intermediate_dim=tower["intermediate_dim"],
            sequence_length=tower["sequence_length"],
            pooling=tower["pooling"],
        )
    if source == "preset":
        if not tower["preset"]:
            raise CLIError("text_tower.preset must name a preset.")
        return TextEncoder.from_preset(
            tower["preset"],
            projection_dim=projection_dim,
            sequence_length=tower["sequence_length"],
        )
    raise CLIError(
        f"text_tower.source must be 'scratch' or 'preset'. Received: {source!r}"
    )


def _existing_path(path, what):
    if not path:
        raise CLIError(f"{what} is not set.")
    import glob

    if not glob.glob(os.path.expanduser(str(path))):
        raise CLIError(f"{what}: no such file or directory: {path}")
    return os.path.expanduser(str(path))


def read_captions(data, limit):
    """Training captions, for learning a vocabulary (no image decoding)."""
    import tensorflow as tf

    from keras_lit import data as lit_data

    fmt = data["format"]
    path = _existing_path(data["train"], "data.train")
    if fmt == "csv":
        _, captions = lit_data.read_csv_pairs(
            path,
            image_column=data["image_column"],
            text_column=data["text_column"],
        )
    elif fmt == "folder":
        _, captions = lit_data.read_folder_pairs(
            path, captions_file=data["captions_file"]
        )
    elif fmt == "tfrecord":
        files = sorted(tf.io.gfile.glob(path))
        records = tf.data.TFRecordDataset(files).take(limit)
        captions = []
        for record in records:
            example = tf.train.Example.FromString(record.numpy())
            values = example.features.feature["text"].bytes_list.value
            captions.append([v.decode("utf-8") for v in values])
    elif fmt == "precomputed":
        from keras_lit.precompute import load_precomputed

        dataset = load_precomputed(path, shuffle=False, caption="first")
        captions = [
            example["texts"].numpy().decode("utf-8")
            for example in dataset.take(limit)
        ]
    else:
        raise CLIError(
            "data.format must be 'tfrecord', 'csv', 'folder' or "
            f"'precomputed'. Received: {fmt!r}"
        )
    flat = []
    for caption in captions[:limit]:
        if isinstance(caption, (list, tuple)):
            flat.extend(caption)
        else:
            flat.append(caption)
    if not flat:
        raise CLIError(f"data.train holds no captions: {path}")
    return flat


def image_text_dataset(data, image_size, for_precompute, batch_size, seed):
    from keras_lit import data as lit_data

    path = _existing_path(data["train"], "data.train")
    options = dict(image_size=image_size)
    if for_precompute:
        options.update(shuffle=False, caption="all")
    else:
        options.update(
            shuffle=True,
            seed=seed,
            batch_size=batch_size,
            augment=data["augment"],
        )
    fmt = data["format"]
    if fmt == "tfrecord":
        return lit_data.tfrecord_dataset(path, **options)
    if fmt == "csv":
        return lit_data.csv_dataset(
            path,
            image_column=data["image_column"],
            text_column=data["text_column"],
            **options,
        )
    if fmt == "folder":
        return lit_data.folder_dataset(
            path, captions_file=data["captions_file"], **options
        )
    raise CLIError(f"Unsupported data.format={fmt!r}")


def make_optimizer(train):
    import keras

    from keras_lit.models.lit_model import NO_DECAY_NAMES

    steps = int(train["steps"])
    warmup = train["warmup_steps"]
    if warmup is None:
        warmup = max(1, int(0.03 * steps))
    learning_rate = float(train["learning_rate"])
    if train["schedule"] == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=max(1, steps - warmup),
            warmup_target=learning_rate,
            warmup_steps=warmup,
        )
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
    """`train.jit_compile`: `"auto"` also turns XLA on for text-only steps.

    Keras' `"auto"` leaves XLA off on CPU-only machines. A step that trains
    from precomputed image embeddings runs only the text tower, whose many
    small ops XLA fuses: on 2 CPU cores the BERT-base text step ran 1.2x
    faster, the demo's 1.0x to 2.3x (benchmarks/RESULTS.md). Runs on
    several replicas keep Keras' choice: XLA on CPU has no kernel for their
    all-gather.
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


# --- Subcommands ----------------------------------------------------------


def cmd_train(args):
    from keras_lit.config import load_config

    config = load_config(args.config, args.set or (), smoke=args.smoke)
    tf = import_tensorflow()
    import keras

    from keras_lit import distribute
    from keras_lit.models import LiTModel
    from keras_lit.precompute import load_precomputed
    from keras_lit.precompute import precompute_image_embeddings

    train, data = config["train"], config["data"]
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
        precomputed = data["format"] == "precomputed" or bool(
            train["precompute"] and image_encoder.locked
        )
        jit_compile = resolve_jit_compile(
            train["jit_compile"], precomputed, strategy
        )
        model.compile(
            optimizer=make_optimizer(train),
            jit_compile=jit_compile,
            steps_per_execution=check_steps_per_execution(
                train["steps_per_execution"]
            ),
        )
    if jit_compile is True:
        log("XLA compiles the training step (train.jit_compile)")
    if model.steps_per_execution > 1:
        log(
            f"{model.steps_per_execution} training steps per call "
            "(train.steps_per_execution)"
        )

    callbacks = [keras.callbacks.TerminateOnNaN()]
    # Counters filled before `fit` (a precompute run resumes its shards
    # without reading them again): saved with each backup and restored.
    counters = []
    seed = int(config["seed"])
    if data["format"] == "precomputed":
        dataset = load_precomputed(
            _existing_path(data["train"], "data.train"),
            batch_size=global_batch,
            seed=seed,
            image_encoder=image_encoder,
        )
    elif train["precompute"] and image_encoder.locked:
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
        counters.append(source.skipped_images)
        dataset = load_precomputed(
            embeddings_dir, batch_size=global_batch, seed=seed
        )
    else:
        dataset = image_text_dataset(
            data, image_encoder.image_size, False, global_batch, seed
        )
        callbacks.append(dataset.skipped_images)
    steps = int(train["steps"])
    steps_per_epoch = max(1, min(int(train["steps_per_epoch"]), steps))
    epochs = math.ceil(steps / steps_per_epoch)
    dataset = dataset.repeat()
    initial_epoch = 0
    if train["checkpoints"]:
        from keras_lit.callbacks import StepBackupAndRestore

        backup = StepBackupAndRestore(
            distribute.worker_backup_dir(
                os.path.join(output_dir, "backup"), strategy
            ),
            save_every=check_positive_int(
                "train.checkpoint_every", train["checkpoint_every"]
            ),
            total_steps=epochs * steps_per_epoch,
            counters=counters,
        )
        done = backup.restore(model)
        if done:
            log(f"Resuming after step {done} from {backup.backup_dir}")
        dataset = backup.resume_dataset(dataset)
        initial_epoch = backup.initial_epoch(steps_per_epoch)
        callbacks.append(backup)
    if train["batch_log"]:
        from keras_lit.callbacks.step_backup import log_batches

        first_step = backup.restored_step if train["checkpoints"] else 0
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
    del tf
    return 0


def load_lit_model(path):
    import keras

    from keras_lit.models import LiTModel

    path = _existing_path(path, "--model")
    if os.path.isdir(path):
        raise CLIError(
            f"--model must be a .keras file of a LiTModel; {path} is a "
            "directory (SavedModels work with `classify` only)."
        )
    model = keras.saving.load_model(path)
    if not isinstance(model, LiTModel):
        raise CLIError(
            f"--model must hold a LiTModel. Received: {type(model).__name__}"
        )
    return model


def parse_labels(text, path=None):
    labels = []
    if path:
        with open(_existing_path(path, "--labels-file"), encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
    if text:
        labels += [label.strip() for label in text.split(",") if label.strip()]
    return labels


def cmd_evaluate(args):
    import_tensorflow()
    import numpy as np

    from keras_lit import zero_shot

    model = load_lit_model(args.model)
    templates = args.template or None
    if args.task == "zero-shot":
        if args.tfds:
            results = zero_shot.evaluate_zero_shot_tfds(
                model, args.tfds, split=args.split, templates=templates
            )
        else:
            folder = _existing_path(args.class_folders, "--class-folders")
            images, labels, class_names = read_class_folders(
                folder, model.image_encoder.image_size
            )
            results = zero_shot.evaluate_zero_shot(
                model,
                {"images": images, "labels": labels},
                class_names,
                templates=templates,
            )
        keys = [k for k in results if not isinstance(results[k], dict)]
        for key in keys:
            value = results[key]
            if isinstance(value, (int, float, np.floating)):
                print(f"{key:>24s}  {float(value):.4f}")
    else:
        from keras_lit import data as lit_data

        pattern = _existing_path(args.data, "--data")
        dataset = lit_data.tfrecord_dataset(
            pattern,
            image_size=model.image_encoder.image_size,
            shuffle=False,
            caption="all",
        )
        results = zero_shot.evaluate_retrieval(model, dataset)
        for key, value in results.items():
            if isinstance(value, (int, float, np.floating)):
                print(f"{key:>24s}  {float(value):.4f}")
    return 0


def read_class_folders(folder, image_size):
    """`folder/<class name>/*.png` -> images, labels, class names."""
    import numpy as np
    import tensorflow as tf

    from keras_lit import image_ops

    class_names = sorted(
        d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))
    )
    if not class_names:
        raise CLIError(f"--class-folders has no class subfolders: {folder}")
    images, labels = [], []
    for index, name in enumerate(class_names):
        for file in sorted(os.listdir(os.path.join(folder, name))):
            if not file.lower().endswith(IMAGE_SUFFIXES):
                continue
            with open(os.path.join(folder, name, file), "rb") as f:
                image = image_ops.decode_image(f.read())
            image = image_ops.resize_and_crop(image, image_size)
            images.append(tf.round(image).numpy().astype("uint8"))
            labels.append(index)
    if not images:
        raise CLIError(f"--class-folders holds no images: {folder}")
    return np.stack(images), labels, class_names


def cmd_export(args):
    import_tensorflow()
    from keras_lit.export import export_for_serving

    model = load_lit_model(args.model)
    class_names = parse_labels(args.class_names, args.class_names_file)
    path = export_for_serving(
        model,
        args.output,
        version=args.version,
        class_names=class_names or None,
        templates=args.template or None,
    )
    log(f"Exported SavedModel version to {path}")
    return 0


def cmd_classify(args):
    import_tensorflow()
    import numpy as np

    labels = parse_labels(args.labels, args.labels_file)
    if not labels:
        raise CLIError("Give the class labels with --labels a,b,c.")
    paths = [_existing_path(p, "image") for p in args.images]
    image_bytes = []
    for path in paths:
        with open(path, "rb") as f:
            image_bytes.append(f.read())
    model_path = _existing_path(args.model, "--model")
    if os.path.isdir(model_path):
        probabilities = classify_with_saved_model(
            model_path, image_bytes, labels
        )
    else:
        probabilities = classify_with_keras(
            model_path, image_bytes, labels, args.template or None
        )
    top = min(args.top_k, len(labels))
    for path, row in zip(paths, probabilities):
        order = np.argsort(-row, kind="stable")[:top]
        print(os.path.basename(path))
        for rank, index in enumerate(order, 1):
            bar = "#" * int(round(30 * float(row[index])))
            print(f"  {rank}. {labels[index]:<30s} {row[index]:6.1%} {bar}")
    return 0


def classify_with_saved_model(path, image_bytes, labels):
    import tensorflow as tf

    from keras_lit.export import load

    versions = [d for d in os.listdir(path) if d.isdigit()]
    if versions and not os.path.exists(os.path.join(path, "saved_model.pb")):
        path = os.path.join(path, max(versions, key=int))
    signatures = load(path)
    outputs = signatures["zero_shot"](
        image_bytes=tf.constant(image_bytes), class_names=tf.constant(labels)
    )
    return outputs["probabilities"].numpy()


def classify_with_keras(path, image_bytes, labels, templates):
    import numpy as np
    import tensorflow as tf

    from keras_lit import image_ops
    from keras_lit.zero_shot import build_zero_shot_weights

    model = load_lit_model(path)
    size = model.image_encoder.image_size
    # Round like the data pipeline and the SavedModel do.
    images = np.stack(
        [
            tf.round(
                image_ops.resize_and_crop(image_ops.decode_image(b), size)
            ).numpy()
            for b in image_bytes
        ]
    )
    weights = build_zero_shot_weights(model, labels, templates, verbose=False)
    logits = float(model.temperature) * model.encode_images(images) @ weights.T
    logits = logits - logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def cmd_demo(args):
    import_tensorflow()
    from keras_lit.demo import run_demo

    start = time.time()
    results = run_demo(args.output_dir, smoke=args.smoke, seed=args.seed)
    log(f"Demo finished in {time.time() - start:.0f} s")
    del results
    return 0


def cmd_app(args):
    import_tensorflow()
    from keras_lit import app

    return app.run(args) or 0


def cmd_precompute(args):
    import_tensorflow()
    from keras_lit import precompute

    precompute.run(args)
    return 0


def cmd_convert(args):
    import_tensorflow()
    from keras_lit.data import convert

    convert.run(args)
    return 0


# --- Entry point ----------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-lit",
        description="LiT: lock an image model, teach a text model to match.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a LiT model")
    train.add_argument("--config", help="YAML file or .py with get_config()")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.steps=500 (repeatable)",
    )
    train.add_argument(
        "--smoke", action="store_true", help="shrink the run for a quick check"
    )
    train.add_argument("--quiet", action="store_true", help="one line/epoch")
    train.set_defaults(function=cmd_train)

    from keras_lit.data import convert
    from keras_lit.precompute import build_parser as precompute_parser

    precompute = commands.add_parser(
        "precompute", help="write locked image embeddings to TFRecords"
    )
    precompute_parser(precompute)
    precompute.set_defaults(function=cmd_precompute)

    convert_command = commands.add_parser(
        "convert", help="convert CSV / image folders to TFRecord shards"
    )
    convert.build_parser(convert_command)
    convert_command.set_defaults(function=cmd_convert)

    evaluate = commands.add_parser("evaluate", help="zero-shot or retrieval")
    evaluate.add_argument("--model", required=True, help="a .keras LiTModel")
    evaluate.add_argument(
        "--task", choices=["zero-shot", "retrieval"], default="zero-shot"
    )
    evaluate.add_argument("--tfds", help="a tfds classification dataset")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument(
        "--class-folders", help="a folder with one subfolder per class"
    )
    evaluate.add_argument("--data", help="TFRecord shards (retrieval)")
    evaluate.add_argument(
        "--template", action="append", help="prompt template with {}"
    )
    evaluate.set_defaults(function=cmd_evaluate)

    export = commands.add_parser("export", help="SavedModel for TF Serving")
    export.add_argument("--model", required=True, help="a .keras LiTModel")
    export.add_argument("--output", required=True, help="export directory")
    export.add_argument("--version", type=int, default=None)
    export.add_argument("--class-names", help="comma-separated labels")
    export.add_argument("--class-names-file", help="one label per line")
    export.add_argument("--template", action="append")
    export.set_defaults(function=cmd_export)

    classify = commands.add_parser(
        "classify", help="zero-shot classify images into given labels"
    )
    classify.add_argument("images", nargs="+", help="image files")
    classify.add_argument(
        "--model", required=True, help="a .keras file or a SavedModel export"
    )
    classify.add_argument("--labels", help="comma-separated labels")
    classify.add_argument("--labels-file", help="one label per line")
    classify.add_argument("--template", action="append")
    classify.add_argument("--top-k", type=int, default=5)
    classify.set_defaults(function=cmd_classify)

    from keras_lit.app import build_parser as app_parser

    app = commands.add_parser(
        "app", help="a web page to try a SavedModel: zero-shot and search"
    )
    app_parser(app)
    app.set_defaults(function=cmd_app)

    demo = commands.add_parser("demo", help="the offline embedded demo")
    demo.add_argument("--output-dir", default="lit_runs/demo")
    demo.add_argument("--smoke", action="store_true")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(function=cmd_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        return args.function(args)
    from keras_lit.config import ConfigError

    try:
        return args.function(args)
    except (CLIError, ConfigError) as error:
        print(f"keras-lit: error: {error}", file=sys.stderr)
    except (ValueError, OSError, ImportError) as error:
        message = str(error).strip().splitlines()[0] if str(error) else ""
        print(
            f"keras-lit: error: {type(error).__name__}: {message}",
            file=sys.stderr,
        )
    except KeyboardInterrupt:
        print("keras-lit: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
