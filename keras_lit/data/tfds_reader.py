"""Reads image-text pairs from a TensorFlow Datasets (tfds) dataset."""

from keras_lit.data.pipeline import reader_arguments
from keras_lit.data.pipeline import single_unit_dataset


def tfds_dataset(
    name,
    image_size,
    split="train",
    data_dir=None,
    image_key="image",
    text_key="captions/text",
    download=False,
    options=None,
    **kwargs,
):
    """Image-text pairs from a tfds dataset such as `coco_captions`.

    tfds' own image decoding is skipped: the encoded bytes go through the
    same guarded decoding as the other readers, so bad or oversized images
    are skipped and counted in `dataset.skipped_images`.

    Args:
        name: a tfds name (`"coco_captions"`, `"coco_captions/2017"`) or a
            `tfds.core.DatasetBuilder`.
        image_size: `(height, width)` of the output images.
        split: a tfds split, e.g. `"train"` or `"val[:10%]"`.
        data_dir: where the prepared dataset lives (tfds' default if None).
        image_key: feature holding the image, `/` for nested features.
        text_key: feature holding a caption or a sequence of captions, e.g.
            `"captions/text"` for `coco_captions`.
        download: bool. Let tfds download and prepare the dataset if it is
            not there yet. Defaults to `False` (fail with a clear error).
        options, **kwargs: as for `tfrecord_dataset`.

    Returns:
        A dataset as `tfrecord_dataset` returns.

    Example:
    >>> dataset = keras_lit.data.tfds_dataset(  # doctest: +SKIP
    ...     "coco_captions", image_size=(224, 224), batch_size=256)
    """
    import tensorflow_datasets as tfds

    image_size, options = reader_arguments(image_size, options, kwargs)
    builder = name
    if isinstance(name, str):
        builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    features = builder.info.features
    for key in (image_key, text_key):
        if _lookup_feature(features, key) is None:
            raise ValueError(
                f"Feature {key!r} not found in {builder.info.full_name}. "
                f"Its features: {list(features.keys())}. Set `image_key` / "
                "`text_key` (use '/' for nested features)."
            )
    try:
        source = builder.as_dataset(
            split=split,
            shuffle_files=options.shuffle,
            decoders=_skip_decoding(image_key, tfds.decode.SkipDecoding()),
            read_config=tfds.ReadConfig(shuffle_seed=options.seed),
        )
    except AssertionError as error:
        raise ValueError(
            f"tfds dataset {builder.info.full_name!r} is not prepared in "
            f"{builder.data_dir!r}. Prepare it (`tfds build`) or pass "
            f"`download=True`. ({error})"
        ) from None
    source = source.map(
        lambda example: {
            "image": _get(example, image_key),
            "texts": _get(example, text_key),
        }
    )

    def read_unit(unit, unit_seed):
        return source

    def load(example):
        return example["image"], example["texts"]

    return single_unit_dataset(read_unit, load, image_size, options)


def _lookup_feature(features, key):
    for part in key.split("/"):
        try:
            features = features[part]
        except (KeyError, TypeError):
            return None
        # Sequence({"text": ...}) nests its features one level down.
        features = getattr(features, "feature", features)
    return features


def _skip_decoding(key, decoder):
    decoders = decoder
    for part in reversed(key.split("/")):
        decoders = {part: decoders}
    return decoders


def _get(example, key):
    for part in key.split("/"):
        example = example[part]
    return example
