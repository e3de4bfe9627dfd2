"""`run_demo`: LiT end to end, offline, on procedurally drawn shapes.

The six steps, each with its own progress and its module in
`keras_lit.demo`:

1. **Data** (`data`). Images of one coloured shape on a textured ground
   (`shapes`) in disjoint splits, with free-form captions (`captions`).
2. **Pretrain** (`pretrain`) a KerasCV `ResNetV2Backbone` on the labelled
   `"pretrain"` split: the stand-in for a pretrained preset. keras_lit
   ships the result (`retrain_tower=True` trains it here, then caches it).
3. **LiT-tune (Lu)** (`setups`). Precompute the locked tower's embeddings
   of the caption split once, then train a from-scratch text tower against
   them.
4. **Evaluate** (`evaluation`) zero-shot classification on held-out images
   for four label sets the captions never used as prompts, text-to-image
   retrieval, and the paper's setups on the same budget: Lu vs Uu (image
   tower unlocked) vs uu (both towers from scratch).
5. **Export** (`export_query`) the Lu model as a SavedModel and classify a
   few images through its signatures with user-facing labels.
6. **Report** (`report`): a PNG, a printed table, `results.json`, and
   every path.
"""

import contextlib
import json
import os
import time

from keras_lit.demo import pretrain
from keras_lit.demo.data import build_data
from keras_lit.demo.evaluation import evaluate
from keras_lit.demo.export_query import export_and_query
from keras_lit.demo.report import format_results
from keras_lit.demo.report import results_summary
from keras_lit.demo.report import summary_line
from keras_lit.demo.report import write_report_png
from keras_lit.demo.setups import SETUPS
from keras_lit.demo.setups import shared_settings
from keras_lit.demo.setups import train_setup
from keras_lit.layers import build_word_piece_vocabulary


def demo_settings(seed=0, smoke=False):
    """Every setting of the demo, as one dict (`smoke` shrinks it for CI)."""
    settings = shared_settings(seed, smoke) | {
        "num_lit_pairs": 2_000,
        "num_eval_images": 1_200,
        "retrieval_gallery": 500,
        "batch_size": 128,
        "steps": 225,
        "learning_rate": 1e-3,
        "setups": list(SETUPS),
        "export_samples": 12,
        "pretrain": pretrain.pretrain_settings(seed, smoke),
    }
    if smoke:
        settings.update(num_lit_pairs=256, num_eval_images=96)
        settings.update(retrieval_gallery=64, export_samples=4)
        settings.update(batch_size=32, steps=8, log_every=4)
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
    log(summary_line("Lu", setups["Lu"]))
    for setup in settings["setups"]:
        if setup == "Lu":
            continue
        with clock(setup):
            setups[setup] = train_setup(
                setup, backbone, vocabulary, data, settings, verbose
            )
            model = setups[setup]["model"]
            setups[setup].update(evaluate(model, data, settings))
        log(summary_line(setup, setups[setup]))
    lit_model = setups["Lu"]["model"]

    log("Step 5/6: exporting the SavedModel and querying it.")
    with clock("export"):
        paths["model"] = os.path.join(output_dir, "lit_model.keras")
        lit_model.save(paths["model"])
        export = export_and_query(lit_model, data, settings, output_dir)
        paths["export"] = export.pop("path")

    log("Step 6/6: writing the report.")
    results = results_summary(settings, pretrain_info, setups, export, clock)
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
