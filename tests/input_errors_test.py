"""Bad config values and bad data files: errors naming the key or file."""

import os

import pytest

from keras_lit.config import ConfigError
from keras_lit.config import load_config


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.global_batch_size=[8, 16]", "train.global_batch_size must be"),
        ("image_tower.image_size=32", "image_tower.image_size must be a list"),
        ("image_tower.image_size=[32, 0]", "image_tower.image_size must be"),
        ("seed=abc", "seed must be a non-negative integer. Received: 'abc'"),
        ("train.steps=many", "train.steps must be a positive integer"),
        ("train.steps=0", "train.steps must be a positive integer"),
        ("train.learning_rate=fast", "train.learning_rate must be a number"),
        ("train.checkpoints=maybe", "train.checkpoints must be true or false"),
        ("train.checkpoint_every=-1", "train.checkpoint_every must be"),
        ("train.steps={a: [", "--set train.steps: the value"),
    ],
)
def test_wrong_kinds_name_the_key(override, message):
    with pytest.raises(ConfigError) as failure:
        load_config(overrides=[override])
    assert message in str(failure.value)
    assert "\n" not in str(failure.value)


def test_right_kinds_are_normalised():
    config = load_config(
        overrides=[
            "train.learning_rate=1e-3",  # YAML reads this as a string
            "seed='7'",
            "train.steps=20.0",
            "train.clipnorm=null",
        ]
    )
    assert config["train"]["learning_rate"] == 0.001
    assert config["seed"] == 7 and config["train"]["steps"] == 20
    assert config["train"]["clipnorm"] is None


def test_bad_data_files_are_named(tmp_path):
    from keras_lit.data import csv_dataset
    from keras_lit.data import tfrecord_dataset

    garbage = tmp_path / "pairs.csv"
    garbage.write_bytes(b"image,caption\n" + os.urandom(64) + b"\xff\xfe")
    with pytest.raises(ValueError, match="pairs.csv: not a UTF-8 text file"):
        csv_dataset(str(garbage), image_size=(8, 8))
    shard = tmp_path / "train-0.tfrecord"
    shard.write_bytes(os.urandom(100))
    with pytest.raises(ValueError, match="train-0.tfrecord: not a TFRecord"):
        tfrecord_dataset(str(shard), image_size=(8, 8))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--set", "seed=abc"], "seed must be a non-negative"),
        (["train", "--set", "train.steps=many"], "train.steps must be"),
        (
            ["train", "--set", "train.global_batch_size=[8, 16]"],
            "train.global_batch_size must be a positive integer",
        ),
        (["train", "--set", "image_tower.image_size=32"], "image_size"),
        (
            ["classify", "{text}", "--model", "m.keras", "--labels", "a,b"],
            "{text}: not a JPEG",
        ),
        (
            ["classify", "{png}", "--model", "m.keras", "--labels", "a,b"],
            "{png}: ",
        ),
        (
            ["classify", "{gif}", "--model", "m.keras", "--labels", "a,b"],
            "{gif}: truncated or malformed GIF",
        ),
    ],
)
def test_command_line_errors_are_one_line(argv, message, tmp_path, capsys):
    from keras_lit.cli import main

    files = {
        "text": tmp_path / "notes.txt",
        "png": tmp_path / "random.png",
        "gif": tmp_path / "cut.gif",
    }
    files["text"].write_text("not an image")
    files["png"].write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    files["gif"].write_bytes(b"GIF89a\x02\x00\x02\x00\x00\x00\x00,\x00")
    names = {key: str(path) for key, path in files.items()}
    argv = [arg.format(**names) for arg in argv]
    assert main(argv) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith("keras-lit: error: ")
    assert message.format(**names) in errors[0]
