"""A counter of the images a `keras_lit.data` pipeline skipped, and why."""

import keras
import numpy as np
import tensorflow as tf

# Order of the counters in the variable; "loaded" counts the kept images.
FIELDS = ("loaded", "corrupt", "empty", "too_large", "no_caption")
REASONS = FIELDS[1:]
DESCRIPTIONS = {
    "corrupt": "corrupt, truncated, unknown format or unreadable",
    "empty": "empty",
    "too_large": "over the pixel limit",
    "no_caption": "without a caption",
}


class SkippedImages(keras.callbacks.Callback):
    """Counts images a data pipeline skipped, and reports them after `fit`.

    Every `keras_lit.data` reader attaches one to the dataset it returns
    (`dataset.skipped_images`). The pipeline updates it from inside
    `tf.data`, so the counts are right under `fit`, under a strategy and with
    parallel decoding. An image is skipped, never fatal, when its bytes are
    corrupt, truncated, empty or of an unknown format, when its file cannot
    be read, when its header claims more than `max_pixels` pixels (a
    decompression bomb), or when it has no caption. A GIF whose frames
    need more than `max_pixels` (whatever its header says) or an animated
    WebP is skipped and counted as corrupt.

    Pass it to `fit` (or `evaluate`) as a callback to log the total as
    `"skipped_images"` after each epoch (it lands in `history.history`) and
    to print a summary when training ends.

    Counts grow as the pipeline reads, so mid-epoch they may run a few
    elements ahead of the batches `fit` has consumed; a corrupt image is
    counted once the next good image of the same file arrives, and at the
    latest at the end of its file. Under multi-worker training each worker
    counts what it reads.

    Args:
        verbose: bool. Print the summary at the end of training.
            Defaults to `True`.

    Example:
    >>> dataset = keras_lit.data.folder_dataset(  # doctest: +SKIP
    ...     "photos/", image_size=(224, 224), batch_size=256)
    >>> model.fit(dataset, callbacks=[dataset.skipped_images])  # +SKIP
    >>> dataset.skipped_images.counts  # doctest: +SKIP
    {'corrupt': 2, 'empty': 1, 'too_large': 1, 'no_caption': 0}
    """

    def __init__(self, verbose=True):
        super().__init__()
        self.verbose = bool(verbose)
        self.variable = tf.Variable(
            tf.zeros([len(FIELDS)], tf.int64),
            trainable=False,
            name="skipped_images",
        )

    def add(self, deltas):
        """Adds an int64 `[5]` vector, ordered as `FIELDS` (in-graph)."""
        return self.variable.assign_add(tf.cast(deltas, tf.int64))

    def reset(self):
        """Sets every count back to zero."""
        self.variable.assign(tf.zeros([len(FIELDS)], tf.int64))

    def _values(self):
        return dict(zip(FIELDS, np.asarray(self.variable.numpy()).tolist()))

    @property
    def counts(self):
        """Skipped images per reason: a dict `{reason: int}`."""
        values = self._values()
        return {reason: values[reason] for reason in REASONS}

    @property
    def total(self):
        """The number of skipped images."""
        return sum(self.counts.values())

    @property
    def loaded(self):
        """The number of images decoded and kept."""
        return self._values()["loaded"]

    def report(self):
        """A one-line summary, e.g. `"skipped 2 of 10 images: 2 empty"`."""
        counts = self.counts
        seen = self.loaded + self.total
        if not self.total:
            return f"keras_lit.data: skipped 0 of {seen} images"
        details = ", ".join(
            f"{count} {DESCRIPTIONS[reason]}"
            for reason, count in counts.items()
            if count
        )
        return (
            f"keras_lit.data: skipped {self.total} of {seen} images ({details})"
        )

    def __repr__(self):
        return f"<SkippedImages {self.counts}, loaded={self.loaded}>"

    # --- Callback ---------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["skipped_images"] = self.total

    def on_train_end(self, logs=None):
        self._training = False
        if self.verbose:
            print(self.report())

    def on_test_end(self, logs=None):
        # `fit` validates through the same callbacks: report once, at the end.
        if self.verbose and not getattr(self, "_training", False):
            print(self.report())
