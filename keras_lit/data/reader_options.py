"""`ReaderOptions`: the options every `keras_lit.data` reader shares."""

import dataclasses

import tensorflow as tf

from keras_lit.data.skipped_images import SkippedImages
from keras_lit.image_ops import DEFAULT_MAX_PIXELS

CAPTION_MODES = ("random", "first", "all")
AUGMENTATIONS = ("inception_crop",)


# Field annotations are what makes a dataclass; keras_lit has no other type
# annotations (types are in the docstrings).
@dataclasses.dataclass(frozen=True)
class ReaderOptions:
    """How a reader batches, shuffles, samples and guards its examples.

    Every reader (`tfrecord_dataset`, `csv_dataset`, `folder_dataset`,
    `image_files_dataset`, `tfds_dataset`) takes one as `options=`, or the
    same names as keyword arguments, which override the fields of
    `options`. One object can configure several readers, e.g. the training
    and validation splits. Invalid values raise a `ValueError` naming the
    field and the value received.

    Args:
        batch_size: optional int. Batch the output (`None`: unbatched).
        shuffle: bool. Shuffle files and examples. Defaults to `True`.
        seed: optional int. Makes shuffling, augmentation and caption
            sampling reproducible; each epoch still differs.
        augment: `None`, `"inception_crop"` (random 5-100% crop, the LiT
            recipe) or a callable `augment(image, seed) -> image` applied to
            the decoded uint8 image before the resize and crop.
        caption: `"random"` (a random caption per image each time it is
            read), `"first"`, or `"all"` (every caption: `[N]` strings,
            ragged when batched; what `precompute_image_embeddings` wants).
        max_pixels: int. Images whose header claims more pixels are
            skipped. Defaults to 50 million.
        shuffle_buffer_size: int. Decoded examples in the shuffle buffer
            (TFRecord and tfds readers; the file-list readers shuffle the
            whole list instead).
        drop_remainder: bool. Drop the last partial batch (static shapes).
        skipped_images: optional `SkippedImages` to count into (to share one
            counter between several datasets).
        num_parallel_calls: parallelism of decoding and of file reading.
        cycle_length: int. TFRecord files read at once when shuffling.

    Example:
    >>> options = keras_lit.data.ReaderOptions(batch_size=256, seed=0)
    >>> train = keras_lit.data.tfrecord_dataset(  # doctest: +SKIP
    ...     "pairs/train-*.tfrecord", image_size=(224, 224), options=options)
    >>> val = keras_lit.data.csv_dataset(  # doctest: +SKIP
    ...     "val.csv", image_size=(224, 224), options=options, shuffle=False)
    """

    batch_size: object = None
    shuffle: bool = True
    seed: object = None
    augment: object = None
    caption: str = "random"
    max_pixels: int = DEFAULT_MAX_PIXELS
    shuffle_buffer_size: int = 1000
    drop_remainder: bool = True
    skipped_images: object = None
    num_parallel_calls: int = tf.data.AUTOTUNE
    cycle_length: int = 8

    def __post_init__(self):
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ValueError(
                "`batch_size` must be a positive int or None (unbatched). "
                f"Received: batch_size={self.batch_size!r}"
            )
        if self.caption not in CAPTION_MODES:
            raise ValueError(
                "`caption` must be one of "
                f"{', '.join(map(repr, CAPTION_MODES))}. "
                f"Received: caption={self.caption!r}"
            )
        augment = self.augment
        if not (
            augment is None or augment in AUGMENTATIONS or callable(augment)
        ):
            raise ValueError(
                "`augment` must be None, 'inception_crop' or a callable "
                "`augment(image, seed) -> image`. "
                f"Received: augment={augment!r}"
            )
        for name in ("max_pixels", "shuffle_buffer_size", "cycle_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must be a positive int. "
                    f"Received: {name}={value!r}"
                )
        if self.skipped_images is not None and not isinstance(
            self.skipped_images, SkippedImages
        ):
            raise ValueError(
                "`skipped_images` must be a keras_lit.data.SkippedImages. "
                f"Received: {type(self.skipped_images).__name__}"
            )

    @classmethod
    def from_arguments(cls, options=None, **overrides):
        """`options` (or the defaults) with keyword arguments applied.

        What every reader does with its `options` and `**kwargs`: an unknown
        name raises a `TypeError` listing the known ones.
        """
        if options is None:
            options = cls()
        elif not isinstance(options, cls):
            raise ValueError(
                "`options` must be a keras_lit.data.ReaderOptions (pass "
                "other settings by keyword, e.g. batch_size=32). "
                f"Received: options={options!r}"
            )
        unknown = sorted(
            set(overrides) - {f.name for f in dataclasses.fields(cls)}
        )
        if unknown:
            raise TypeError(
                f"Unexpected keyword argument(s) {unknown}. Reader options "
                f"are: {', '.join(f.name for f in dataclasses.fields(cls))}."
            )
        return (
            dataclasses.replace(options, **overrides) if overrides else options
        )
