import keras
import numpy as np
from keras import ops

from keras_lit.layers.locked_image_encoder import LockedImageEncoder
from keras_lit.layers.nested_config import from_nested_config
from keras_lit.zero_shot.weights import build_zero_shot_weights
from keras_lit.zero_shot.weights import l2_normalize
from keras_lit.zero_shot.weights import validate_class_names


@keras.saving.register_keras_serializable(package="keras_lit")
class ZeroShotClassifier(keras.Model):
    """Images -> class probabilities, from a LiT image tower and class texts.

    `probabilities = softmax(temperature * normalize(image_embedding) @
    class_weights.T)` (with a `bias`, from a sigmoid-loss model: each
    class's own `sigmoid(temperature * cosine + bias)`, as SigLIP reports
    them), where each row of `class_weights` is a class's
    prompt-ensemble text embedding (see `build_zero_shot_weights`). The class
    names, the `[K, D]` class weights and the image tower travel with the
    model: `model.save("classifier.keras")` and `keras.saving.load_model`
    give back the same predictions, and the classifier can be called as a
    layer inside another Keras model.

    Args:
        image_encoder: a `LockedImageEncoder` (e.g. `lit_model.image_encoder`,
            shared, not copied).
        class_names: list of `K` class names; output column `k` is
            `class_names[k]`.
        class_weights: optional float `[K, D]` class embeddings with unit
            rows; `D` is the image embedding width. Zeros when omitted (then
            load weights, as `from_config` does).
        temperature: float. Logit scale before the softmax. Defaults to
            `100.0` (CLIP's); `from_lit_model` uses the model's learned one.
        bias: optional float. The sigmoid loss's logit bias; `None` (the
            default) gives softmax probabilities.

    Call arguments:
        images: `[B, H, W, 3]` pixels in [0, 255] (uint8 or float). Resized
            to the tower's `image_size` when they differ.

    Example:
    >>> classifier = ZeroShotClassifier.from_lit_model(
    ...     lit_model, ["cat", "dog"])  # doctest: +SKIP
    >>> classifier.predict(images).shape  # doctest: +SKIP
    (8, 2)
    >>> top = classifier.predict_top_k(images, k=1)  # doctest: +SKIP
    >>> top["class_names"][0]  # doctest: +SKIP
    ['cat']
    """

    def __init__(
        self,
        image_encoder,
        class_names,
        class_weights=None,
        temperature=100.0,
        bias=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(image_encoder, LockedImageEncoder):
            raise ValueError(
                "`image_encoder` must be a keras_lit.layers.LockedImageEncoder."
                f" Received: {type(image_encoder).__name__}"
            )
        class_names = validate_class_names(class_names)
        temperature = float(temperature)
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(
                "`temperature` must be a finite float > 0. "
                f"Received: temperature={temperature}"
            )
        if bias is not None and not np.isfinite(float(bias)):
            raise ValueError(f"`bias` must be finite. Received: bias={bias}")
        num_classes, width = len(class_names), image_encoder.output_dim
        if class_weights is not None:
            class_weights = np.asarray(class_weights, dtype="float32")
            if class_weights.shape != (num_classes, width):
                raise ValueError(
                    "`class_weights` must have shape [num_classes, "
                    f"embedding_dim] = [{num_classes}, {width}]. Received: "
                    f"class_weights.shape={class_weights.shape}"
                )
            if not np.all(np.isfinite(class_weights)):
                raise ValueError("`class_weights` must be finite.")

        # === Layers ===
        self.image_encoder = image_encoder
        self.image_encoder.build()
        initializer = (
            "zeros"
            if class_weights is None
            else keras.initializers.Constant(class_weights)
        )
        self.class_weights = self.add_weight(
            shape=(num_classes, width),
            initializer=initializer,
            trainable=False,
            dtype="float32",
            name="class_weights",
        )

        # === Config ===
        self.class_names = class_names
        self.temperature = temperature
        self.bias = None if bias is None else float(bias)
        self.num_classes = num_classes
        self.built = True

    @classmethod
    def from_lit_model(
        cls,
        model,
        class_names,
        templates=None,
        temperature=None,
        batch_size=256,
        verbose="auto",
        **kwargs,
    ):
        """Builds the class weights with `model`'s text tower.

        Args:
            model: a `LiTModel`.
            class_names: list of class names.
            templates: templates containing `{}` or a prompt-set name.
                Defaults to `"clip_best_7"`.
            temperature: optional float. Defaults to the model's learned
                temperature.
            batch_size, verbose: passed to `build_zero_shot_weights`.
        """
        class_weights = build_zero_shot_weights(
            model,
            class_names,
            templates,
            batch_size=batch_size,
            verbose=verbose,
        )
        if temperature is None:
            temperature = float(ops.convert_to_numpy(model.temperature))
        if model.head.bias is not None:
            kwargs.setdefault(
                "bias", float(ops.convert_to_numpy(model.head.bias))
            )
        return cls(
            model.image_encoder,
            class_names,
            class_weights=class_weights,
            temperature=temperature,
            **kwargs,
        )

    def call(self, images, training=False):
        if self.bias is not None:
            return ops.sigmoid(self.logits(images))
        return ops.softmax(self.logits(images), axis=-1)

    def logits(self, images):
        """`temperature * cosine(image, class)`, float32 `[B, K]`."""
        pixels = self.image_encoder.preprocess(images)
        features = self.image_encoder.extract_features(pixels, training=False)
        embeddings = ops.normalize(
            ops.cast(self.image_encoder.project(features), "float32"), axis=-1
        )
        scores = ops.matmul(embeddings, ops.transpose(self.class_weights))
        scores = scores * self.temperature
        return scores if self.bias is None else scores + self.bias

    def compute_output_spec(self, images, training=False):
        return keras.KerasTensor((images.shape[0], self.num_classes), "float32")

    def predict_top_k(self, images, k=5, batch_size=32):
        """The `k` most probable classes per image, best first.

        Ties go to the lower class index, as with `tf.math.top_k`.

        Returns:
            dict with `"indices"` (int `[N, k]`), `"probabilities"`
            (float32 `[N, k]`) and `"class_names"` (`N` lists of `k` str).
        """
        if not isinstance(k, int) or not 1 <= k <= self.num_classes:
            raise ValueError(
                f"`k` must be an int in [1, {self.num_classes}]. Received: "
                f"k={k!r}"
            )
        probabilities = self.predict(images, batch_size=batch_size, verbose=0)
        indices = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
        return {
            "indices": indices,
            "probabilities": np.take_along_axis(probabilities, indices, -1),
            "class_names": [
                [self.class_names[i] for i in row] for row in indices
            ],
        }

    def set_class_weights(self, class_weights):
        """Replaces the `[K, D]` class weights (rows are re-normalised)."""
        class_weights = np.asarray(class_weights, dtype="float32")
        if class_weights.shape != tuple(self.class_weights.shape):
            raise ValueError(
                "`class_weights` must have shape "
                f"{tuple(self.class_weights.shape)}. Received: "
                f"{class_weights.shape}"
            )
        self.class_weights.assign(l2_normalize(class_weights))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": keras.layers.serialize(self.image_encoder),
                "class_names": list(self.class_names),
                "temperature": self.temperature,
                "bias": self.bias,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, ("image_encoder",))
