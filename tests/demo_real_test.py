"""`keras-lit demo --real` end to end on a tiny subset, and its errors."""

import json
import os

import numpy as np
import pytest

from keras_lit.cli import main
from keras_lit.demo import real
from keras_lit.real import fashion_mnist

needs_fashion_mnist = pytest.mark.skipif(
    not os.path.isfile(
        os.path.join(fashion_mnist.DEFAULT_DIR, fashion_mnist.FILES["test"][0])
    ),
    reason=fashion_mnist.INSTALL_HINT,
)


@pytest.mark.large
@needs_fashion_mnist
def test_real_demo_smoke_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    output = tmp_path / "run"
    status = main(
        [
            "demo",
            "--real",
            "--smoke",
            "--output-dir",
            str(output),
            "--labels",
            "cat, coffee,shoe",
        ]
    )
    assert status in (0, None)
    results = json.loads((output / "results.json").read_text())
    assert (output / "report.png").stat().st_size > 10_000
    assert list(results["paths"]["models"]) == ["Lu"]
    assert (output / "Lu.keras").is_file()
    assert set(results["evaluation"]) == {
        "Lu",
        "LU",
        "Uu",
        "linear probe",
        "chance",
    }
    for row in results["evaluation"].values():
        assert all(0.0 <= value <= 1.0 for value in row.values())
    assert results["evaluation"]["chance"]["held_out_only"] == 1 / 3
    photos = {photo["photo"]: photo for photo in results["photos"]}
    assert photos["coffee"]["imagenet_top2"][0][0] == "espresso"
    for photo in photos.values():
        assert set(photo["zero_shot"]) == {"Lu", "LU", "Uu"}
        assert set(photo["zero_shot"].values()) <= {"cat", "coffee", "shoe"}
    # The Lite0 preset was written once, into the user's cache.
    presets = tmp_path / "cache" / "keras_lit" / "presets"
    assert os.listdir(presets) == ["efficientnet_lite0_imagenet"]
    printed = capsys.readouterr().out
    assert "| **LU** |" in printed and "held-out classes alone" in printed


@needs_fashion_mnist
def test_held_out_classes_never_reach_lit_training():
    settings = real.real_demo_settings(smoke=True)
    data = real.build_data(settings)
    held = data["held_out"]
    assert len(held) >= 3
    assert not np.isin(data["lit_labels"], held).any()
    words = {
        word
        for index in held
        for synonym in fashion_mnist.SYNONYMS[index]
        for word in synonym.split()
    }
    seen_words = {
        word
        for index in set(range(10)) - set(held)
        for synonym in fashion_mnist.SYNONYMS[index]
        for word in synonym.split()
    }
    template_words = {
        word
        for template in fashion_mnist.TEMPLATES
        for word in template.split()
    }
    held_only = words - seen_words - template_words
    assert {"trousers", "bag", "boot"} <= held_only
    for caption in data["lit_captions"]:
        assert not (set(caption.split()) & held_only), caption
    # The probe covers every class; test images include held-out ones.
    assert set(data["probe_labels"]) == set(range(10))
    assert np.isin(data["test_labels"], held).any()


def test_accuracies_and_probe_against_numpy():
    scores = np.array(
        [[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.4, 0.1, 0.5]]
    )
    labels = np.array([0, 2, 2, 1])
    result = real.accuracies(scores, labels, held_out=[1, 2])
    assert result["all_10"] == 0.5  # rows 0 and 1
    assert result["held_out_in_10"] == 1 / 3  # rows 1-3: only row 1
    # Among classes 1 and 2: row 1 -> 2, row 2 -> 1, row 3 -> 2.
    assert result["held_out_only"] == 1 / 3
    assert result["seen_in_10"] == 1.0


def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys):
    assert main(["demo", "--labels", "cat"]) == 2
    assert "--labels goes with --real" in capsys.readouterr().err
    monkeypatch.setenv(fashion_mnist.DIR_ENV, str(tmp_path))
    status = main(["demo", "--real", "--output-dir", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert status == 2
    assert len(error.strip().splitlines()) == 1
    assert "apt-get install dataset-fashion-mnist" in error
