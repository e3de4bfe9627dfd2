import numpy as np

from keras_lit.callbacks.evaluation_callback import EvaluationCallback
from keras_lit.zero_shot.datasets import encode_retrieval_set
from keras_lit.zero_shot.evaluation import DEFAULT_RECALL_KS
from keras_lit.zero_shot.evaluation import distinct_captions
from keras_lit.zero_shot.evaluation import evaluate_retrieval
from keras_lit.zero_shot.evaluation import retrieval_metrics
from keras_lit.zero_shot.evaluation import retrieval_ranks


class RetrievalEvaluation(EvaluationCallback):
    """Image <-> text Recall@k during `fit`, into History and TensorBoard.

    Computes what `keras_lit.zero_shot.evaluate_retrieval` computes (several
    captions per image, pessimistic ties), caching the tokenised captions
    and, while the image backbone's weights do not change (a locked tower),
    the images' backbone features.

    Logged keys (with the default prefix): `"retrieval_image_to_text_
    recall_at_1"` (and `_5`, `_10`), `"retrieval_image_to_text_mean_rank"`,
    `"retrieval_image_to_text_median_rank"`, the same for
    `"text_to_image"`. Counts are in `self.results`.

    Args:
        dataset: `{"images", "texts"}` arrays or a `tf.data.Dataset`, one
            image with one or several captions per example.
        ks: tuple of ints. Defaults to `(1, 5, 10)`.
        image_key, text_key: dataset keys.
        prefix: str. Defaults to `"retrieval"`.
        **kwargs: `every_n_epochs` (default `1`), `every_n_steps`,
            `batch_size` (default `64`), `log_dir` and `verbose`: see
            `EvaluationCallback`.

    Example:
    >>> callback = RetrievalEvaluation(
    ...     {"images": images, "texts": captions_per_image}, every_n_steps=50)
    >>> model.fit(data, epochs=3, callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(
        self,
        dataset,
        ks=DEFAULT_RECALL_KS,
        image_key="images",
        text_key="texts",
        prefix="retrieval",
        **kwargs,
    ):
        super().__init__(prefix=prefix, **kwargs)
        self.ks = tuple(ks)
        self._use_dataset(dataset, image_key, text_key, "retrieval")
        self.text_key = text_key
        self._tokens = self._owners = self._caption_index = None

    def evaluate_uncached(self):
        keys = self.image_key, self.text_key
        return evaluate_retrieval(
            self.model, self.dataset, self.batch_size, self.ks, *keys
        )

    def evaluate_cached(self, cache, fresh):
        if fresh:
            self._tokens = None
        features = self._backbone_features(self._read)
        text_embeddings = np.concatenate(
            list(cache.embed_tokens_in_chunks(self._tokens))
        )[self._caption_index]
        image_embeddings = cache.embed_image_features(features)
        ranks = retrieval_ranks(image_embeddings, text_embeddings, self._owners)
        return retrieval_metrics(*ranks, ks=self.ks)

    def _read(self):
        features, captions, owners = encode_retrieval_set(
            self.dataset,
            self.batch_size,
            self.image_key,
            self.text_key,
            self._cache.image_features,
            "retrieval evaluation dataset",
        )
        if self._tokens is None:
            # Each distinct caption once, as `evaluate_retrieval` does.
            distinct, self._caption_index = distinct_captions(captions)
            self._tokens = self._cache.tokenize(distinct)
            self._owners = owners
        return features
