import copy

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_lit.compat import TrainerWorkarounds
from keras_lit.compat import clip_global_gradients
from keras_lit.compat import multi_worker_logs
from keras_lit.distribute import is_multi_worker
from keras_lit.layers.contrastive_head import ContrastiveHead
from keras_lit.layers.locked_image_encoder import LockedImageEncoder
from keras_lit.layers.text_encoder import TextEncoder
from keras_lit.losses import make_loss
from keras_lit.models import lit_presets
from keras_lit.models.global_batch import check_global_batch
from keras_lit.models.global_batch import explain_worker_failures
from keras_lit.models.global_batch import global_batch_loss
from keras_lit.models.gradient_cache import cached_step_gradients
from keras_lit.models.gradient_cache import check_sub_batch_size
from keras_lit.models.lit_data import as_dataset
from keras_lit.models.lit_data import fit_arguments
from keras_lit.models.lit_data import unpack_batch
from keras_lit.models.lit_metrics import make_trackers
from keras_lit.models.lit_metrics import update_trackers
from keras_lit.preprocessing import LiTPreprocessor
from keras_lit.preprocessing import validate_examples

NO_DECAY_NAMES = ["bias", "gamma", "beta", "log_temperature", "embeddings"]


@keras.saving.register_keras_serializable(package="keras_lit")
class LiTModel(TrainerWorkarounds, keras.Model):
    """LiT: a locked image tower and a trainable text tower, trained with fit.

    `train_step` scores each replica's local pairs against the embeddings of
    the whole global batch (an all-gather of the other modality) with the
    symmetric InfoNCE loss, so N replicas give the same update as one device
    on the global batch. With a locked image tower, image embeddings are
    computed outside the `GradientTape`: the tower costs no backward pass and
    keeps no activations. Batches that carry precomputed
    `"image_embeddings"` skip the image backbone altogether.

    `fit`, `evaluate` and `predict` take raw examples
    `{"images": [B, H, W, 3] in [0, 255], "texts": [B] strings}` (or
    `"image_embeddings"` in place of `"images"`), as in-memory arrays or a
    `tf.data.Dataset`, and map `self.preprocessor` over them in `tf.data`.

    Args:
        image_encoder: a `LockedImageEncoder`.
        text_encoder: a `TextEncoder` whose `projection_dim` equals the image
            embedding width.
        temperature_init: float. Initial logit scale. Defaults to `10.0`.
        max_temperature: float. Clamp on the logit scale. Defaults to `100.0`.
        loss: `"softmax"` (symmetric InfoNCE, `ContrastiveLoss`) or
            `"sigmoid"` (SigLIP's pairwise loss, `SigmoidLoss`, with a
            learnable bias). Defaults to `"softmax"`.
        bias_init: float. Initial logit bias of the sigmoid loss. Defaults
            to `-10.0` (SigLIP); unused by the softmax loss.
        loss_block_size: optional int. Compute the loss over column blocks
            of this many rows of the global batch: the same values and
            gradients with at most `[b, loss_block_size]` logits alive per
            replica. Defaults to `None` (`[b, G]` logits), or to
            `text_sub_batch` when that is set.
        text_sub_batch: optional int. Gradient caching: run the text tower
            over sub-batches of this many rows (see
            `keras_lit.models.gradient_cache`), so its activations are
            those of one sub-batch. Same update as one whole-batch step
            (dropout off). Needs a locked image tower. Defaults to `None`.

    Example:
    >>> import keras_cv, numpy as np
    >>> from keras_lit.layers import LockedImageEncoder, TextEncoder
    >>> from keras_lit.layers import build_word_piece_vocabulary
    >>> captions = ["a red circle", "a blue square"] * 20
    >>> backbone = keras_cv.models.ResNetV2Backbone(
    ...     stackwise_filters=[8, 16], stackwise_blocks=[2, 2],
    ...     stackwise_strides=[1, 2], include_rescaling=True,
    ...     input_shape=(32, 32, 3))
    >>> image_encoder = LockedImageEncoder(backbone)
    >>> text_encoder = TextEncoder.from_scratch(
    ...     build_word_piece_vocabulary(captions, 50),
    ...     projection_dim=image_encoder.output_dim, num_layers=1)
    >>> model = LiTModel(image_encoder, text_encoder)
    >>> model.compile()  # AdamW, lr 1e-3, wd 1e-4, global clip 1.0
    >>> images = np.zeros((40, 32, 32, 3), "uint8")
    >>> history = model.fit({"images": images, "texts": captions},
    ...                     batch_size=8, verbose=0)
    >>> model.encode_texts(["a red circle"]).shape
    (1, 64)
    """

    def __init__(
        self,
        image_encoder,
        text_encoder,
        temperature_init=10.0,
        max_temperature=100.0,
        loss="softmax",
        bias_init=-10.0,
        loss_block_size=None,
        text_sub_batch=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if text_sub_batch is not None:
            check_sub_batch_size(text_sub_batch)
            loss_block_size = loss_block_size or text_sub_batch
        pair_loss = make_loss(loss, loss_block_size)
        if not isinstance(image_encoder, LockedImageEncoder):
            raise ValueError(
                "`image_encoder` must be a keras_lit.layers.LockedImageEncoder."
                f" Received: {type(image_encoder).__name__}"
            )
        if not isinstance(text_encoder, TextEncoder):
            raise ValueError(
                "`text_encoder` must be a keras_lit.layers.TextEncoder. "
                f"Received: {type(text_encoder).__name__}"
            )
        if text_encoder.projection_dim != image_encoder.output_dim:
            raise ValueError(
                "The text tower must project to the image embedding width. "
                f"Received: text_encoder.projection_dim="
                f"{text_encoder.projection_dim}, image embedding width="
                f"{image_encoder.output_dim}"
            )

        # === Layers ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.head = ContrastiveHead(
            temperature_init=temperature_init,
            max_temperature=max_temperature,
            bias_init=bias_init if loss == "sigmoid" else None,
            name="contrastive_head",
        )
        self.image_encoder.build()
        self.text_encoder.build()

        self.pair_loss = pair_loss

        # === Metrics ===
        (
            self.loss_tracker,
            self.temperature_tracker,
            self.image_to_text_accuracy,
            self.text_to_image_accuracy,
        ) = make_trackers()

        # === Config ===
        self.temperature_init = float(temperature_init)
        self.max_temperature = float(max_temperature)
        self.loss_name = loss
        self.bias_init = float(bias_init)
        self.loss_block_size = loss_block_size
        self.text_sub_batch = text_sub_batch
        self.embedding_dim = image_encoder.output_dim
        self.preprocessor = LiTPreprocessor(image_encoder, text_encoder)
        self.built = True

    # --- Public API -------------------------------------------------------

    @property
    def temperature(self):
        return self.head.temperature

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.temperature_tracker,
            self.image_to_text_accuracy,
            self.text_to_image_accuracy,
        ]

    def compile(self, optimizer="auto", loss="auto", **kwargs):
        """Configures training; `"auto"` follows LiT's public recipe.

        `optimizer="auto"` is AdamW with learning rate 1e-3, decoupled
        weight decay 1e-4 on kernels (not on biases, norms, embeddings or the
        temperature) and global-norm clipping at 1.0. `loss="auto"` is
        `keras_lit.losses.ContrastiveLoss()`, the symmetric InfoNCE over the
        global batch; any loss object with its `batch_loss` method works.
        """
        if loss in ("auto", None):
            loss = make_loss(self.loss_name, self.loss_block_size)
        if not callable(getattr(loss, "batch_loss", None)):
            raise ValueError(
                "LiTModel computes its loss over the global batch; `loss` "
                "must be 'auto' or a keras_lit loss with a `batch_loss` "
                f"method (e.g. ContrastiveLoss()). Received: loss={loss!r}"
            )
        self.pair_loss = loss
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(
                learning_rate=1e-3, weight_decay=1e-4, global_clipnorm=1.0
            )
            optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config["loss"] = keras.saving.serialize_keras_object(self.pair_loss)
        return config

    def compile_from_config(self, config):
        # `.keras` loading: restore the optimizer so its state loads too.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if isinstance(self.optimizer, keras.optimizers.AdamW):
            self.optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
        self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=None):
        """Returns L2-normalised `"image_embeddings"`/`"text_embeddings"`."""
        outputs = {}
        image_features = self._image_features(inputs, training=False)
        if image_features is not None:
            outputs["image_embeddings"] = self.head.normalize(
                self.image_encoder.project(image_features)
            )
        if "token_ids" in inputs:
            outputs["text_embeddings"] = self.head.normalize(
                self.text_encoder(inputs, training=training)
            )
        return outputs

    def encode_images(self, images, batch_size=64):
        """Raw images `[N, H, W, 3]` in [0, 255] -> normalised `[N, D]`."""
        validate_examples({"images": images})
        return self._encode({"images": images}, "image_embeddings", batch_size)

    def encode_texts(self, texts, batch_size=256):
        """A list of `N` strings -> normalised `[N, D]` embeddings."""
        validate_examples({"texts": texts})
        return self._encode({"texts": texts}, "text_embeddings", batch_size)

    def _encode(self, x, key, batch_size):
        ((name, values),) = x.items()
        if name == "texts":
            values = list(values)
        size = len(values)
        outputs = []
        for start in range(0, size, batch_size):
            batch = self.preprocessor(
                {name: values[start : start + batch_size]}
            )
            outputs.append(self._encode_function(batch)[key].numpy())
        return np.concatenate(outputs, axis=0)

    def _encode_function(self, batch):
        # One tf.function per model (a decorated method would be shared by
        # every instance and retrace for each).
        if getattr(self, "_encode_graph", None) is None:
            self._encode_graph = tf.function(
                lambda inputs: self(inputs, training=False),
                reduce_retracing=True,
            )
        return self._encode_graph(batch)

    # --- Training ---------------------------------------------------------

    def train_step(self, data):
        x = unpack_batch(data)
        objective, replicas, stats, gradients = self._gradients(x)
        update_trackers(self.metrics, stats, self.head.temperature)
        gradients = clip_global_gradients(self.optimizer, gradients, replicas)
        # Keras runs the step once more to find the end of a dataset of
        # unknown length (TFRecords); that run updates state that needs no
        # data (step counter, weight decay). Make it wait for this data.
        with tf.control_dependencies([objective]):
            self.optimizer.apply(gradients, self.trainable_variables)
        return self._logs()

    def _gradients(self, x):
        """`(objective, replicas, stats, gradients)` of one training step."""
        locked_features = None
        if self.image_encoder.locked:
            # Outside the tape: no backward pass, no stored activations.
            locked_features = tf.stop_gradient(self._image_features(x))
        if self.text_sub_batch:
            return cached_step_gradients(self, x, locked_features)
        with tf.GradientTape() as tape:
            image_embeddings, text_embeddings = self._embed(
                x, locked_features, training=True
            )
            # This replica's share of the global mean loss (see
            # `keras_lit.models.global_batch`): the optimizer sums them.
            objective, replicas, stats = global_batch_loss(
                self.pair_loss, image_embeddings, text_embeddings, self.head
            )
            if self.losses:
                objective = objective + ops.sum(self.losses) / replicas
            if hasattr(self.optimizer, "scale_loss"):
                objective = self.optimizer.scale_loss(objective)
        gradients = tape.gradient(objective, self.trainable_variables)
        return objective, replicas, stats, gradients

    def test_step(self, data):
        x = unpack_batch(data)
        image_embeddings, text_embeddings = self._embed(x)
        _, _, stats = global_batch_loss(
            self.pair_loss, image_embeddings, text_embeddings, self.head
        )
        update_trackers(self.metrics, stats, self.head.temperature)
        return self._logs()

    def _embed(self, x, features=None, training=False):
        """L2-normalised `(image_embeddings, text_embeddings)` of a batch."""
        if features is None:
            features = self._image_features(x, training=training)
        image_embeddings = self.image_encoder.project(features)
        text_embeddings = self.text_encoder(x, training=training)
        return (
            self.head.normalize(image_embeddings),
            self.head.normalize(text_embeddings),
        )

    def _image_features(self, x, training=False):
        if "image_embeddings" in x:
            return ops.cast(x["image_embeddings"], self.compute_dtype)
        if "images" in x:
            return self.image_encoder.extract_features(
                x["images"], training=training
            )
        return None

    def _logs(self):
        logs = {metric.name: metric.result() for metric in self.metrics}
        return multi_worker_logs(logs, self.distribute_strategy)

    # --- Distribution -----------------------------------------------------

    def preprocessing_layers(self):
        """Stateless layers built on first call (in `tf.data`), not here."""
        return [self.text_encoder.tokenizer, self.text_encoder.packer]

    def check_first_iterator(self, iterator):
        check_global_batch(iterator, self.distribute_strategy)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=force)
        if is_multi_worker(self.distribute_strategy):
            self.train_function = explain_worker_failures(self.train_function)
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is not None and not force:
            return self.test_function
        super().make_test_function(force=force)
        if is_multi_worker(self.distribute_strategy):
            self.test_function = explain_worker_failures(self.test_function)
        return self.test_function

    # --- Data -------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        x, kwargs = fit_arguments(self, x, y, batch_size, kwargs)
        return super().fit(x, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        x = as_dataset(self, x, y, batch_size, drop=True)
        return super().evaluate(x, **kwargs)

    def predict(self, x=None, batch_size=None, **kwargs):
        x = as_dataset(self, x, None, batch_size)
        return super().predict(x, **kwargs)

    # --- Serialization ----------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "text_encoder": keras.layers.serialize(self.text_encoder),
                "temperature_init": self.temperature_init,
                "max_temperature": self.max_temperature,
                "loss": self.loss_name,
                "bias_init": self.bias_init,
                "loss_block_size": self.loss_block_size,
                "text_sub_batch": self.text_sub_batch,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Deserialising pops keys from nested dicts: never touch the caller's.
        config = copy.deepcopy(config)
        for key in ("image_encoder", "text_encoder"):
            config[key] = keras.layers.deserialize(config[key])
        return cls(**config)

    def save_to_preset(self, preset_dir):
        """Saves the model as a KerasHub-style preset directory.

        Writes `config.json` (the model config, both towers included),
        `model.weights.h5`, the tokenizer (`tokenizer.json` and its
        vocabulary under `assets/tokenizer/`) and `metadata.json` (versions
        of keras_lit, Keras, KerasHub and TensorFlow, parameter count). The
        optimizer state is not saved; use `model.save("x.keras")` to resume
        training. Upload the directory with `keras_hub.upload_preset(uri,
        preset_dir)` and load it back with `LiTModel.from_preset(uri)`.

        Args:
            preset_dir: path of the directory to write (created if missing).
        """
        return lit_presets.save_model_preset(self, preset_dir)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A LiT model from a saved preset, or new from a recommended pair.

        Args:
            preset: a directory written by `save_to_preset`, or its
                `kaggle://`/`hf://` handle once uploaded; or the name of a
                recommended pair (`keras_lit.presets.list_presets()`), which
                builds an untrained LiT model from both pretrained towers
                (the text tower projects to the image embedding width).
            load_weights: bool. `False` keeps random weights. Defaults to
                `True`.
            **kwargs: `LiTModel` arguments (`temperature_init`, ...); only
                for a recommended pair.

        Example:
        >>> model.save_to_preset("my_lit")  # doctest: +SKIP
        >>> restored = LiTModel.from_preset("my_lit")  # doctest: +SKIP
        >>> fresh = LiTModel.from_preset("dinov2_bert")  # doctest: +SKIP
        """
        return lit_presets.load_lit_model(
            preset, cls=cls, load_weights=load_weights, **kwargs
        )
