import keras
import tensorflow as tf
from keras import ops

from keras_lit.compat import TrainerWorkarounds
from keras_lit.compat import clip_global_gradients
from keras_lit.compat import multi_worker_logs
from keras_lit.layers.contrastive_head import ContrastiveHead
from keras_lit.layers.nested_config import from_nested_config
from keras_lit.models import lit_presets
from keras_lit.models.global_batch import WorkerFailureMessages
from keras_lit.models.global_batch import check_global_batch
from keras_lit.models.global_batch import global_batch_loss
from keras_lit.models.gradient_cache import step_gradients
from keras_lit.models.jit_choice import auto_jit_compile
from keras_lit.models.lit_data import as_dataset
from keras_lit.models.lit_data import check_towers
from keras_lit.models.lit_data import encode
from keras_lit.models.lit_data import fit_arguments
from keras_lit.models.lit_data import unpack_batch
from keras_lit.models.lit_metrics import make_trackers
from keras_lit.models.lit_metrics import update_trackers
from keras_lit.models.lit_recipe import NO_DECAY_NAMES
from keras_lit.models.lit_recipe import check_loss
from keras_lit.models.lit_recipe import default_optimizer
from keras_lit.models.lit_recipe import pair_loss_for
from keras_lit.preprocessing import LiTPreprocessor
from keras_lit.preprocessing import validate_examples


@keras.saving.register_keras_serializable(package="keras_lit")
class LiTModel(TrainerWorkarounds, WorkerFailureMessages, keras.Model):
    """LiT: a locked image tower and a trainable text tower, trained with fit.

    `train_step` runs the towers, calls one loss object over the global
    batch (`keras_lit.models.global_batch`: N replicas give the same update
    as one device) and applies the gradients. A locked image tower runs
    outside the `GradientTape`; precomputed `"image_embeddings"` skip it.
    `fit`/`evaluate`/`predict` take raw `{"images", "texts"}` examples, in
    memory or as a `tf.data.Dataset`, and preprocess them in `tf.data`.

    Args:
        image_encoder: a `LockedImageEncoder`.
        text_encoder: a `TextEncoder` whose `projection_dim` equals the image
            embedding width.
        temperature_init: float. Initial logit scale. Defaults to `10.0`.
        max_temperature: float. Clamp on the logit scale. Defaults to `100.0`.
        loss: `"softmax"` (default) or `"sigmoid"` (SigLIP, learnable bias
            from `bias_init`); `loss_block_size`, `text_sub_batch`: README.

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
        check_towers(image_encoder, text_encoder)
        self.pair_loss, loss_block_size = pair_loss_for(
            loss, loss_block_size, text_sub_batch
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

        # === Metrics ===
        self.trackers = make_trackers()

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

    @property
    def temperature(self):
        return self.head.temperature

    @property
    def metrics(self):
        return list(self.trackers)

    def compile(self, optimizer="auto", loss="auto", **kwargs):
        """Configures training; `"auto"` follows LiT's public recipe.

        `optimizer="auto"`: AdamW, lr 1e-3, weight decay 1e-4 on kernels,
        clip 1.0 (`lit_recipe`). `loss="auto"`: the model's `loss`; any
        object with `batch_loss` works. `jit_compile="auto"` (default):
        keras_lit's XLA choice, logged once (`models.jit_choice`).
        """
        self.pair_loss = check_loss(
            loss, pair_loss_for(self.loss_name, self.loss_block_size)[0]
        )
        if optimizer == "auto":
            optimizer = default_optimizer()
        kwargs["jit_compile"] = auto_jit_compile(self, **kwargs)
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:  # `{}` when not compiled
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
        image_features = self.image_features(inputs, training=False)
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
        return encode(self, "images", images, batch_size)

    def encode_texts(self, texts, batch_size=256):
        """A list of `N` strings -> normalised `[N, D]` embeddings."""
        validate_examples({"texts": texts})
        return encode(self, "texts", list(texts), batch_size)

    # --- Training ---------------------------------------------------------

    def train_step(self, data):
        x = unpack_batch(data)
        objective, replicas, stats, gradients = step_gradients(self, x)
        update_trackers(self.metrics, stats, self.head.temperature)
        gradients = clip_global_gradients(self.optimizer, gradients, replicas)
        # Keras runs the step once more to find the end of a dataset of
        # unknown length (TFRecords); that run updates state that needs no
        # data (step counter, weight decay). Make it wait for this data.
        with tf.control_dependencies([objective]):
            self.optimizer.apply(gradients, self.trainable_variables)
        return self._logs()

    def test_step(self, data):
        embeddings = self.embed(unpack_batch(data))
        _, _, stats = global_batch_loss(self.pair_loss, *embeddings, self.head)
        update_trackers(self.metrics, stats, self.head.temperature)
        return self._logs()

    def embed(self, x, features=None, training=False):
        """L2-normalised `(image_embeddings, text_embeddings)` of a batch."""
        if features is None:
            features = self.image_features(x, training=training)
        image_embeddings = self.image_encoder.project(features)
        text_embeddings = self.text_encoder(x, training=training)
        return (
            self.head.normalize(image_embeddings),
            self.head.normalize(text_embeddings),
        )

    def image_features(self, x, training=False):
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

    def preprocessing_layers(self):
        """Stateless layers built on first call (in `tf.data`), not here."""
        return [self.text_encoder.tokenizer, self.text_encoder.packer]

    def check_first_iterator(self, iterator):
        check_global_batch(iterator, self.distribute_strategy)

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
        return from_nested_config(
            cls, config, ("image_encoder", "text_encoder")
        )

    def save_to_preset(self, preset_dir):
        """Saves the model as a KerasHub-style preset directory.

        See `keras_lit.models.lit_presets` for the files. The optimizer
        state is not saved; use `model.save("x.keras")` to resume training.
        Share it with `keras_hub.upload_preset(uri, preset_dir)`.
        """
        return lit_presets.save_model_preset(self, preset_dir)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A LiT model from a saved preset, or new from a recommended pair.

        Args:
            preset: a directory written by `save_to_preset` (or its
                `kaggle://`/`hf://` handle), a recommended pair
                (`keras_lit.presets.list_presets()`, untrained), or a Google
                LiT checkpoint: a released name (`"lit_b16b_2"`, see
                `keras_lit.checkpoints`), a `.npz` path or its directory.
            load_weights: bool. `False` keeps random weights.
            **kwargs: `LiTModel` arguments for a recommended pair;
                `vocabulary`, `text_num_heads` for a LiT checkpoint.

        Example:
        >>> restored = LiTModel.from_preset("my_lit")  # doctest: +SKIP
        """
        return lit_presets.load_lit_model(
            preset, cls=cls, load_weights=load_weights, **kwargs
        )
