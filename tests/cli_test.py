"""`keras-lit` end to end through real subprocesses, in smoke mode."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

COLOURS = {
    "red": (230, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 230),
    "yellow": (230, 230, 30),
}


def png(colour, seed):
    rng = np.random.default_rng(seed)
    pixels = np.clip(
        np.array(colour)[None, None] + rng.normal(0, 10, (40, 48, 3)), 0, 255
    ).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def run_cli(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_lit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import tensorflow as tf

    from keras_lit.data import serialize_example

    root = tmp_path_factory.mktemp("cli")
    records = root / "data"
    records.mkdir()
    with tf.io.TFRecordWriter(str(records / "train-0.tfrecord")) as writer:
        for index in range(32):
            name = list(COLOURS)[index % 4]
            writer.write(
                serialize_example(
                    png(COLOURS[name], index),
                    [f"a {name} picture", f"something {name}"],
                )
            )
    folders = root / "classes"
    for name, colour in COLOURS.items():
        (folders / name).mkdir(parents=True)
        for index in range(2):
            (folders / name / f"{index}.png").write_bytes(
                png(colour, 100 + index)
            )
    config = {
        "output_dir": str(root / "run"),
        "image_tower": {
            "keras_cv_args": {
                "stackwise_filters": [8, 16],
                "stackwise_blocks": [2, 2],
                "stackwise_strides": [1, 2],
                "include_rescaling": True,
            },
            "image_size": [32, 32],
        },
        "text_tower": {"vocabulary_size": 100},
        "data": {"format": "tfrecord", "train": str(records / "*.tfrecord")},
        "train": {"steps_per_execution": 2},
    }
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = run_cli("train", "--config", str(config_path), "--smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        "root": root,
        "config": config_path,
        "records": str(records / "*.tfrecord"),
        "folders": folders,
        "model": root / "run" / "model.keras",
        "train_output": result.stdout + result.stderr,
    }


def test_train_writes_a_model_and_logs(workspace):
    assert workspace["model"].exists()
    output = workspace["train_output"]
    assert "Final" in output and "loss=" in output
    # TF's C++ start-up noise is silenced.
    assert "absl::InitializeLog" not in output
    assert "oneDNN" not in output
    assert (workspace["root"] / "run" / "embeddings").is_dir()
    assert (workspace["root"] / "run" / "tensorboard").is_dir()
    # Text-only steps (precomputed embeddings) compile with XLA on "auto".
    assert "XLA compiles the training step" in output
    assert "2 training steps per call" in output


def test_evaluate_zero_shot_and_retrieval(workspace):
    result = run_cli(
        "evaluate",
        "--model",
        str(workspace["model"]),
        "--class-folders",
        str(workspace["folders"]),
    )
    assert result.returncode == 0, result.stderr
    assert "top1" in result.stdout
    result = run_cli(
        "evaluate",
        "--model",
        str(workspace["model"]),
        "--task",
        "retrieval",
        "--data",
        workspace["records"],
    )
    assert result.returncode == 0, result.stderr
    assert "recall" in result.stdout.lower()


def test_export_and_classify_from_both_formats(workspace, tmp_path):
    export_dir = tmp_path / "export"
    result = run_cli(
        "export",
        "--model",
        str(workspace["model"]),
        "--output",
        str(export_dir),
        "--class-names",
        "red,green,blue,yellow",
    )
    assert result.returncode == 0, result.stderr
    assert (export_dir / "1" / "saved_model.pb").exists()
    image = tmp_path / "red.png"
    image.write_bytes(png(COLOURS["red"], 7))
    tables = []
    for model in (workspace["model"], export_dir):
        result = run_cli(
            "classify",
            str(image),
            "--model",
            str(model),
            "--labels",
            "red,green,blue,yellow",
        )
        assert result.returncode == 0, result.stderr
        assert "red.png" in result.stdout and "1. " in result.stdout
        tables.append(result.stdout)
    # The SavedModel and the .keras model rank the labels the same way.
    first_rank = [line.split()[1] for line in tables[0].splitlines()[1:]]
    second_rank = [line.split()[1] for line in tables[1].splitlines()[1:]]
    assert first_rank == second_rank


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["--set", "train.stepz=3"], "Unknown config key 'train.stepz'"),
        (["--set", "data.train=/no/such/dir/*.tfrecord"], "no such file"),
        (
            ["--set", "image_tower.keras_cv_class=ResNet99Backbone"],
            "Unknown image tower keras_cv_class='ResNet99Backbone'",
        ),
        (
            ["--set", "train.steps_per_execution=0"],
            "train.steps_per_execution must be a positive integer",
        ),
    ],
)
def test_bad_config_gives_one_line_error(workspace, overrides, message):
    result = run_cli(
        "train", "--config", str(workspace["config"]), "--smoke", *overrides
    )
    assert result.returncode == 2
    errors = [
        line for line in result.stderr.splitlines() if "keras-lit:" in line
    ]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_model_path_is_one_line(tmp_path):
    result = run_cli(
        "classify",
        "x.png",
        "--model",
        str(tmp_path / "nope.keras"),
        "--labels",
        "a,b",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no such file" in result.stderr


def test_jit_compile_auto_turns_xla_on_for_text_only_steps():
    import tensorflow as tf

    from keras_lit.cli import CLIError
    from keras_lit.cli import resolve_jit_compile
    from keras_lit.distribute import get_strategy

    strategy = tf.distribute.get_strategy()
    assert resolve_jit_compile("auto", True, strategy) is True
    assert resolve_jit_compile("auto", False, strategy) == "auto"
    assert resolve_jit_compile(False, True, strategy) is False
    assert resolve_jit_compile(True, False, strategy) is True
    with pytest.raises(CLIError, match="train.jit_compile must be"):
        resolve_jit_compile("maybe", True, strategy)
    # XLA on CPU cannot all-gather across replicas: keep Keras' choice.
    mirrored = get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert resolve_jit_compile("auto", True, mirrored) == "auto"


def test_each_registered_subcommand_is_one_module():
    import importlib

    from keras_lit.cli import COMMANDS
    from keras_lit.cli import build_parser

    modules = [importlib.import_module(name) for name in COMMANDS]
    names = [module.NAME for module in modules]
    assert len(set(names)) == len(names) == len(COMMANDS)
    assert all(
        module.HELP and callable(module.add_arguments) for module in modules
    )
    args = build_parser().parse_args(["demo", "--smoke"])
    demo = importlib.import_module("keras_lit.cli.demo")
    assert args.function is demo.run
    assert args.smoke and demo.output_dir(args) == "lit_runs/demo"
    args = build_parser().parse_args(["demo", "--real"])
    assert demo.output_dir(args) == "lit_runs/demo-real"
