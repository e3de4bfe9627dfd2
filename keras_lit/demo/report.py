"""Step 6 of the demo: the results dict, a text table and a PNG."""

import os

import numpy as np

from keras_lit.demo import captions
from keras_lit.demo.setups import SETUP_DESCRIPTIONS


def results_summary(settings, pretrain_info, setups, export, clock):
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


def summary_line(setup, run):
    scores = ", ".join(
        f"{name} {values['top1']:.3f}"
        for name, values in run["zero_shot"].items()
    )
    return f"  {setup} zero-shot top-1: {scores}"
