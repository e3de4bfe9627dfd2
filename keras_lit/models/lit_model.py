import copy
import functools

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_lit.distribute import is_multi_worker
from keras_lit.distribute import per_replica_batch_size
from keras_lit.distribute import replica_context
from keras_lit.layers.contrastive_head import ContrastiveHead
from keras_lit.layers.locked_image_encoder import LockedImageEncoder
from keras_lit.layers.text_encoder import TextEncoder
from keras_lit.losses import contrastive_terms
from keras_lit.models.jit_choice import resolve_auto_jit_compile
from keras_lit.preprocessing import LiTPreprocessor
from keras_lit.preprocessing import validate_examples

NO_DECAY_NAMES = ["bias", "gamma", "beta", "log_temperature", "embeddings"]


@keras.saving.register_keras_serializable(package="keras_lit")
class LiTModel(keras.Model):
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
        **kwargs,
    ):
        super().__init__(**kwargs)
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
            name="contrastive_head",
        )
        self.image_encoder.build()
        self.text_encoder.build()

        # === Metrics ===
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.temperature_tracker = keras.metrics.Mean(name="temperature")
        self.image_to_text_accuracy = keras.metrics.Mean(
            name="image_to_text_accuracy"
        )
        self.text_to_image_accuracy = keras.metrics.Mean(
            name="text_to_image_accuracy"
        )

        # === Config ===
        self.temperature_init = float(temperature_init)
        self.max_temperature = float(max_temperature)
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

    def compile(
        self, optimizer="auto", loss="auto", jit_compile="auto", **kwargs
    ):
        """Configures training; `"auto"` follows LiT's public recipe.

        `optimizer="auto"` is AdamW with learning rate 1e-3, decoupled
        weight decay 1e-4 on kernels (not on biases, norms, embeddings or the
        temperature) and global-norm clipping at 1.0. `loss` must be
        `"auto"`: the symmetric InfoNCE over the global batch.
        `jit_compile="auto"` compiles the step with XLA on one replica when
        every layer supports it, also on CPU where Keras' own `"auto"` does
        not, and says which in one line (`keras_lit.models.jit_choice`);
        `True`/`False` force it.
        """
        if loss not in ("auto", None):
            raise ValueError(
                "LiTModel computes its own contrastive loss over the global "
                f"batch; `loss` must be 'auto'. Received: loss={loss!r}"
            )
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(
                learning_rate=1e-3, weight_decay=1e-4, global_clipnorm=1.0
            )
            optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
        if jit_compile == "auto":
            jit_compile = resolve_auto_jit_compile(
                self, kwargs.get("run_eagerly")
            )
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

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
        x = self._unpack(data)
        image_features = None
        if self.image_encoder.locked:
            # Outside the tape: no backward pass, no stored activations.
            image_features = tf.stop_gradient(self._image_features(x))
        with tf.GradientTape() as tape:
            if image_features is None:
                features = self._image_features(x, training=True)
            else:
                features = image_features
            image_embeddings = self.image_encoder.project(features)
            text_embeddings = self.text_encoder(x, training=True)
            # This replica's share of the global mean loss (see
            # `_global_loss`): the optimizer sums the shares' gradients.
            objective, replicas = self._global_loss(
                image_embeddings, text_embeddings
            )
            if self.losses:
                objective = objective + ops.sum(self.losses) / replicas
            if hasattr(self.optimizer, "scale_loss"):
                objective = self.optimizer.scale_loss(objective)
        variables = self.trainable_variables
        gradients = tape.gradient(objective, variables)
        gradients = self._clip_global_gradients(gradients, replicas)
        # Keras runs the step once more to find the end of a dataset of
        # unknown length (TFRecords). End-of-data aborts that run, but only
        # after state updates that need no data have happened: the step
        # counter (Adam's bias correction, schedules) and weight decay.
        # Make every update wait for this step's data.
        with tf.control_dependencies([objective]):
            self.optimizer.apply(gradients, variables)
        return self._logs()

    def test_step(self, data):
        x = self._unpack(data)
        image_embeddings = self.image_encoder.project(self._image_features(x))
        text_embeddings = self.text_encoder(x, training=False)
        self._global_loss(image_embeddings, text_embeddings)
        return self._logs()

    def _unpack(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if not isinstance(x, dict):
            raise ValueError(
                f"LiTModel expects dict batches. Received: {type(x).__name__}"
            )
        if "texts" in x:
            raise ValueError(
                "Raw 'texts' reached the compiled step. Map "
                "`model.preprocessor` over your tf.data pipeline, or pass the "
                "data to `model.fit` directly, which does it for you."
            )
        if "token_ids" not in x or "padding_mask" not in x:
            raise ValueError(
                "Training batches need 'token_ids' and 'padding_mask'. "
                f"Received keys: {sorted(x)}"
            )
        if "images" not in x and "image_embeddings" not in x:
            raise ValueError(
                "Training batches need 'images' or 'image_embeddings'. "
                f"Received keys: {sorted(x)}"
            )
        return x

    def _image_features(self, x, training=False):
        if "image_embeddings" in x:
            return ops.cast(x["image_embeddings"], self.compute_dtype)
        if "images" in x:
            return self.image_encoder.extract_features(
                x["images"], training=training
            )
        return None

    def _global_loss(self, image_embeddings, text_embeddings):
        """This replica's share of the global-batch loss; updates metrics.

        Under a strategy, each replica scores its `b` local rows against the
        all-gathered `G` rows of the other modality, with labels offset by
        the rows of the replicas before it: memory per replica is `b x G`,
        never `G x G`. The all-gather sends each replica the gradients of
        its own rows from every replica (a SUM), and the optimizer sums the
        replicas' gradients. Scaling the local mean loss by `b / G` (`1 /
        replicas` for even batches) therefore makes the summed update the
        gradient of the global mean loss, as one device would compute it,
        also for an uneven last batch. The metrics are summed over replicas,
        so every replica reports the global values.

        Returns:
            `(objective, replicas)`: the scaled loss to differentiate and
            the number of replicas in sync.
        """
        image_embeddings = self.head.normalize(image_embeddings)
        text_embeddings = self.head.normalize(text_embeddings)
        temperature = self.head.temperature
        context = replica_context()
        if context is None:
            loss, image_to_text, text_to_image, labels = contrastive_terms(
                image_embeddings, text_embeddings, temperature
            )
            stats = _batch_stats(
                loss, image_to_text, text_to_image, labels, local=True
            )
            self._update_metrics(stats, temperature)
            return loss, 1
        all_images = context.all_gather(image_embeddings, axis=0)
        all_texts = context.all_gather(text_embeddings, axis=0)
        loss, image_to_text, text_to_image, labels = contrastive_terms(
            image_embeddings,
            text_embeddings,
            temperature,
            all_image_embeddings=all_images,
            all_text_embeddings=all_texts,
            label_offset=_row_offset(context, image_embeddings),
        )
        local_batch = ops.cast(ops.shape(image_embeddings)[0], "float32")
        global_batch = ops.cast(ops.shape(all_images)[0], "float32")
        # A replica can get no rows of a partial last batch (mean of nothing
        # is NaN); its share of the loss is then 0.
        loss = ops.where(local_batch > 0, loss, 0.0)
        stats = _batch_stats(loss, image_to_text, text_to_image, labels)
        stats = context.all_reduce("SUM", tf.stop_gradient(stats))
        self._update_metrics(stats, temperature)
        return loss * (local_batch / global_batch), (
            context.num_replicas_in_sync
        )

    def _update_metrics(self, stats, temperature):
        """`stats` = `[sum of losses, correct i->t, correct t->i, rows]`."""
        rows = stats[3]
        # After the data (see `train_step`): a step that finds the end of
        # the data must not report a temperature.
        with tf.control_dependencies([stats]):
            self.loss_tracker.update_state(stats[0] / rows, sample_weight=rows)
            self.temperature_tracker.reset_state()
            self.temperature_tracker.update_state(temperature)
            self.image_to_text_accuracy.update_state(
                stats[1] / rows, sample_weight=rows
            )
            self.text_to_image_accuracy.update_state(
                stats[2] / rows, sample_weight=rows
            )

    def _clip_global_gradients(self, gradients, replicas):
        """Makes the optimizer clip the dense, global gradient.

        Three Keras 3.15 behaviours would otherwise break "N replicas equal
        one device" (the first two under the default `global_clipnorm`):
        - Its norm of an `IndexedSlices` gradient (the token embeddings)
          adds up the squares of repeated rows before summing them, so it
          is wrong whenever a token repeats in a batch. Dense gradients
          have the true norm.
        - It clips before summing gradients over replicas, so it would bound
          each replica's partial gradient. Sum here instead, clip with the
          optimizer's own settings, and hand each replica `1 / replicas` of
          the result: the optimizer's sum rebuilds the clipped global
          gradient, and its own clipping is then a no-op. This costs one
          more gradient all-reduce per step, only when clipping is on.
        - Its `LossScaleOptimizer` checks only the first replica's gradients
          for inf/NaN (it assumes they were all-reduced already), so one
          replica's overflow would slip into the update. Loss-scaled steps
          on several replicas take the summed path too, clipping or not.
        """
        optimizer = self.optimizer
        scale = 1.0
        loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        if loss_scaled:
            scale = optimizer.dynamic_scale
            optimizer = optimizer.inner_optimizer
        if optimizer.loss_scale_factor is not None:
            scale = scale * optimizer.loss_scale_factor
        clips = (optimizer.clipnorm, optimizer.global_clipnorm)
        context = replica_context()
        several = replicas > 1 and context is not None
        if not (any(clips) or optimizer.clipvalue or (loss_scaled and several)):
            return gradients
        present = [i for i, g in enumerate(gradients) if g is not None]
        dense = [tf.convert_to_tensor(gradients[i]) for i in present]
        gradients = list(gradients)
        if not several:
            for i, gradient in zip(present, dense):
                gradients[i] = gradient
            return gradients
        summed = context.all_reduce("SUM", dense)
        clipped = optimizer._clip_gradients([g / scale for g in summed])
        for i, gradient in zip(present, clipped):
            gradients[i] = gradient * (scale / replicas)
        return gradients

    def _logs(self):
        logs = {metric.name: metric.result() for metric in self.metrics}
        if is_multi_worker(self.distribute_strategy):
            # Keras 3.15 reduces logs over workers with `axis=0`, which
            # fails for scalars ("Invalid reduction dimension 0 for input
            # with 0 dimensions", keras-team/keras#20329).
            logs = {name: ops.reshape(v, [1]) for name, v in logs.items()}
        return logs

    # --- Distribution -----------------------------------------------------

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # `fit`/`evaluate` call this to build state from a first batch.
        # Under MultiWorkerMirroredStrategy Keras 3.15 fails there
        # ("Attempt to convert a value (PerReplica...)",
        # keras-team/keras#20585). LiTModel builds its layers in `__init__`,
        # so only the optimizer can be left, and it needs no data.
        #
        # The optimizer is built here, before the first step is traced: built
        # inside an XLA-compiled step (`jit_compile=True`, no strategy, where
        # Keras defers building to the trace) its slots fail with "We failed
        # to lift variable creations out of this tf.function". The tokenizer
        # and packer own no state and are built on their first call, in the
        # data pipeline, which pre-tokenised batches skip.
        if iterator is not None:
            self._check_global_batch(iterator)
        preprocessing = {
            id(layer)
            for sublayer in (
                self.text_encoder.tokenizer,
                self.text_encoder.packer,
            )
            for layer in sublayer._flatten_layers()
        }
        unbuilt = [
            layer
            for layer in self._flatten_layers()
            if not layer.built and id(layer) not in preprocessing
        ]
        compile_metrics = getattr(self, "_compile_metrics", None)
        if unbuilt or (
            compile_metrics is not None and not compile_metrics.built
        ):
            super()._maybe_symbolic_build(
                iterator=iterator, data_batch=data_batch
            )
            unbuilt = [layer for layer in unbuilt if not layer.built]
        if (
            not unbuilt
            and self.optimizer is not None
            and not self.optimizer.built
        ):
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def _check_global_batch(self, iterator):
        """Raises if a static global batch does not divide by replicas."""
        strategy = self.distribute_strategy
        adapter = getattr(iterator, "data_adapter", None)
        if strategy.num_replicas_in_sync == 1 or adapter is None:
            return
        dataset = adapter.get_tf_dataset()
        if not isinstance(dataset, tf.data.Dataset):
            return
        specs = tf.nest.flatten(dataset.element_spec)
        batch = specs[0].shape[0] if specs and specs[0].shape.rank else None
        if batch is not None:
            per_replica_batch_size(int(batch), strategy)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=force)
        if is_multi_worker(self.distribute_strategy):
            self.train_function = _explain_worker_failures(self.train_function)
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is not None and not force:
            return self.test_function
        super().make_test_function(force=force)
        if is_multi_worker(self.distribute_strategy):
            self.test_function = _explain_worker_failures(self.test_function)
        return self.test_function

    # --- Data -------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        # keras_lit.data readers count the images they skip: report them.
        skipped_images = getattr(x, "skipped_images", None)
        if skipped_images is not None:
            callbacks = list(kwargs.pop("callbacks", None) or [])
            if skipped_images not in callbacks:
                callbacks.append(skipped_images)
            kwargs["callbacks"] = callbacks
        shuffle = kwargs.pop("shuffle", True)
        x = self._dataset(x, y, batch_size, shuffle=shuffle, drop=True)
        validation_data = kwargs.pop("validation_data", None)
        if validation_data is not None:
            validation_data = self._dataset(
                validation_data,
                None,
                kwargs.pop("validation_batch_size", None) or batch_size,
            )
        return super().fit(
            x, validation_data=validation_data, shuffle=False, **kwargs
        )

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        x = self._dataset(x, y, batch_size, drop=True)
        return super().evaluate(x, **kwargs)

    def predict(self, x=None, batch_size=None, **kwargs):
        x = self._dataset(x, None, batch_size)
        return super().predict(x, **kwargs)

    def _dataset(self, x, y, batch_size, shuffle=False, drop=False):
        """Raw examples -> a batched, preprocessed `tf.data.Dataset`."""
        if y is not None:
            raise ValueError(
                "LiTModel is self-supervised: pass pairs in `x` as "
                "{'images', 'texts'} and leave `y` empty. "
                f"Received: y of type {type(y).__name__}"
            )
        if isinstance(x, tf.data.Dataset):
            if batch_size is not None:
                raise ValueError(
                    "Batch your tf.data.Dataset yourself; `batch_size` only "
                    f"applies to in-memory data. Received: batch_size="
                    f"{batch_size}"
                )
            return x.map(
                self.preprocessor, num_parallel_calls=tf.data.AUTOTUNE
            ).prefetch(tf.data.AUTOTUNE)
        if isinstance(x, tf.distribute.DistributedDataset):
            return x
        sizes = validate_examples(x)
        size = next(iter(sizes.values()))
        batch_size = batch_size or 32
        x = {k: list(v) if k == "texts" else v for k, v in x.items()}
        dataset = tf.data.Dataset.from_tensor_slices(x)
        if shuffle:
            # Workers of a multi-worker run must draw the same order, or the
            # global batches get duplicates and gaps.
            seed = 0 if is_multi_worker(self.distribute_strategy) else None
            dataset = dataset.shuffle(
                size, seed=seed, reshuffle_each_iteration=True
            )
        replicas = self.distribute_strategy.num_replicas_in_sync
        drop_remainder = drop and replicas > 1 and size >= batch_size
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.map(
            self.preprocessor, num_parallel_calls=tf.data.AUTOTUNE
        ).prefetch(tf.data.AUTOTUNE)

    # --- Serialization ----------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "text_encoder": keras.layers.serialize(self.text_encoder),
                "temperature_init": self.temperature_init,
                "max_temperature": self.max_temperature,
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
        from keras_lit.layers.preset_loading import save_model_preset

        return save_model_preset(self, preset_dir)

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
        from keras_lit.layers.preset_loading import load_lit_model

        return load_lit_model(
            preset, cls=cls, load_weights=load_weights, **kwargs
        )


def _top1(logits, labels, axis=-1):
    """`1.0` where `argmax(logits, axis) == labels`, per row (or column).

    Masked maxima instead of `argmax`, which XLA compiles to a slow
    variadic reduction on CPU; `axis=0` scores the columns of a matrix
    without transposing it. The label wins as `argmax` decides ties: above
    every earlier entry and at least every later one.
    """
    labels = ops.cast(labels, "int32")
    positions = ops.arange(ops.shape(logits)[axis], dtype="int32")
    if axis == 0:
        positions, labels = positions[:, None], labels[None, :]
    else:
        positions, labels = positions[None, :], labels[:, None]

    def masked_max(mask):
        masked = ops.where(mask, logits, -np.inf)
        return ops.max(masked, axis=axis, initial=-np.inf)

    target = masked_max(positions == labels)
    before = masked_max(positions < labels)
    after = masked_max(positions > labels)
    return ops.cast((target > before) & (target >= after), "float32")


def _batch_stats(loss, image_to_text, text_to_image, labels, local=False):
    """`[sum of losses, correct i->t, correct t->i, rows]` (float32).

    `local`: one device, where `text_to_image` is `image_to_text`
    transposed; its columns are scored in place.
    """
    rows = ops.cast(ops.shape(labels)[0], "float32")
    if local:
        text_correct = _top1(image_to_text, labels, axis=0)
    else:
        text_correct = _top1(text_to_image, labels)
    return ops.stack(
        [
            loss * rows,
            ops.sum(_top1(image_to_text, labels)),
            ops.sum(text_correct),
            rows,
        ]
    )


def _row_offset(context, embeddings):
    """Row of the global batch where this replica's rows start."""
    replica_id = context.replica_id_in_sync_group
    local_batch = embeddings.shape[0]
    if local_batch is not None:
        # Static shapes (drop_remainder=True): every replica has `b` rows.
        return replica_id * local_batch
    # An uneven (partial) batch: add up the rows of the replicas before.
    sizes = context.all_gather(tf.shape(embeddings)[:1], axis=0)
    return tf.reduce_sum(sizes[:replica_id])


def _explain_worker_failures(function):
    """Re-raises a lost-peer collective error with what to do about it."""

    @functools.wraps(function)
    def wrapper(iterator):
        try:
            return function(iterator)
        except (
            tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError,
        ) as error:
            cause = str(error).strip().splitlines()[0]
            raise type(error)(
                error.node_def,
                error.op,
                "Another worker of this multi-worker run failed or became "
                "unreachable, so this worker stopped training. Restart every "
                "worker with the same TF_CONFIG; with "
                "keras.callbacks.BackupAndRestore (one backup_dir per "
                "worker) training resumes from the last backup. Cause: "
                f"{cause}",
            ) from error

    return wrapper
