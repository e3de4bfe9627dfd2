"""Shared machinery of the evaluation callbacks: schedule, logs, caching."""

import keras
import numpy as np

from keras_lit.zero_shot.datasets import check_dataset
from keras_lit.zero_shot.weights import l2_normalize


class EvaluationCallback(keras.callbacks.Callback):
    """Runs `evaluate()` every N epochs and/or steps during `fit`.

    Subclasses implement `evaluate()` (returning a dict of results) and may
    use `LiTEncodingCache`. Scalar results go, prefixed, into the epoch
    `logs` (hence `History` and any `TensorBoard` callback listed *after*
    this one) and, with `log_dir`, into this callback's own TensorBoard
    event files: tag `"epoch_<name>"` at step = epoch for epoch-scheduled
    runs, `"batch_<name>"` at step = optimizer iterations for step-scheduled
    runs. As with Keras's `validation_freq`, an epoch without an evaluation
    adds no keys. Every run, with what is not logged (per-class accuracy,
    example counts), is kept in `self.results`. A run with no optimizer
    step since the previous one in the same `fit` reuses its results.

    Args:
        every_n_epochs: optional int. Evaluate at the end of every N-th
            epoch. Defaults to `1`.
        every_n_steps: optional int. Evaluate every N optimizer steps; the
            epoch logs then carry the latest values of that epoch.
        prefix: str. Prepended to each log key, as `"<prefix>_<name>"`.
        log_dir: optional directory for TensorBoard event files.
        verbose: int. `1` prints a line per evaluation.
        batch_size: int. Examples per encoding call. Defaults to `64`.
    """

    def __init__(
        self,
        every_n_epochs=1,
        every_n_steps=None,
        prefix="evaluation",
        log_dir=None,
        verbose=0,
        batch_size=64,
    ):
        super().__init__()
        for name, value in (
            ("every_n_epochs", every_n_epochs),
            ("every_n_steps", every_n_steps),
        ):
            if value is not None and (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < 1
            ):
                raise ValueError(
                    f"`{name}` must be a positive int or None. "
                    f"Received: {name}={value!r}"
                )
        if every_n_epochs is None and every_n_steps is None:
            raise ValueError(
                "Set `every_n_epochs` or `every_n_steps` (or both); both "
                "are None, so the callback would never run."
            )
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.results = []
        self.prefix, self.log_dir, self.verbose = prefix, log_dir, verbose
        self.batch_size = batch_size
        self._writer = None
        self._last = None
        self._last_iterations = None
        self._epoch_logs = None
        self._seen_iterations = 0
        self._cache = None
        self._features = None
        self._fingerprint = None

    def evaluate(self):
        """Returns a dict of results; scalars are logged.

        Subclasses override this, or the two cases it chooses between:
        `evaluate_uncached()` for a model `LiTEncodingCache` cannot serve,
        else `evaluate_cached(cache, fresh)` (see `_model_cache`).
        """
        if not LiTEncodingCache.supports(self.model):
            return self.evaluate_uncached()
        return self.evaluate_cached(*self._model_cache())

    def evaluate_uncached(self):
        """Results from the model's own encoders, nothing cached."""
        raise NotImplementedError

    def evaluate_cached(self, cache, fresh):
        """Results through `cache` (`fresh`: new since the last run)."""
        raise NotImplementedError

    def _use_dataset(self, dataset, image_key, key, kind):
        """Checks and keeps the `(image, key)` dataset `evaluate` reads."""
        check_dataset(dataset, image_key, key, kind)
        self.dataset = dataset
        self.image_key = image_key

    # --- Keras hooks ------------------------------------------------------

    def _model_cache(self):
        """`(cache, fresh)`: the model's `LiTEncodingCache`, new (and no
        features cached) when the model changed since the last run."""
        model = self.model
        fresh = self._cache is None or self._cache.model is not model
        if fresh:
            self._cache = LiTEncodingCache(model, self.batch_size)
            self._features = None
        return self._cache, fresh

    def _backbone_features(self, read):
        """The image features `read()` returned, read again only when the
        image backbone's weights changed (see `backbone_fingerprint`)."""
        fingerprint = self._cache.backbone_fingerprint()
        if self._features is None or fingerprint != self._fingerprint:
            self._features = read()
            self._fingerprint = fingerprint
        return self._features

    def on_train_begin(self, logs=None):
        # Weights may have been loaded or changed between fits: reuse
        # results only within one `fit`.
        self._last = self._last_iterations = None
        self._seen_iterations = self._iterations()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_logs = None

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps is None:
            return
        iterations = self._iterations()
        n = self.every_n_steps
        if iterations // n > self._seen_iterations // n:
            scalars = self._run("batch", iterations)
            self._epoch_logs = scalars
            if logs is not None:
                logs.update(scalars)
        self._seen_iterations = iterations

    def on_epoch_end(self, epoch, logs=None):
        scalars = self._epoch_logs
        n = self.every_n_epochs
        if n is not None and (epoch + 1) % n == 0:
            scalars = self._run("epoch", epoch)
        if scalars and logs is not None:
            logs.update(scalars)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    # --- Internals --------------------------------------------------------

    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return 0
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def _run(self, unit, step):
        iterations = self._iterations()
        if self._last is not None and iterations == self._last_iterations:
            # No optimizer step since the last run: the weights, hence the
            # results, are unchanged.
            results = self._last
        else:
            results = self.evaluate()
            self._last, self._last_iterations = results, iterations
        self.results.append(
            {"epoch": getattr(self, "_epoch", 0), "step": iterations} | results
        )
        scalars = {
            f"{self.prefix}_{name}": float(value)
            for name, value in results.items()
            if np.ndim(value) == 0 and not name.startswith("num_")
        }
        self._write(unit, step, scalars)
        if self.verbose:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in scalars.items())
            print(f"{type(self).__name__} ({unit} {step}): {shown}")
        return scalars

    def _write(self, unit, step, scalars):
        if self.log_dir is None:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for name, value in scalars.items():
                write_scalar(f"{unit}_{name}", value, int(step))
        self._writer.flush()


def write_scalar(tag, value, step):
    """A TensorBoard scalar, without needing the `tensorboard` package.

    `tf.summary.scalar` raises unless `tensorboard` is installed (TF 2.21
    no longer depends on it); this writes the same event, a float32 tensor
    with the scalars plugin's metadata, with TF core ops only.
    """
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    tf.summary.write(
        tag,
        tf.constant(value, "float32"),
        step=step,
        metadata=metadata.SerializeToString(),
    )


class LiTEncodingCache:
    """Embeds with a `LiTModel`, keeping what a training step cannot change.

    Tokenised texts never change. Image features (the backbone's pooled
    output, before any trainable image head) do not change while the
    backbone's weights do not (`backbone_fingerprint`), as with a locked
    tower. Text embeddings and image-head outputs are recomputed on every
    call, since the text tower and head train.
    """

    def __init__(self, model, batch_size):
        import tensorflow as tf

        self.model = model
        self.batch_size = batch_size
        # Fixed signatures with a free batch dimension: one trace each.
        self._feature_functions = {}
        feature_spec = tf.TensorSpec(
            [None, model.image_encoder.feature_dim], "float32"
        )
        self._embed_features = tf.function(
            lambda features: model(
                {"image_embeddings": features}, training=False
            )["image_embeddings"],
            input_signature=[feature_spec],
        )
        token_spec = tf.TensorSpec(
            [None, model.text_encoder.sequence_length], "int32"
        )
        self._embed_tokens = tf.function(
            lambda tokens: model(tokens, training=False)["text_embeddings"],
            input_signature=[
                {"token_ids": token_spec, "padding_mask": token_spec}
            ],
        )

    def _feature_function(self, image_shape):
        """Backbone features for images of one `(height, width, 3)`."""
        import tensorflow as tf

        if image_shape not in self._feature_functions:
            encoder = self.model.image_encoder
            preprocessor = self.model.preprocessor
            self._feature_functions[image_shape] = tf.function(
                lambda images: encoder.extract_features(
                    preprocessor.preprocess_images(images), training=False
                ),
                input_signature=[
                    tf.TensorSpec((None,) + image_shape, "float32")
                ],
            )
        return self._feature_functions[image_shape]

    @staticmethod
    def supports(model):
        return all(
            hasattr(model, name)
            for name in ("image_encoder", "text_encoder", "preprocessor")
        )

    def backbone_fingerprint(self):
        """Per-variable sums of the image backbone's weights.

        Cached features stay valid while this is unchanged: always for a
        locked tower, and also if a tower was unlocked, trained and locked
        again between two runs (then the features are recomputed).
        """
        backbone = self.model.image_encoder.backbone
        return tuple(
            float(np.sum(keras.ops.convert_to_numpy(v), dtype="float64"))
            for v in backbone.weights
        )

    def image_features(self, key, images):
        """Pre-head image features `[n, F]` of raw images (or as given)."""
        images = np.asarray(images, dtype="float32")
        if key == "image_embeddings":
            return images
        return np.asarray(self._feature_function(images.shape[1:])(images))

    def embed_image_features(self, features):
        """Unit image embeddings `[n, D]` (image head applied)."""
        return self._map(self._embed_features, features)

    def tokenize(self, texts):
        """Texts -> `{"token_ids", "padding_mask"}` numpy arrays."""
        token_ids, padding_mask = [], []
        for start in range(0, len(texts), 4096):
            tokens = self.model.text_encoder.tokenize(
                list(texts[start : start + 4096])
            )
            token_ids.append(tokens["token_ids"].numpy())
            padding_mask.append(tokens["padding_mask"].numpy())
        return {
            "token_ids": np.concatenate(token_ids),
            "padding_mask": np.concatenate(padding_mask),
        }

    def embed_tokens_in_chunks(self, tokens):
        """Yields unit text embeddings, one `[batch, D]` chunk at a time."""
        total = len(tokens["token_ids"])
        for start in range(0, total, self.batch_size):
            batch = {
                key: value[start : start + self.batch_size]
                for key, value in tokens.items()
            }
            yield l2_normalize(np.asarray(self._embed_tokens(batch)))

    def _map(self, function, array):
        outputs = [
            np.asarray(function(array[start : start + self.batch_size]))
            for start in range(0, len(array), self.batch_size)
        ]
        return l2_normalize(np.concatenate(outputs))
