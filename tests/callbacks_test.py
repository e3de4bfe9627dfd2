"""ZeroShotEvaluation / RetrievalEvaluation during a real `fit`."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CAPTIONS
from conftest import make_image_encoder
from conftest import make_text_encoder
from conftest import random_images

from keras_lit.callbacks import RetrievalEvaluation
from keras_lit.callbacks import ZeroShotEvaluation
from keras_lit.callbacks.evaluation_callback import LiTEncodingCache
from keras_lit.models import LiTModel
from keras_lit.zero_shot import evaluate_retrieval
from keras_lit.zero_shot import evaluate_zero_shot
from keras_lit.zero_shot.weights import l2_normalize as unit

CLASS_NAMES = ["red circle", "blue square", "green star"]
TEMPLATES = ["a {}", "a small {}"]


def read_scalars(log_dir):
    """{tag: [(step, value), ...]} from every event file in `log_dir`."""
    scalars = {}
    paths = sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")))
    assert paths, f"no event files in {log_dir}"
    for path in paths:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


def make_model(vocabulary, locked=True):
    # A trainable image head: cached backbone features must still go
    # through the head as it trains.
    image_encoder = make_image_encoder(head_dim=16, locked=locked)
    model = LiTModel(image_encoder, make_text_encoder(vocabulary, 16))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def train_data():
    return {"images": random_images(8, seed=1), "texts": CAPTIONS}


def eval_sets():
    images = random_images(9, seed=2)
    classification = {"images": images, "labels": np.arange(9) % 3}
    retrieval = {
        "images": images,
        "texts": [[CAPTIONS[i % 8], CAPTIONS[(i + 3) % 8]] for i in range(9)],
    }
    return classification, retrieval


def test_history_tensorboard_and_final_values(vocabulary, tmp_path):
    model = make_model(vocabulary)
    classification, retrieval = eval_sets()
    zero_shot = ZeroShotEvaluation(
        classification,
        CLASS_NAMES,
        TEMPLATES,
        batch_size=4,
        log_dir=str(tmp_path / "zero_shot"),
    )
    retrieval_callback = RetrievalEvaluation(
        retrieval, ks=(1, 5), batch_size=4, log_dir=str(tmp_path / "retrieval")
    )
    callbacks = [zero_shot, retrieval_callback]
    has_tensorboard = True
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        has_tensorboard = False
    if has_tensorboard:
        # Listed after ours, Keras's own callback sees our keys too.
        callbacks.append(keras.callbacks.TensorBoard(str(tmp_path / "keras")))
    history = model.fit(
        train_data(), batch_size=4, epochs=2, callbacks=callbacks, verbose=0
    )
    logs = history.history
    for key in (
        "zero_shot_top1_accuracy",
        "zero_shot_top5_accuracy",
        "zero_shot_mean_per_class_accuracy",
        "retrieval_image_to_text_recall_at_1",
        "retrieval_text_to_image_recall_at_5",
        "retrieval_image_to_text_median_rank",
        "retrieval_text_to_image_mean_rank",
    ):
        assert len(logs[key]) == 2, key
    assert "zero_shot_num_examples" not in logs

    # The last run equals a fresh, uncached evaluation of the final model.
    final = evaluate_zero_shot(
        model, classification, CLASS_NAMES, TEMPLATES, batch_size=4
    )
    assert logs["zero_shot_top1_accuracy"][-1] == final["top1_accuracy"]
    assert logs["zero_shot_mean_per_class_accuracy"][-1] == pytest.approx(
        final["mean_per_class_accuracy"], abs=1e-12
    )
    np.testing.assert_array_equal(
        zero_shot.results[-1]["per_class_accuracy"],
        final["per_class_accuracy"],
    )
    # Images 0 and 8 share their captions: exact ties that both paths must
    # count (each distinct caption is embedded once), so ranks agree exactly.
    final = evaluate_retrieval(model, retrieval, ks=(1, 5))
    for name, value in final.items():
        if not name.startswith("num_"):
            assert logs[f"retrieval_{name}"][-1] == pytest.approx(value), name
    # The cached path's cosines equal the direct ones up to float rounding.
    cache = retrieval_callback._cache
    text_embeddings = np.concatenate(
        list(cache.embed_tokens_in_chunks(retrieval_callback._tokens))
    )[retrieval_callback._caption_index]
    captions = [text for texts in retrieval["texts"] for text in texts]
    np.testing.assert_allclose(
        cache.embed_image_features(retrieval_callback._features)
        @ text_embeddings.T,
        unit(model.encode_images(retrieval["images"]))
        @ unit(model.encode_texts(captions)).T,
        atol=1e-5,
    )

    # Our own event files: one point per epoch, equal to History.
    events = read_scalars(str(tmp_path / "zero_shot"))
    points = events["epoch_zero_shot_top1_accuracy"]
    assert [step for step, _ in points] == [0, 1]
    np.testing.assert_allclose(
        [value for _, value in points], logs["zero_shot_top1_accuracy"]
    )
    events = read_scalars(str(tmp_path / "retrieval"))
    points = events["epoch_retrieval_text_to_image_mean_rank"]
    np.testing.assert_allclose(
        [value for _, value in points],
        logs["retrieval_text_to_image_mean_rank"],
        rtol=1e-6,
    )
    if has_tensorboard:
        events = read_scalars(str(tmp_path / "keras" / "train"))
        points = events["epoch_zero_shot_top1_accuracy"]
        np.testing.assert_allclose(
            [value for _, value in points], logs["zero_shot_top1_accuracy"]
        )


def test_schedules_by_steps_and_epochs(vocabulary, tmp_path):
    model = make_model(vocabulary)
    classification, _ = eval_sets()
    by_steps = ZeroShotEvaluation(
        classification,
        CLASS_NAMES,
        TEMPLATES,
        every_n_epochs=None,
        every_n_steps=3,
        log_dir=str(tmp_path / "steps"),
        prefix="steps",
    )
    by_epochs = ZeroShotEvaluation(
        classification, CLASS_NAMES, TEMPLATES, every_n_epochs=2, prefix="ep"
    )
    # 8 examples, batch 4: 2 steps per epoch, 6 steps in 3 epochs.
    history = model.fit(
        train_data(),
        batch_size=4,
        epochs=3,
        callbacks=[by_steps, by_epochs],
        verbose=0,
    )
    assert [run["step"] for run in by_steps.results] == [3, 6]
    assert [run["epoch"] for run in by_steps.results] == [1, 2]
    # Epochs 1 and 2 saw a step run; epoch 0 did not, and adds no key.
    assert len(history.history["steps_top1_accuracy"]) == 2
    events = read_scalars(str(tmp_path / "steps"))
    assert [s for s, _ in events["batch_steps_top1_accuracy"]] == [3, 6]
    assert [run["epoch"] for run in by_epochs.results] == [1]
    assert len(history.history["ep_top1_accuracy"]) == 1


@pytest.mark.parametrize("locked", [True, False])
def test_caching(vocabulary, monkeypatch, locked):
    calls = {"image_features": 0, "tokenize": 0}
    for name in calls:
        original = getattr(LiTEncodingCache, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(LiTEncodingCache, name, spy)
    evaluations = []
    original_evaluate = ZeroShotEvaluation.evaluate

    def counted_evaluate(self):
        evaluations.append(1)
        return original_evaluate(self)

    monkeypatch.setattr(ZeroShotEvaluation, "evaluate", counted_evaluate)

    model = make_model(vocabulary, locked=locked)
    classification, _ = eval_sets()
    # Step runs at iterations 2 and 4 coincide with the epoch-end runs.
    callback = ZeroShotEvaluation(
        classification, CLASS_NAMES, TEMPLATES, every_n_steps=2, batch_size=4
    )
    model.fit(
        train_data(), batch_size=4, epochs=2, callbacks=[callback], verbose=0
    )
    assert len(callback.results) == 4
    assert len(evaluations) == 2  # no optimizer step in between: reused
    assert calls["tokenize"] == 1  # prompts tokenised once
    batches_per_pass = 3  # 9 images, batch 4
    passes = 1 if locked else 2  # a trainable backbone is re-run
    assert calls["image_features"] == batches_per_pass * passes
    if locked:
        # Backbone weights changed behind the callback's back (e.g. a tower
        # unlocked, tuned and locked again): features are recomputed.
        variable = model.image_encoder.backbone.weights[0]
        variable.assign(variable * 0.5)
        model.fit(
            train_data(),
            batch_size=4,
            epochs=1,
            callbacks=[callback],
            verbose=0,
        )
        assert calls["image_features"] == 2 * batches_per_pass
        assert calls["tokenize"] == 1


def test_callback_errors():
    classification, retrieval = eval_sets()
    with pytest.raises(ValueError, match="every_n_epochs"):
        ZeroShotEvaluation(classification, CLASS_NAMES, every_n_epochs=0)
    with pytest.raises(ValueError, match="never run"):
        RetrievalEvaluation(retrieval, every_n_epochs=None)
    with pytest.raises(ValueError, match=r"provide 'labels'"):
        ZeroShotEvaluation({"images": classification["images"]}, CLASS_NAMES)
    with pytest.raises(ValueError, match="provide 'texts'"):
        RetrievalEvaluation({"images": retrieval["images"]})
    with pytest.raises(ValueError, match="'a photo'"):
        ZeroShotEvaluation(classification, CLASS_NAMES, ["a photo"])
    with pytest.raises(ValueError, match="non-empty"):
        ZeroShotEvaluation(classification, [])
    with pytest.warns(UserWarning, match="duplicates"):
        ZeroShotEvaluation(classification, ["cat", "Cat"], ["a {}"])
