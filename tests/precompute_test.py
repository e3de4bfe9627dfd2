"""keras_lit.precompute: equivalence with on-the-fly training, resumability
after a real SIGKILL, augmentation guard, views, float16, strategies."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CAPTIONS
from conftest import make_image_encoder
from conftest import make_lit_model
from PIL import Image

from keras_lit import data
from keras_lit import precompute
from keras_lit.distribute import get_strategy
from keras_lit.precompute import load_precomputed
from keras_lit.precompute import main as precompute_main
from keras_lit.precompute import precompute_image_embeddings
from keras_lit.precompute import read_manifest

SIZE = 32
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def write_records(directory, num_images=24, num_shards=3):
    """Real PNGs of several sizes in TFRecord shards, 2 captions each."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    per_shard = num_images // num_shards
    for shard in range(num_shards):
        path = os.path.join(directory, f"pairs-{shard}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for k in range(per_shard):
                i = shard * per_shard + k
                shape = (SIZE + i % 3 * 8, SIZE + 4, 3)
                image = rng.integers(0, 256, shape, dtype=np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, "PNG")
                captions = [
                    f"{CAPTIONS[i % 8]} {i}",
                    f"{CAPTIONS[(i + 3) % 8]}",
                ]
                writer.write(
                    data.serialize_example(buffer.getvalue(), captions)
                )
    return os.path.join(directory, "pairs-*.tfrecord")


def source(pattern, **kwargs):
    options = dict(image_size=SIZE, shuffle=False, caption="all")
    options.update(kwargs)
    return data.tfrecord_dataset(pattern, **options)


def shard_bytes(directory):
    names = sorted(n for n in os.listdir(directory) if n.endswith(".tfrecord"))
    return {n: open(os.path.join(directory, n), "rb").read() for n in names}


def loaded_embeddings(directory, **kwargs):
    dataset = load_precomputed(directory, shuffle=False, **kwargs)
    return np.stack(
        [e["image_embeddings"] for e in dataset.as_numpy_iterator()]
    )


@pytest.fixture
def pattern(tmp_path):
    return write_records(tmp_path / "records")


@pytest.fixture
def encoder():
    keras.utils.set_random_seed(0)
    return make_image_encoder(SIZE)


# --- Acceptance: same losses and weights as on-the-fly training -----------


def test_training_on_precomputed_matches_on_the_fly(
    tmp_path, pattern, vocabulary
):
    on_the_fly_model = make_lit_model(vocabulary)
    precomputed_model = make_lit_model(vocabulary)
    precomputed_model.set_weights(on_the_fly_model.get_weights())
    # shard_size 10 with batch 8: batches straddle shard boundaries.
    precompute_image_embeddings(
        on_the_fly_model.image_encoder,
        source(pattern),
        tmp_path / "embeddings",
        shard_size=10,
        batch_size=8,
        verbose=False,
    )
    on_the_fly = source(pattern, caption="first", batch_size=8)
    precomputed = load_precomputed(
        tmp_path / "embeddings", shuffle=False, caption="first", batch_size=8
    )
    assert "images" not in precomputed.element_spec

    histories = []
    for model, dataset in (
        (on_the_fly_model, on_the_fly),
        (precomputed_model, precomputed),
    ):
        model.compile()
        histories.append(model.fit(dataset, epochs=3, verbose=0).history)
    np.testing.assert_allclose(
        histories[0]["loss"], histories[1]["loss"], rtol=1e-5, atol=1e-5
    )
    assert histories[0]["loss"][0] != histories[0]["loss"][-1]  # it trained
    for a, b in zip(
        on_the_fly_model.trainable_weights,
        precomputed_model.trainable_weights,
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


# --- Acceptance: killed mid-way, restarted, byte-identical shards ---------

KILLED_RUN = """
import os, sys, time
sys.path.insert(0, {tests_dir!r})
import keras
import tensorflow as tf
from conftest import make_image_encoder
from keras_lit import data
from keras_lit import precompute
from keras_lit.precompute import precompute_image_embeddings

keras.utils.set_random_seed(0)
encoder = make_image_encoder({size})
dataset = data.tfrecord_dataset(
    {pattern!r}, image_size={size}, shuffle=False, caption="all"
)

def slow(example):
    # Slow the input down so the parent can kill us between shards.
    tf.py_function(lambda: time.sleep(0.1), [], [])
    return example

precompute_image_embeddings(
    encoder, dataset.map(slow), {output!r}, shard_size=4, batch_size=4,
    verbose=False,
)
"""


def test_killed_precompute_resumes_to_identical_shards(
    tmp_path, pattern, encoder
):
    killed = str(tmp_path / "killed")
    script = tmp_path / "run.py"
    script.write_text(
        KILLED_RUN.format(
            tests_dir=TESTS_DIR, size=SIZE, pattern=pattern, output=killed
        )
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and process.poll() is None:
        try:
            done = len(read_manifest(killed)["shards"])
        except (ValueError, json.JSONDecodeError):
            done = 0
        if done >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    manifest = read_manifest(killed)
    assert not manifest["complete"]
    assert 2 <= len(manifest["shards"]) < 6

    resumed = precompute_image_embeddings(
        encoder,
        source(pattern),
        killed,
        shard_size=4,
        batch_size=4,
        verbose=False,
    )
    assert resumed["resumed_shards"] >= 2
    precompute_image_embeddings(
        encoder,
        source(pattern),
        tmp_path / "clean",
        shard_size=4,
        batch_size=4,
        verbose=False,
    )
    killed_shards = shard_bytes(killed)
    assert len(killed_shards) == 6
    assert killed_shards == shard_bytes(tmp_path / "clean")
    assert not [n for n in os.listdir(killed) if ".tmp-" in n]


def test_interrupted_by_an_exception_resumes_and_checks_the_order(
    tmp_path, pattern, encoder
):
    def failing_after(count):
        def check(index, example):
            tf.debugging.assert_less(index, tf.constant(count, tf.int64))
            return example

        return source(pattern).enumerate().map(check)

    output = tmp_path / "embeddings"
    options = dict(shard_size=8, batch_size=4, verbose=False)
    with pytest.raises(tf.errors.InvalidArgumentError):
        precompute_image_embeddings(
            encoder, failing_after(13), output, **options
        )
    assert len(read_manifest(output)["shards"]) == 1
    with pytest.raises(ValueError, match="not finished"):
        load_precomputed(output)
    assert len(loaded_embeddings(output, allow_incomplete=True)) == 8

    # A dataset in another order is refused instead of mixing two orders.
    reordered = source(pattern, shuffle=True, seed=1)
    with pytest.raises(ValueError, match="order or content changed"):
        precompute_image_embeddings(encoder, reordered, output, **options)

    summary = precompute_image_embeddings(
        encoder, source(pattern), output, **options
    )
    assert summary["resumed_shards"] == 1 and summary["num_examples"] == 24
    precompute_image_embeddings(
        encoder, source(pattern), tmp_path / "clean", **options
    )
    assert shard_bytes(output) == shard_bytes(tmp_path / "clean")
    # Done: a rerun skips everything; other settings are refused.
    again = precompute_image_embeddings(
        encoder, source(pattern), output, **options
    )
    assert again["resumed_shards"] == 3
    with pytest.raises(ValueError, match="dtype: stored 'float32'"):
        precompute_image_embeddings(
            encoder,
            source(pattern),
            output,
            dtype="float16",
            shard_size=8,
            batch_size=4,
            verbose=False,
        )


# --- Augmentation guard and views ------------------------------------------


def test_random_augmentation_is_refused_unless_views_are_asked(
    tmp_path, pattern, encoder
):
    augmented = source(pattern, augment="inception_crop", seed=0)
    with pytest.raises(ValueError, match="augments images at random"):
        precompute_image_embeddings(encoder, augmented, tmp_path / "a")
    flipped = source(pattern).map(
        lambda e: dict(e, images=tf.image.random_flip_left_right(e["images"]))
    )
    with pytest.raises(ValueError, match="RandomUniform"):
        precompute_image_embeddings(encoder, flipped, tmp_path / "b")

    output = tmp_path / "views"
    precompute_image_embeddings(
        encoder,
        augmented,
        output,
        num_views=2,
        shard_size=8,
        batch_size=8,
        verbose=False,
    )
    names = sorted(shard_bytes(output))
    assert names[0] == "embeddings-view0-00000.tfrecord" and len(names) == 6
    views = [
        np.stack(
            [
                np.frombuffer(
                    tf.train.Example.FromString(record.numpy())
                    .features.feature["image_embeddings"]
                    .bytes_list.value[0],
                    np.float32,
                )
                for record in tf.data.TFRecordDataset(
                    sorted(tf.io.gfile.glob(f"{output}/*view{v}-*"))
                )
            ]
        )
        for v in range(2)
    ]
    assert not np.allclose(views[0], views[1])  # two different crops
    dataset = load_precomputed(output, shuffle=False, seed=0)
    picks = [
        np.stack([e["image_embeddings"] for e in dataset.as_numpy_iterator()])
        for _ in range(3)
    ]
    for pick in picks:
        from_view = [np.all(pick == v, axis=1) for v in views]
        assert np.all(from_view[0] | from_view[1])
    assert 0 < np.mean([np.all(p == views[0], axis=1) for p in picks]) < 1


# --- Storage, strategies, CLI ------------------------------------------------


def test_float16_storage_halves_the_bytes(tmp_path, pattern, encoder):
    for dtype in ("float32", "float16"):
        precompute_image_embeddings(
            encoder,
            source(pattern),
            tmp_path / dtype,
            dtype=dtype,
            shard_size=24,
            batch_size=8,
            verbose=False,
        )
    full = loaded_embeddings(tmp_path / "float32")
    half = loaded_embeddings(tmp_path / "float16")
    assert full.shape == (24, encoder.feature_dim)
    np.testing.assert_array_equal(
        half, full.astype(np.float16).astype(np.float32)
    )
    size = {
        d: os.path.getsize(tmp_path / d / "embeddings-00000.tfrecord")
        for d in ("float32", "float16")
    }
    assert size["float16"] < 0.65 * size["float32"]


def test_precompute_under_a_mirrored_strategy(tmp_path, pattern, encoder):
    precompute_image_embeddings(
        encoder,
        source(pattern),
        tmp_path / "one",
        shard_size=24,
        batch_size=8,
        verbose=False,
    )
    strategy = get_strategy("mirrored", devices=[f"/cpu:{i}" for i in range(4)])
    with strategy.scope():
        keras.utils.set_random_seed(0)
        replicated = make_image_encoder(SIZE)
    precompute_image_embeddings(
        replicated,
        source(pattern),
        tmp_path / "four",
        shard_size=24,
        batch_size=8,
        strategy=strategy,
        verbose=False,
    )
    np.testing.assert_allclose(
        loaded_embeddings(tmp_path / "four"),
        loaded_embeddings(tmp_path / "one"),
        rtol=1e-5,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="multiple of the number of replicas"):
        precompute_image_embeddings(
            replicated,
            source(pattern),
            tmp_path / "bad",
            batch_size=6,
            strategy=strategy,
        )


def test_bad_arguments_raise_clear_errors(tmp_path, pattern, encoder):
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        precompute_image_embeddings(
            encoder, source(pattern), tmp_path, dtype="bfloat16"
        )
    with pytest.raises(ValueError, match="'images' and 'texts'"):
        precompute_image_embeddings(encoder, tf.data.Dataset.range(3), tmp_path)
    encoder.locked = False
    with pytest.raises(ValueError, match="locked=False"):
        precompute_image_embeddings(encoder, source(pattern), tmp_path)
    with pytest.raises(ValueError, match="no manifest.json"):
        load_precomputed(tmp_path)


def test_cli_precomputes_from_a_saved_model(tmp_path, pattern, vocabulary):
    model = make_lit_model(vocabulary)
    model_path = str(tmp_path / "lit.keras")
    model.save(model_path)
    output = tmp_path / "embeddings"
    argv = [str(output), "--model", model_path, "--tfrecords", pattern]
    assert precompute_main(argv + ["--shard-size", "16", "--quiet"]) == 0
    assert sorted(shard_bytes(output)) == [
        "embeddings-00000.tfrecord",
        "embeddings-00001.tfrecord",
    ]
    dataset = load_precomputed(output, image_encoder=model, batch_size=4)
    assert next(iter(dataset))["image_embeddings"].shape == (4, 64)
    other = make_lit_model(vocabulary)
    with pytest.raises(ValueError, match="another image encoder"):
        load_precomputed(output, image_encoder=other)


def test_one_plain_caption_per_image(tmp_path):
    # Equal-length caption lists come out of ragged_batch as a dense tensor.
    image_encoder = make_image_encoder()
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3))
    dataset = tf.data.Dataset.from_tensor_slices(
        {"images": images.astype("uint8"), "texts": CAPTIONS[:5]}
    )
    summary = precompute_image_embeddings(
        image_encoder, dataset, str(tmp_path), batch_size=2, verbose=False
    )
    assert summary["num_examples"] == 5
    loaded = load_precomputed(str(tmp_path), shuffle=False, caption="first")
    texts = [example["texts"].numpy().decode() for example in loaded]
    assert texts == CAPTIONS[:5]
    expected = image_encoder.extract_features(images.astype("float32"))
    stored = np.stack([example["image_embeddings"] for example in loaded])
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-5)


def test_reader_draws_captions_per_record_across_parse_chunks(
    tmp_path, monkeypatch
):
    # The reader parses records in chunks; 4 per chunk puts chunk borders
    # inside each of the 2 shards (6 + 5 records).
    monkeypatch.setattr(precompute.reader, "PARSE_CHUNK", 4)
    image_encoder = make_image_encoder()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (11, 32, 32, 3)).astype("uint8")
    # 0, 1, 2 or 3 captions per image.
    captions = [
        [f"image {i} caption {c}" for c in range(i % 4)] for i in range(11)
    ]
    dataset = tf.data.Dataset.from_generator(
        lambda: ({"images": x, "texts": t} for x, t in zip(images, captions)),
        output_signature={
            "images": tf.TensorSpec([32, 32, 3], tf.uint8),
            "texts": tf.TensorSpec([None], tf.string),
        },
    )
    output = str(tmp_path / "embeddings")
    precompute_image_embeddings(
        image_encoder,
        dataset,
        output,
        shard_size=6,
        batch_size=4,
        dtype="float16",
        verbose=False,
    )
    expected = image_encoder.extract_features(images.astype("float32"))
    expected = np.asarray(expected).astype("float16").astype("float32")
    readable = [c or [""] for c in captions]  # no caption reads as ""

    def read(**kwargs):
        loaded = load_precomputed(output, **kwargs).as_numpy_iterator()
        embeddings, texts = zip(
            *[(e["image_embeddings"], e["texts"]) for e in loaded]
        )
        return np.stack(embeddings), texts

    embeddings, texts = read(shuffle=False, caption="first")
    np.testing.assert_array_equal(embeddings, expected)
    assert [t.decode() for t in texts] == [c[0] for c in readable]
    loaded = load_precomputed(
        output, shuffle=False, caption="all", batch_size=5
    )
    rows = [row for batch in loaded for row in batch["texts"].to_list()]
    assert [[t.decode() for t in row] for row in rows] == readable[:10]

    # "random": a caption of its own image each time, every caption drawn
    # over 30 epochs, the same draws for the same seed.
    def draws(seed):
        loaded = load_precomputed(output, shuffle=False, seed=seed)
        return [
            [t.decode() for t in epoch["texts"]]
            for epoch in loaded.batch(11).repeat(30).as_numpy_iterator()
        ]

    first = draws(seed=1)
    for i, options in enumerate(readable):
        picked = {epoch[i] for epoch in first}
        assert picked == set(options), (i, picked)
    assert draws(seed=1) == first
    assert draws(seed=2) != first

    # Shuffled: the same records in a seed-determined order.
    shuffled, shuffled_texts = read(shuffle=True, seed=3, caption="first")
    order = [int(np.argmax((expected == e).all(axis=1))) for e in shuffled]
    assert sorted(order) == list(range(11)) and order != list(range(11))
    np.testing.assert_array_equal(read(shuffle=True, seed=3)[0], shuffled)
    assert [t.decode() for t in shuffled_texts] == [
        readable[i][0] for i in order
    ]
