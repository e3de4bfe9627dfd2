"""`run_demo`: LiT end to end, offline, on procedurally drawn shapes.

The six steps, each with its own progress:

1. **Data.** Images of one coloured shape on a textured ground
   (`keras_lit.demo.shapes`) in disjoint splits, with free-form captions
   (`keras_lit.demo.captions`).
2. **Pretrain** a KerasCV `ResNetV2Backbone` on the labelled `"pretrain"`
   split: the stand-in for a pretrained preset. keras_lit ships the result
   (`retrain_tower=True` trains it here, then caches it on disk).
3. **LiT-tune (Lu).** Precompute the locked tower's embeddings of the caption
   split once, then train a from-scratch text tower against them.
4. **Evaluate** zero-shot classification on held-out images for four label
   sets the captions never used as prompts, text-to-image retrieval, and the
   paper's setups on the same budget: Lu vs Uu (image tower unlocked) vs uu
   (both towers from scratch).
5. **Export** the Lu model as a SavedModel and classify a few images through
   its signatures with user-facing labels.
6. **Report**: a PNG, a printed table, `results.json`, and every path.
"""

import contextlib
import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from keras_lit.demo import captions
from keras_lit.demo import pretrain
from keras_lit.demo import shapes
from keras_lit.demo.progress import ProgressBar
from keras_lit.layers import LockedImageEncoder
from keras_lit.layers import TextEncoder
from keras_lit.layers import build_word_piece_vocabulary
from keras_lit.models import LiTModel
from keras_lit.models.lit_model import NO_DECAY_NAMES
from keras_lit.zero_shot import build_zero_shot_weights

SETUPS = ("Lu", "Uu", "uu")
SETUP_DESCRIPTIONS = {
    "Lu": "image tower pretrained and locked (LiT)",
    "Uu": "image tower pretrained, fine-tuned",
    "uu": "both towers from scratch",
}


def demo_settings(seed=0, smoke=False):
    """Every setting of the demo, as one dict (`smoke` shrinks it for CI)."""
    settings = {
        "seed": int(seed),
        "smoke": bool(smoke),
        "num_lit_pairs": 2_000,
        "num_eval_images": 1_200,
        "retrieval_gallery": 500,
        "vocabulary_size": 400,
        "text_tower": {
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 64,
            "intermediate_dim": 128,
            "sequence_length": 16,
        },
        "batch_size": 128,
        "steps": 225,
        "log_every": 15,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "warmup_fraction": 0.05,
        "temperature_init": 10.0,
        "setups": list(SETUPS),
        "export_samples": 12,
        "pretrain": pretrain.pretrain_settings(seed, smoke),
    }
    if smoke:
        settings.update(
            {
                "num_lit_pairs": 256,
                "num_eval_images": 96,
                "retrieval_gallery": 64,
                "batch_size": 32,
                "steps": 8,
                "log_every": 4,
                "export_samples": 4,
            }
        )
    return settings


def run_demo(
    output_dir="lit_runs/demo",
    smoke=False,
    seed=0,
    verbose=True,
    cache_dir=None,
    retrain_tower=False,
):
    """Runs the whole demo and returns its results and the paths written.

    Args:
        output_dir: directory for the report, results, model and export.
        smoke: bool. A tiny run for CI (under a minute); its numbers mean
            nothing. Defaults to `False`.
        seed: int. Seeds the data and every initialisation.
        verbose: bool. Print progress and the results table.
        cache_dir: where the pretrained image tower is cached. Defaults to
            `<output_dir>/cache`.
        retrain_tower: bool. Pretrain the image tower here even though
            keras_lit ships one (or it is cached). Defaults to `False`.

    Returns:
        A dict with `"zero_shot"` (top-1 and chance per label set, Lu),
        `"retrieval"`, `"setups"` (Lu/Uu/uu), `"pretrain"`, `"export"`,
        `"seconds"`, `"settings"` and `"paths"`.

    Example:
    >>> results = run_demo("lit_runs/demo", smoke=True)  # doctest: +SKIP
    >>> results["zero_shot"]["shape"]["top1"]  # doctest: +SKIP
    """
    start, start_cpu = time.time(), time.process_time()
    settings = demo_settings(seed, smoke)
    output_dir = os.path.abspath(output_dir)
    cache_dir = os.path.abspath(cache_dir or os.path.join(output_dir, "cache"))
    os.makedirs(output_dir, exist_ok=True)
    log = _logger(verbose)
    clock = _Stopwatch()

    log("Step 1/6: drawing the data (procedural shapes, offline).")
    with clock("data"):
        data = build_data(settings, verbose)

    log("Step 2/6: the pretrained image tower (stage 1, shipped or cached).")
    with clock("pretrain"):
        backbone, pretrain_info = pretrain.pretrain_backbone(
            settings["pretrain"],
            cache_dir,
            eval_images=data["eval_images"],
            eval_labels=data["eval_labels"],
            verbose=verbose,
            retrain=retrain_tower,
        )
    if pretrain_info.get("accuracy"):
        accuracy = ", ".join(
            f"{k} {v:.3f}" for k, v in pretrain_info["accuracy"].items()
        )
        log(f"  supervised held-out accuracy: {accuracy}")

    log("Step 3/6: LiT-tuning a text tower against the locked image tower.")
    vocabulary = build_word_piece_vocabulary(
        data["lit_captions"], settings["vocabulary_size"]
    )
    setups = {}
    paths = {
        "output_dir": output_dir,
        "pretrained_backbone": pretrain_info["path"],
    }
    paths["precomputed_embeddings"] = os.path.join(output_dir, "precomputed")
    with clock("Lu"):
        setups["Lu"] = train_setup(
            "Lu",
            backbone,
            vocabulary,
            data,
            settings,
            verbose,
            precompute_dir=paths["precomputed_embeddings"],
        )
        setups["Lu"].update(evaluate(setups["Lu"]["model"], data, settings))

    log(
        "Step 4/6: evaluating zero-shot and retrieval, then Uu and uu on the "
        "same budget for the setups table."
    )
    log(_summary_line("Lu", setups["Lu"]))
    for setup in settings["setups"]:
        if setup == "Lu":
            continue
        with clock(setup):
            setups[setup] = train_setup(
                setup, backbone, vocabulary, data, settings, verbose
            )
            model = setups[setup]["model"]
            setups[setup].update(evaluate(model, data, settings))
        log(_summary_line(setup, setups[setup]))
    lit_model = setups["Lu"]["model"]

    log("Step 5/6: exporting the SavedModel and querying it.")
    with clock("export"):
        paths["model"] = os.path.join(output_dir, "lit_model.keras")
        lit_model.save(paths["model"])
        export = export_and_query(lit_model, data, settings, output_dir)
        paths["export"] = export.pop("path")

    log("Step 6/6: writing the report.")
    results = _results(settings, pretrain_info, setups, export, clock)
    paths["report_png"] = os.path.join(output_dir, "report.png")
    paths["results_json"] = os.path.join(output_dir, "results.json")
    write_report_png(paths["report_png"], data, setups, pretrain_info, export)
    results["seconds"] = round(time.time() - start, 1)
    results["cpu_seconds_total"] = round(time.process_time() - start_cpu, 1)
    results["paths"] = paths
    with open(paths["results_json"], "w") as file:
        json.dump(results, file, indent=2)
    if verbose:
        print(format_results(results), flush=True)
    return results


# --- Step 1: data ------------------------------------------------------------


def build_data(settings, verbose=True):
    """The caption split for LiT and the held-out evaluation split."""
    seed = settings["seed"]
    lit_images, lit_labels = _generate(
        seed, "lit", settings["num_lit_pairs"], "  LiT pairs", verbose
    )
    eval_images, eval_labels = _generate(
        seed, "eval", settings["num_eval_images"], "  held-out", verbose
    )
    eval_captions, eval_mentions = [], []
    for row in range(len(eval_images)):
        text, mentioned = captions.caption(
            seed,
            "eval",
            row,
            {name: eval_labels[name][row] for name in eval_labels},
            return_mentions=True,
        )
        eval_captions.append(text)
        eval_mentions.append(mentioned)
    return {
        "lit_images": lit_images,
        "lit_labels": lit_labels,
        "lit_captions": captions.captions_for(seed, "lit", lit_labels),
        "eval_images": eval_images,
        "eval_labels": eval_labels,
        "eval_captions": eval_captions,
        "eval_mentions": eval_mentions,
    }


def _generate(seed, split, count, description, verbose):
    from tqdm import tqdm

    chunk = 250
    images, labels = [], []
    with tqdm(total=count, desc=description, disable=not verbose) as bar:
        for start in range(0, count, chunk):
            part = min(chunk, count - start)
            chunk_images, chunk_labels = shapes.generate_images(
                seed, split, part, start=start
            )
            images.append(chunk_images)
            labels.append(chunk_labels)
            bar.update(part)
    return np.concatenate(images), {
        name: np.concatenate([part[name] for part in labels])
        for name in shapes.ATTRIBUTES
    }


# --- Step 3: training the three setups ---------------------------------------


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
    model = LiTModel(
        image_encoder,
        text_encoder,
        temperature_init=settings["temperature_init"],
    )
    steps = settings["steps"]
    warmup = max(1, int(settings["warmup_fraction"] * steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(steps - warmup, 1),
        warmup_target=settings["learning_rate"],
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=settings["weight_decay"],
        global_clipnorm=1.0,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    model.compile(
        optimizer=optimizer,
        steps_per_execution=min(settings["log_every"], 16),
    )
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


# --- Step 4: evaluation ------------------------------------------------------


def evaluate(model, data, settings):
    """Zero-shot top-1 per label set and text-to-image retrieval."""
    # Equal batches: one trace of the image tower.
    batch_size = math.gcd(len(data["eval_images"]), 240)
    image_embeddings = model.encode_images(
        data["eval_images"], batch_size=batch_size
    )
    zero_shot = {}
    for name, class_names in captions.LABEL_SETS.items():
        weights = build_zero_shot_weights(
            model,
            class_names,
            list(captions.PROMPT_TEMPLATES[name]),
            verbose=0,
        )
        predictions = np.argmax(image_embeddings @ weights.T, axis=-1)
        zero_shot[name] = {
            "top1": float(np.mean(predictions == data["eval_labels"][name])),
            "chance": 1.0 / len(class_names),
            "num_classes": len(class_names),
            "num_images": int(len(predictions)),
        }
    mean = float(np.mean([v["top1"] for v in zero_shot.values()]))
    retrieval = evaluate_text_to_image(model, image_embeddings, data, settings)
    return {"zero_shot": zero_shot, "zero_shot_mean": mean, **retrieval}


def evaluate_text_to_image(model, image_embeddings, data, settings):
    """Text-to-image Recall@1 on a gallery of held-out images.

    Captions are ambiguous ("a tiny black star" fits several images), so
    besides the usual instance Recall@1 (the caption's own image ranked
    first) this reports its ceiling (a perfect model that picks uniformly
    among the images fitting the caption) and the attribute Recall@1 (the
    first image has every attribute the caption names).
    """
    gallery = min(settings["retrieval_gallery"], len(image_embeddings))
    texts = data["eval_captions"][:gallery]
    text_embeddings = model.encode_texts(texts)
    scores = text_embeddings @ image_embeddings[:gallery].T
    top = np.argmax(scores, axis=-1)
    labels = {k: v[:gallery] for k, v in data["eval_labels"].items()}
    instance, ceiling, attribute = [], [], []
    for row in range(gallery):
        mentioned = data["eval_mentions"][row]
        fits = np.ones(gallery, bool)
        for name in mentioned:
            fits &= labels[name] == labels[name][row]
        instance.append(top[row] == row)
        ceiling.append(1.0 / fits.sum())
        attribute.append(fits[top[row]])
    return {
        "retrieval": {
            "text_to_image_recall_at_1": float(np.mean(instance)),
            "recall_at_1_ceiling": float(np.mean(ceiling)),
            "attribute_recall_at_1": float(np.mean(attribute)),
            "chance": 1.0 / gallery,
            "gallery_size": int(gallery),
        }
    }


# --- Step 5: export ----------------------------------------------------------


def export_and_query(model, data, settings, output_dir):
    """Exports the SavedModel, reloads it and classifies a few images.

    The export bakes the shape labels in (`classify`) and answers any other
    label set given at query time (`zero_shot`), here the colours: both take
    PNG bytes and plain strings, as a serving client would send them.
    """
    from keras_lit import export

    samples = settings["export_samples"]
    images = data["eval_images"][:samples]
    image_bytes = tf.constant(
        [tf.io.encode_png(image).numpy() for image in images]
    )
    shape_names = captions.LABEL_SETS["shape"]
    colour_names = captions.LABEL_SETS["colour"]
    export_dir = os.path.join(output_dir, "export")
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)  # the demo's own output: one version
    path = export.export_for_serving(
        model,
        export_dir,
        class_names=shape_names,
        templates=list(captions.PROMPT_TEMPLATES["shape"]),
        top_k=3,
    )
    signatures = export.load(path)
    classified = signatures["classify"](image_bytes=image_bytes)
    answered = signatures["zero_shot"](
        image_bytes=image_bytes, class_names=tf.constant(colour_names)
    )
    queries = {}
    for name, class_names, outputs, top in (
        ("shape", shape_names, classified, "top_classes"),
        ("colour", colour_names, answered, "top_class"),
    ):
        top_class = outputs[top].numpy()
        if top_class.ndim == 2:
            top_class = top_class[:, 0]
        queries[name] = {
            "signature": "classify" if name == "shape" else "zero_shot",
            "class_names": class_names,
            "top_class": [label.decode("utf-8") for label in top_class],
            "top_probability": [
                float(p) for p in outputs["probabilities"].numpy().max(-1)
            ],
            "truth": [
                class_names[i] for i in data["eval_labels"][name][:samples]
            ],
        }
        queries[name]["correct"] = int(
            sum(
                a == b
                for a, b in zip(
                    queries[name]["top_class"], queries[name]["truth"]
                )
            )
        )
    return {
        "path": path,
        "queries": queries,
        "signatures": sorted(signatures),
    }


# --- Step 6: report ----------------------------------------------------------


def _results(settings, pretrain_info, setups, export, clock):
    lu = setups["Lu"]
    table = {}
    for setup, run in setups.items():
        table[setup] = {
            "description": SETUP_DESCRIPTIONS[setup],
            "zero_shot_top1": {
                name: values["top1"]
                for name, values in run["zero_shot"].items()
            },
            "zero_shot_mean": run["zero_shot_mean"],
            "retrieval": run["retrieval"],
            "final_loss": run["history"]["loss"][-1],
            "temperature": run["temperature"],
            "train_seconds": run["train_seconds"],
            "precompute_seconds": run["precompute_seconds"],
        }
    means = {setup: row["zero_shot_mean"] for setup, row in table.items()}
    ordering = {}
    if {"Lu", "Uu", "uu"} <= set(means):
        ordering = {
            "Lu >= Uu": bool(means["Lu"] >= means["Uu"]),
            "Lu > uu": bool(means["Lu"] > means["uu"]),
        }
    return {
        "zero_shot": lu["zero_shot"],
        "retrieval": lu["retrieval"],
        "setups": table,
        "setup_ordering_on_mean_zero_shot": ordering,
        "pretrain": {
            key: pretrain_info.get(key)
            for key in ("cached", "source", "seconds", "accuracy", "path")
        },
        "export": export,
        # Wall time depends on the machine's load; CPU time much less so.
        "wall_seconds": clock.wall,
        "cpu_seconds": clock.cpu,
        "settings": settings,
        "load_average": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
    }


def format_results(results):
    """The results as a plain-text table."""
    names = list(captions.LABEL_SETS)
    lines = ["", "Zero-shot top-1 on held-out images (prompts never trained):"]
    header = f"  {'setup':<6}" + "".join(f"{n:>12}" for n in names)
    header += f"{'mean':>8}{'R@1':>7}{'attrR@1':>9}{'train s':>9}"
    lines.append(header)
    lu_zero_shot = results["zero_shot"]
    chance = f"  {'chance':<6}" + "".join(
        f"{lu_zero_shot[n]['chance']:>12.3f}" for n in names
    )
    lines.append(chance)
    for setup, row in results["setups"].items():
        line = f"  {setup:<6}" + "".join(
            f"{row['zero_shot_top1'][n]:>12.3f}" for n in names
        )
        retrieval = row["retrieval"]
        line += f"{row['zero_shot_mean']:>8.3f}"
        line += f"{retrieval['text_to_image_recall_at_1']:>7.3f}"
        line += f"{retrieval['attribute_recall_at_1']:>9.3f}"
        line += f"{row['train_seconds']:>9.1f}"
        lines.append(line + f"   {row['description']}")
    retrieval = results["retrieval"]
    lines.append(
        f"  Retrieval (Lu, text->image, {retrieval['gallery_size']} images): "
        f"R@1 {retrieval['text_to_image_recall_at_1']:.3f} (ceiling "
        f"{retrieval['recall_at_1_ceiling']:.3f} for ambiguous captions, "
        f"chance {retrieval['chance']:.4f}); attribute R@1 "
        f"{retrieval['attribute_recall_at_1']:.3f}"
    )
    ordering = results["setup_ordering_on_mean_zero_shot"]
    if ordering:
        lines.append(
            "  Setups ordering (mean zero-shot): "
            + ", ".join(
                f"{k}: {'yes' if v else 'NO'}" for k, v in ordering.items()
            )
        )
    lines.append("")
    load = results["load_average"][0]
    lines.append(
        f"Finished in {results['seconds']:.0f} s wall, "
        f"{results['cpu_seconds_total']:.0f} s CPU (load average {load:.1f} "
        f"on {results['cpu_count']} cores). Written:"
    )
    for key, path in results["paths"].items():
        lines.append(f"  {key:<20} {path}")
    return "\n".join(lines)


def write_report_png(path, data, setups, pretrain_info, export):
    """Sample images with their top zero-shot labels, plus training curves.

    Top: held-out images labelled by the exported SavedModel (shape from
    `classify`, colour from `zero_shot`), green when both are right. Bottom:
    the stage-1 loss, the contrastive loss of each setup, and zero-shot top-1
    per label set and setup against chance.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queries = export["queries"]
    samples = len(queries["shape"]["top_class"])
    columns = max(min(samples, 6), 3)
    rows = -(-samples // columns)
    figure = plt.figure(figsize=(13, 2.3 * rows + 3.6))
    grid = figure.add_gridspec(
        rows + 1, columns, height_ratios=[1] * rows + [1.6]
    )
    for index in range(samples):
        axis = figure.add_subplot(grid[index // columns, index % columns])
        axis.imshow(data["eval_images"][index])
        axis.set_xticks([])
        axis.set_yticks([])
        lines = []
        correct = True
        for name in ("shape", "colour"):
            query = queries[name]
            label = query["top_class"][index]
            correct &= label == query["truth"][index]
            lines.append(f"{label} {query['top_probability'][index]:.2f}")
        axis.set_title(
            "\n".join(lines), fontsize=8, color="green" if correct else "red"
        )
    bottom = grid[rows, :].subgridspec(1, 3, wspace=0.3)

    stage1 = figure.add_subplot(bottom[0])
    history = pretrain_info.get("history", {})
    if history.get("loss"):
        epochs = range(1, len(history["loss"]) + 1)
        stage1.plot(epochs, history["loss"], "o-")
    stage1.set_title("Stage 1: supervised pretraining", fontsize=9)
    stage1.set_xlabel("epoch")
    stage1.set_ylabel("loss")

    lit = figure.add_subplot(bottom[1])
    for setup, run in setups.items():
        lit.plot(run["steps"], run["history"]["loss"], label=setup)
    lit.set_title("Contrastive loss, same budget", fontsize=9)
    lit.set_xlabel("step")
    lit.legend(fontsize=8)

    bars = figure.add_subplot(bottom[2])
    names = list(captions.LABEL_SETS)
    width = 0.8 / max(len(setups), 1)
    for offset, (setup, run) in enumerate(setups.items()):
        positions = np.arange(len(names)) + (offset - 1) * width
        values = [run["zero_shot"][name]["top1"] for name in names]
        bars.bar(positions, values, width, label=setup)
    for position, name in enumerate(names):
        chance = 1.0 / len(captions.LABEL_SETS[name])
        bars.hlines(chance, position - 0.45, position + 0.45, "k", ":")
    bars.set_xticks(range(len(names)), names, fontsize=8)
    bars.set_title("Zero-shot top-1 (dotted: chance)", fontsize=9)
    bars.set_ylim(0, 1.15)
    bars.legend(fontsize=7, ncols=len(setups), loc="upper center")

    figure.suptitle(
        "LiT demo: held-out images labelled zero-shot by the exported model "
        "(shape, colour)",
        fontsize=10,
    )
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)


def _summary_line(setup, run):
    scores = ", ".join(
        f"{name} {values['top1']:.3f}"
        for name, values in run["zero_shot"].items()
    )
    return f"  {setup} zero-shot top-1: {scores}"


class _Stopwatch:
    """Wall and process CPU seconds per named phase."""

    def __init__(self):
        self.wall = {}
        self.cpu = {}

    @contextlib.contextmanager
    def __call__(self, name):
        wall, cpu = time.time(), time.process_time()
        yield
        self.wall[name] = round(time.time() - wall, 1)
        self.cpu[name] = round(time.process_time() - cpu, 1)


def _logger(verbose):
    def log(message):
        if verbose:
            print(message, flush=True)

    return log
