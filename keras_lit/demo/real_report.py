"""The real demo's report: a markdown table and a PNG with the photos."""

import numpy as np

from keras_lit.real import fashion_mnist
from keras_lit.real import photos

COLUMNS = (
    ("all_10", "all 10 classes"),
    ("held_out_in_10", "held-out images, 10-way"),
    ("held_out_only", "held-out classes alone"),
    ("seen_in_10", "seen classes, 10-way"),
)


def format_results(results):
    """The results table (markdown), the photo labels and the paths."""
    settings = results["settings"]
    evaluation = results["evaluation"]
    held = ", ".join(settings["held_out"])
    lines = [
        "",
        f"Zero-shot top-1 on {settings['num_test_images']} Fashion-MNIST "
        f"test images at {settings['image_size']} px; held out of LiT "
        f"training: {held}. {settings['steps']} steps x batch "
        f"{settings['batch_size']} on {settings['num_lit_pairs']} pairs.",
        "",
        "| setup | " + " | ".join(title for _, title in COLUMNS) + " |",
        "| --- |" + " --- |" * len(COLUMNS),
    ]
    for name, row in evaluation.items():
        cells = " | ".join(f"{row[key]:.3f}" for key, _ in COLUMNS)
        label = name
        if name in results["train"]:
            label = f"**{name}**"
        lines.append(f"| {label} | {cells} |")
    lines += [
        "",
        f"Photos: Lite0's own ImageNet top-1, then zero-shot among "
        f"{len(settings['photo_labels'])} labels "
        f"({', '.join(settings['photo_labels'])}):",
    ]
    for photo in results["photos"]:
        name, probability = photo["imagenet_top2"][0]
        zero_shot = ", ".join(
            f"{setup} {label}" for setup, label in photo["zero_shot"].items()
        )
        lines.append(
            f"  {photo['photo']:>13}: ImageNet {name} ({probability:.2f}); "
            f"{zero_shot}"
        )
    seconds = results["seconds"]
    lines += [
        "",
        f"Precompute {seconds['precompute']} s, total {seconds['total']} s.",
        f"Report: {results['paths']['report']}",
        *(
            f"Model {setup}: {path}"
            for setup, path in results["paths"]["models"].items()
        ),
        f"Results: {results['paths']['results']}",
    ]
    return "\n".join(lines)


def write_report_png(path, data, results):
    """Photos with their labels, Fashion-MNIST samples and the accuracies."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names, images = photos.load_photos(
        [photo["photo"] for photo in results["photos"]], size=(160, 160)
    )
    columns = len(names)
    figure = pyplot.figure(figsize=(2.3 * columns, 9.0))
    grid = figure.add_gridspec(3, columns, height_ratios=(1.25, 0.9, 1.3))
    for index, photo in enumerate(results["photos"]):
        axis = figure.add_subplot(grid[0, index])
        axis.imshow(images[index])
        axis.set_xticks([])
        axis.set_yticks([])
        imagenet = "\n".join(
            f"{name[:18]} {probability:.2f}"
            for name, probability in photo["imagenet_top2"]
        )
        zero_shot = "\n".join(
            f"{setup}: {label}" for setup, label in photo["zero_shot"].items()
        )
        axis.set_title(f"ImageNet (Lite0):\n{imagenet}", fontsize=8)
        axis.set_xlabel(f"zero-shot:\n{zero_shot}", fontsize=8)
    _fashion_row(figure, grid, data, columns)
    _accuracy_bars(figure.add_subplot(grid[2, :]), results)
    labels = ", ".join(results["settings"]["photo_labels"])
    figure.suptitle(
        "LiT on ImageNet EfficientNet-Lite0: shipped photos (zero-shot "
        f"labels among: {labels}) and Fashion-MNIST",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot.close(figure)


def _fashion_row(figure, grid, data, columns):
    shown = []
    held = list(data["held_out"])
    others = [c for c in range(len(fashion_mnist.CLASS_NAMES)) if c not in held]
    for label in held + others:
        where = np.flatnonzero(data["test_labels"] == label)
        if len(where):
            shown.append((label, where[0]))
    for index, (label, row) in enumerate(shown[:columns]):
        axis = figure.add_subplot(grid[1, index])
        axis.imshow(data["test_images"][row])
        axis.set_xticks([])
        axis.set_yticks([])
        held = " (held out)" if label in data["held_out"] else ""
        axis.set_xlabel(fashion_mnist.CLASS_NAMES[label] + held, fontsize=8)


def _accuracy_bars(axis, results):
    evaluation = results["evaluation"]
    names = list(evaluation)
    width = 0.8 / len(names)
    positions = np.arange(len(COLUMNS))
    for index, name in enumerate(names):
        values = [evaluation[name][key] for key, _ in COLUMNS]
        bars = axis.bar(
            positions + (index - (len(names) - 1) / 2) * width,
            values,
            width,
            label=name,
            hatch="//" if name == "chance" else None,
        )
        axis.bar_label(bars, fmt="%.2f", fontsize=6)
    axis.set_xticks(positions, [title for _, title in COLUMNS], fontsize=8)
    axis.set_ylabel("top-1")
    axis.set_ylim(0, 1.05)
    axis.legend(fontsize=7, ncols=len(names))
