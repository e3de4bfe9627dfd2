import numpy as np

from keras_lit.callbacks.evaluation_callback import EvaluationCallback
from keras_lit.zero_shot.datasets import classification_batches
from keras_lit.zero_shot.evaluation import classification_metrics
from keras_lit.zero_shot.evaluation import classification_ranks
from keras_lit.zero_shot.evaluation import evaluate_zero_shot
from keras_lit.zero_shot.prompts import resolve_templates
from keras_lit.zero_shot.weights import average_prompt_embeddings
from keras_lit.zero_shot.weights import format_prompts
from keras_lit.zero_shot.weights import l2_normalize
from keras_lit.zero_shot.weights import validate_templates


class ZeroShotEvaluation(EvaluationCallback):
    """Zero-shot accuracy during `fit`, into History and TensorBoard.

    Computes what `keras_lit.zero_shot.evaluate_zero_shot` computes, but
    caches across runs: the prompts are tokenised once, and while the image
    backbone's weights do not change (a locked tower) the images go through
    it once (later runs only apply the image head, if any, to the cached
    features). The class
    weights are rebuilt on every run, because the text tower trains.

    Logged keys (with the default prefix): `"zero_shot_top1_accuracy"`,
    `"zero_shot_top5_accuracy"` and `"zero_shot_mean_per_class_accuracy"`.
    Per-class accuracy and counts are in `self.results`.

    Args:
        dataset: `{"images", "labels"}` arrays or a `tf.data.Dataset` (see
            `evaluate_zero_shot`).
        class_names: list of class names, in label order.
        templates: templates containing `{}` or a prompt-set name.
            Defaults to `"clip_best_7"`.
        top_k: tuple of ints. Defaults to `(1, 5)`.
        prefix: str. Defaults to `"zero_shot"`.
        image_key, label_key: dataset keys.
        **kwargs: `every_n_epochs` (default `1`), `every_n_steps`,
            `batch_size` (default `64`), `log_dir` and `verbose`: see
            `EvaluationCallback`.

    Example:
    >>> callback = ZeroShotEvaluation(
    ...     {"images": images, "labels": labels}, ["cat", "dog"],
    ...     templates=["a photo of a {}."], log_dir="logs/zero_shot")
    >>> history = model.fit(data, epochs=3,
    ...     callbacks=[callback, keras.callbacks.TensorBoard("logs")])
    >>> history.history["zero_shot_top1_accuracy"]  # doctest: +SKIP
    """

    def __init__(
        self,
        dataset,
        class_names,
        templates=None,
        top_k=(1, 5),
        prefix="zero_shot",
        image_key="images",
        label_key="labels",
        **kwargs,
    ):
        super().__init__(prefix=prefix, **kwargs)
        self.templates = validate_templates(resolve_templates(templates))
        self.prompts = format_prompts(class_names, self.templates)
        self.class_names = list(class_names)
        self.top_k = tuple(top_k)
        self._use_dataset(dataset, image_key, label_key, "classification")
        self.label_key = label_key
        self._tokens = self._labels = None

    def evaluate_uncached(self):
        return evaluate_zero_shot(
            self.model,
            self.dataset,
            self.class_names,
            self.templates,
            batch_size=self.batch_size,
            top_k=self.top_k,
            image_key=self.image_key,
            label_key=self.label_key,
            verbose=0,
        )

    def evaluate_cached(self, cache, fresh):
        if fresh:
            self._tokens = cache.tokenize(self.prompts)
        class_weights = average_prompt_embeddings(
            cache.embed_tokens_in_chunks(self._tokens), len(self.templates)
        )
        features = self._backbone_features(self._read_features)
        image_embeddings = cache.embed_image_features(features)
        scores = l2_normalize(image_embeddings) @ class_weights.T
        ranks = classification_ranks(scores, self._labels)
        return classification_metrics(
            ranks, self._labels, len(self.class_names), self.top_k
        )

    def _read_features(self):
        features, labels = [], []
        for key, images, batch_labels in classification_batches(
            self.dataset, self.batch_size, self.image_key, self.label_key
        ):
            features.append(self._cache.image_features(key, images))
            labels.append(batch_labels)
        if not features:
            raise ValueError("The zero-shot evaluation dataset is empty.")
        self._labels = np.concatenate(labels)
        return np.concatenate(features)
