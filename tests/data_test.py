"""keras_lit.data: readers, skip counting, determinism, sharding, converter.

Every test writes real image files (PIL) and real TFRecords in `tmp_path`.
"""

import io
import json
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
import tensorflow as tf
from conftest import CAPTIONS
from conftest import make_lit_model
from PIL import Image
from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

from keras_lit import data
from keras_lit.data.convert import main as convert_main
from keras_lit.distribute import get_strategy
from keras_lit.image_ops import resize_and_crop

SIZE = 32


def encode(array, fmt, **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def pixels(seed, height=40, width=48, channels=3):
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    # Smooth images keep JPEG close to the original.
    base = rng.integers(0, 256, (4, 4) + shape[2:], dtype=np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.BILINEAR)
    return np.asarray(image)


def png_claiming(width, height):
    """A PNG with a valid header (and CRC) claiming width x height."""

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def good_files():
    """name -> (bytes, RGB array PIL decodes, exact) for every good format."""
    rgb, gray, rgba = pixels(1), pixels(2, channels=1), pixels(3, channels=4)
    wide = pixels(4, height=60, width=120)
    files = {
        "photo.jpg": encode(rgb, "JPEG", quality=95),
        "wide.jpg": encode(wide, "JPEG", quality=95),
        "plain.png": encode(rgb, "PNG"),
        "gray.png": encode(gray, "PNG"),
        "alpha.png": encode(rgba, "PNG"),
        "anim.gif": encode(pixels(5)[..., 0], "GIF"),
        "bitmap.bmp": encode(rgb, "BMP"),
        "lossless.webp": encode(rgb, "WEBP", lossless=True),
    }
    return {
        name: (
            content,
            np.asarray(Image.open(io.BytesIO(content)).convert("RGB")),
            not name.endswith(".jpg"),
        )
        for name, content in files.items()
    }


def bad_files():
    """name -> (bytes, the reason it must be counted under)."""
    png = encode(pixels(6), "PNG")
    jpeg = encode(pixels(7), "JPEG")
    return {
        "corrupt.jpg": (os.urandom(300), "corrupt"),
        "fake_header.jpg": (b"\xff\xd8" + b"\x00" * 100, "corrupt"),
        "empty.png": (b"", "empty"),
        "truncated.png": (png[: len(png) // 2], "corrupt"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "corrupt"),
        "bomb.png": (png_claiming(20000, 20000), "too_large"),
    }


def write_folder(directory):
    """An image folder + captions.jsonl with good, bad and missing images."""
    os.makedirs(directory, exist_ok=True)
    lines = []
    good = good_files()
    for i, (name, (content, _, _)) in enumerate(sorted(good.items())):
        with open(os.path.join(directory, name), "wb") as file:
            file.write(content)
        lines.append({"file_name": name, "text": CAPTIONS[i % 8]})
    for name, (content, _) in sorted(bad_files().items()):
        with open(os.path.join(directory, name), "wb") as file:
            file.write(content)
        lines.append({"file_name": name, "text": ["a bad image"]})
    lines.append({"file_name": "missing.jpg", "text": "not on disk"})
    with open(os.path.join(directory, "no_caption.png"), "wb") as file:
        file.write(encode(pixels(8), "PNG"))
    lines.append({"file_name": "no_caption.png", "text": []})
    with open(os.path.join(directory, "captions.jsonl"), "w") as file:
        for line in lines:
            file.write(json.dumps(line) + "\n")
    return good


def write_pairs_csv(directory, num_images=12, captions_per_image=2):
    """A COCO-style CSV: one row per caption, several rows per image."""
    os.makedirs(directory, exist_ok=True)
    rows = ["image,caption"]
    for i in range(num_images):
        name = f"img{i:02d}.png"
        with open(os.path.join(directory, name), "wb") as file:
            file.write(encode(pixels(100 + i), "PNG"))
        for k in range(captions_per_image):
            rows.append(f'{name},"{CAPTIONS[(i + k) % 8]}, take {k}"')
    path = os.path.join(directory, "pairs.csv")
    with open(path, "w") as file:
        file.write("\n".join(rows) + "\n")
    return path


def as_list(dataset):
    return list(dataset.as_numpy_iterator())


def expected_image(array):
    return np.round(resize_and_crop(array, (SIZE, SIZE)).numpy()).astype(
        np.uint8
    )


# --- The acceptance test: real bad files, skipped, counted, run completes --


def test_bad_images_are_skipped_counted_and_fit_completes(
    tmp_path, vocabulary, capsys
):
    good = write_folder(tmp_path / "photos")
    dataset = data.folder_dataset(
        tmp_path / "photos", image_size=SIZE, batch_size=4, seed=0
    )
    model = make_lit_model(vocabulary)
    model.compile()
    history = model.fit(
        dataset, epochs=2, callbacks=[dataset.skipped_images], verbose=0
    )

    assert len(history.history["loss"]) == 2
    assert np.all(np.isfinite(history.history["loss"]))
    skipped = dataset.skipped_images
    # Two epochs, each reads every file once.
    assert skipped.loaded == 2 * len(good)
    assert skipped.counts == {
        "corrupt": 2 * 5,  # random bytes, fake header, 2 truncated, missing
        "empty": 2 * 1,
        "too_large": 2 * 1,
        "no_caption": 2 * 1,
    }
    assert history.history["skipped_images"] == [8, 16]
    assert "skipped 16 of 32 images" in capsys.readouterr().out


def test_fit_under_a_mirrored_strategy_counts_once(tfrecords, vocabulary):
    pattern, _ = tfrecords
    # One junk record per epoch on top of the 12 good ones.
    junk = pattern.replace("train-*", "junk.tfrecord")
    with tf.io.TFRecordWriter(junk) as writer:
        writer.write(data.serialize_example(b"junk", ["a red circle"]))
    dataset = data.tfrecord_dataset(
        [pattern, junk], image_size=SIZE, batch_size=4, seed=0
    )
    strategy = get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = make_lit_model(vocabulary)
        model.compile()
    with warnings.catch_warnings():
        # Keras warns "input ran out of data" under a strategy when the
        # dataset's length is unknown (filtering makes it unknown).
        warnings.simplefilter("ignore", UserWarning)
        history = model.fit(
            dataset, epochs=2, callbacks=[dataset.skipped_images], verbose=0
        )
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["skipped_images"] == [1, 2]
    assert dataset.skipped_images.loaded == 24


def test_good_formats_decode_to_the_right_pixels(tmp_path):
    good = write_folder(tmp_path / "photos")
    dataset = data.folder_dataset(
        tmp_path / "photos", image_size=SIZE, shuffle=False, caption="first"
    )
    examples = as_list(dataset)
    assert len(examples) == len(good)
    for example, name in zip(examples, sorted(good)):
        _, reference, exact = good[name]
        image = example["images"]
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        expected = expected_image(reference)
        if exact:
            np.testing.assert_array_equal(image, expected, err_msg=name)
        else:  # TF's and PIL's JPEG decoders differ slightly.
            difference = np.abs(image.astype(int) - expected.astype(int))
            assert difference.mean() < 2 and difference.max() < 16, name
    gray = examples[sorted(good).index("gray.png")]["images"]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_pixel_limit_is_configurable(tmp_path):
    good = write_folder(tmp_path / "photos")
    dataset = data.folder_dataset(
        tmp_path / "photos", image_size=SIZE, shuffle=False, max_pixels=2500
    )
    loaded = as_list(dataset)
    # 40x48 = 1920 pixels pass; wide.jpg (60x120) and the bomb do not.
    assert len(loaded) == len(good) - 1
    assert dataset.skipped_images.counts["too_large"] == 2


# --- TFRecords, converter, determinism, captions, sharding ----------------


@pytest.fixture
def tfrecords(tmp_path):
    csv_path = write_pairs_csv(tmp_path / "csv", num_images=12)
    summary = data.convert_csv(
        csv_path, tmp_path / "records", examples_per_shard=3, verbose=False
    )
    return str(tmp_path / "records" / "train-*.tfrecord"), summary


def test_converter_writes_shards_that_read_back_like_the_csv(
    tmp_path, tfrecords
):
    pattern, summary = tfrecords
    assert summary["num_examples"] == 12
    assert len(summary["files"]) == 4
    assert all(f.endswith("-of-00004.tfrecord") for f in summary["files"])
    assert not tf.io.gfile.glob(str(tmp_path / "records" / "*.tmp"))

    options = dict(image_size=SIZE, shuffle=False, caption="all")
    from_csv = as_list(
        data.csv_dataset(tmp_path / "csv" / "pairs.csv", **options)
    )
    from_records = as_list(data.tfrecord_dataset(pattern, **options))
    assert len(from_csv) == len(from_records) == 12
    for a, b in zip(from_csv, from_records):
        np.testing.assert_array_equal(a["images"], b["images"])
        np.testing.assert_array_equal(a["texts"], b["texts"])
    # Rows of one image were grouped: two captions, commas kept.
    assert len(from_records[0]["texts"]) == 2
    assert from_records[0]["texts"][1].decode().endswith(", take 1")


def test_convert_cli_folder_and_errors(tmp_path, capsys):
    write_folder(tmp_path / "photos")
    output = tmp_path / "out"
    argv = ["folder", str(tmp_path / "photos"), str(output)]
    assert convert_main(argv + ["--examples-per-shard", "5"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 missing, 1 empty, 1 no_caption" in out
    records = as_list(
        data.tfrecord_dataset(
            str(output / "train-*"), image_size=SIZE, shuffle=False
        )
    )
    assert len(records) == len(good_files())
    # A second run refuses to overwrite, with a clear message.
    assert convert_main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert convert_main(argv + ["--overwrite", "--validate", "--quiet"]) == 0
    summary = data.convert_folder(
        tmp_path / "photos",
        output,
        overwrite=True,
        validate=True,
        verbose=False,
    )
    assert summary["skipped"]["corrupt"] == 5  # 4 bad + the header bomb
    assert summary["num_examples"] == len(good_files())


def test_same_seed_same_stream_new_epoch_new_draws(tfrecords):
    pattern, _ = tfrecords

    def build(seed):
        return data.tfrecord_dataset(
            pattern,
            image_size=SIZE,
            batch_size=4,
            seed=seed,
            augment="inception_crop",
        )

    first, second = build(7), build(7)
    epochs_a = [as_list(first) for _ in range(2)]
    epochs_b = [as_list(second) for _ in range(2)]
    for a, b in zip(epochs_a, epochs_b):
        for batch_a, batch_b in zip(a, b):
            np.testing.assert_array_equal(batch_a["images"], batch_b["images"])
            np.testing.assert_array_equal(batch_a["texts"], batch_b["texts"])
    flat = [np.concatenate([b["images"] for b in epoch]) for epoch in epochs_a]
    assert not np.array_equal(flat[0], flat[1])  # new crops and order
    other = np.concatenate([b["images"] for b in as_list(build(8))])
    assert not np.array_equal(flat[0], other)


def test_reader_options_object_is_the_keyword_arguments(tmp_path, tfrecords):
    pattern, _ = tfrecords
    options = data.ReaderOptions(batch_size=4, seed=7, augment="inception_crop")
    from_options = data.tfrecord_dataset(pattern, SIZE, options)
    from_keywords = data.tfrecord_dataset(
        pattern, image_size=SIZE, batch_size=4, seed=7, augment="inception_crop"
    )
    for a, b in zip(as_list(from_options), as_list(from_keywords)):
        np.testing.assert_array_equal(a["images"], b["images"])
        np.testing.assert_array_equal(a["texts"], b["texts"])
    # Keyword arguments override the object, which stays as it was.
    shared = data.ReaderOptions(shuffle=False, caption="all")
    from_csv = data.csv_dataset(
        tmp_path / "csv" / "pairs.csv", SIZE, options=shared, batch_size=12
    )
    (batch,) = as_list(from_csv)
    assert batch["images"].shape == (12, SIZE, SIZE, 3)
    assert shared.batch_size is None and from_csv.image_size == (SIZE, SIZE)
    with pytest.raises(AttributeError):
        shared.seed = 1  # frozen
    with pytest.raises(TypeError, match="batch_size"):
        data.tfrecord_dataset(pattern, image_size=SIZE, batch=4)
    with pytest.raises(ValueError, match="`options` must be a keras_lit"):
        data.tfrecord_dataset(pattern, SIZE, 4)
    with pytest.raises(ValueError, match="`cycle_length` must be a positive"):
        data.ReaderOptions(cycle_length=0)


def test_random_caption_per_step(tfrecords):
    pattern, _ = tfrecords
    dataset = data.tfrecord_dataset(
        pattern, image_size=SIZE, shuffle=False, seed=3
    )
    epochs = [[e["texts"] for e in as_list(dataset)] for _ in range(4)]
    pairs = {(i, text) for epoch in epochs for i, text in enumerate(epoch)}
    # 12 images x 2 captions: each epoch draws again.
    assert len(pairs) >= 20
    assert all(text.endswith((b"take 0", b"take 1")) for _, text in pairs)
    first = data.tfrecord_dataset(
        pattern, image_size=SIZE, shuffle=False, caption="first"
    )
    firsts = [[e["texts"] for e in as_list(first)] for _ in range(2)]
    assert firsts[0] == firsts[1]
    assert all(text.endswith(b"take 0") for text in firsts[0])


def test_file_sharding_splits_shards_between_workers(tfrecords):
    pattern, _ = tfrecords
    dataset = data.tfrecord_dataset(
        pattern, image_size=SIZE, caption="first", seed=0
    )
    policy = dataset.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.FILE
    parts = [
        [
            e["images"].tobytes()
            for e in as_list(_AutoShardDataset(dataset, 2, worker))
        ]
        for worker in range(2)
    ]
    assert len(parts[0]) == len(parts[1]) == 6
    assert not set(parts[0]) & set(parts[1])
    assert len(set(parts[0]) | set(parts[1])) == 12


def test_path_readers_use_data_sharding(tmp_path):
    csv_path = write_pairs_csv(tmp_path, num_images=4)
    dataset = data.csv_dataset(csv_path, image_size=SIZE, caption="first")
    policy = dataset.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
    parts = [
        as_list(_AutoShardDataset(dataset, 2, worker)) for worker in range(2)
    ]
    assert len(parts[0]) == len(parts[1]) == 2


def test_tsv_with_several_caption_columns(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(encode(pixels(9), "PNG"))
    path = tmp_path / "pairs.tsv"
    path.write_text("path\tc1\tc2\na.png\ta red circle\t\n")
    paths, captions = data.read_csv_pairs(
        path, image_column="path", text_column=["c1", "c2"]
    )
    assert paths == [str(image)] and captions == [["a red circle"]]


def test_tfds_reader_with_nested_captions(tmp_path):
    import tensorflow_datasets as tfds

    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(encoding_format="png"),
            "captions": tfds.features.Sequence({"text": tfds.features.Text()}),
        }
    )
    examples = [
        {"image": pixels(20 + i), "captions": [{"text": CAPTIONS[i]}]}
        for i in range(4)
    ]
    tfds.dataset_builders.store_as_tfds_dataset(
        name="tiny_captions",
        version="1.0.0",
        features=features,
        split_datasets={"train": list(enumerate(examples))},
        data_dir=str(tmp_path),
    )
    builder = tfds.builder("tiny_captions", data_dir=str(tmp_path))
    dataset = data.tfds_dataset(
        builder, image_size=SIZE, shuffle=False, caption="first"
    )
    loaded = as_list(dataset)
    assert sorted(e["texts"].decode() for e in loaded) == sorted(CAPTIONS[:4])
    assert loaded[0]["images"].shape == (SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="'captions/caption' not found"):
        data.tfds_dataset(builder, image_size=SIZE, text_key="captions/caption")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": (0, 32)}, "`image_size` must be"),
        ({"image_size": 32, "caption": "any"}, "`caption` must be one of"),
        ({"image_size": 32, "augment": "flip"}, "`augment` must be None"),
        ({"image_size": 32, "batch_size": 0}, "`batch_size` must be"),
        ({"image_size": 32, "image_column": "path"}, r"\['path'\] not found"),
    ],
)
def test_bad_options_raise_clear_errors(tmp_path, kwargs, message):
    csv_path = write_pairs_csv(tmp_path, num_images=1)
    with pytest.raises(ValueError, match=message):
        data.csv_dataset(csv_path, **kwargs)


def test_bad_sources_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no file matches"):
        data.tfrecord_dataset(str(tmp_path / "*.tfrecord"), image_size=SIZE)
    (tmp_path / "captions.jsonl").write_text('{"file_name": "a.png"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2: invalid JSON"):
        data.folder_dataset(tmp_path, image_size=SIZE)
    with pytest.raises(ValueError, match="same length"):
        data.image_files_dataset(["a.png"], [], image_size=SIZE)


@pytest.mark.parametrize(
    "shape", [(40, 48), (48, 40), (32, 32), (20, 10), (33, 100)]
)
def test_resize_and_crop_matches_a_resize_then_centre_crop(shape):
    # Reference: TF's antialiased resize of the shorter side to the target,
    # then `resize_with_crop_or_pad`; an image already at the target size
    # is returned unchanged (the resize would be an identity).
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    height, width = shape
    scale = max(32 / height, 32 / width)
    new_size = [
        max(32, int(np.ceil(height * scale))),
        max(32, int(np.ceil(width * scale))),
    ]
    reference = tf.image.resize(
        image.astype(np.float32), new_size, antialias=True
    )
    reference = tf.image.resize_with_crop_or_pad(reference, 32, 32).numpy()
    result = resize_and_crop(image, (32, 32)).numpy()
    assert result.shape == (32, 32, 3)
    np.testing.assert_allclose(result, np.clip(reference, 0, 255), atol=1e-3)
    if shape == (32, 32):
        np.testing.assert_array_equal(result, image.astype(np.float32))
