"""Zero-shot evaluation on any TFDS image-classification dataset by name.

The class names come from the dataset's `ClassLabel` feature
(`info.features["label"].names`), with underscores turned into spaces.
Some datasets only know their names after download (CIFAR-10 under
`tfds.testing.mock_data` reports "0".."9"); pass `class_names=` to override.
"""

from keras_lit.zero_shot.evaluation import evaluate_zero_shot


def load_tfds_classification(
    name,
    split="test",
    image_size=(224, 224),
    batch_size=64,
    data_dir=None,
    image_key="image",
    label_key="label",
    class_names=None,
    max_examples=None,
    download=True,
):
    """A TFDS classification split as `{"images", "labels"}` batches.

    Images are converted to RGB (grayscale is repeated, alpha dropped),
    resized on the shorter side and centre-cropped to `image_size`
    (`keras_lit.image_ops.resize_and_crop`), as float32 in [0, 255].

    Args:
        name: TFDS dataset name, e.g. `"cifar100"` or `"oxford_flowers102"`.
        split: split name or slice (`"test"`, `"validation[:1000]"`).
        image_size: `(height, width)` of the model's image tower.
        batch_size: int.
        data_dir: optional TFDS data directory.
        image_key, label_key: feature names. Default `"image"`, `"label"`.
        class_names: optional list overriding the dataset's label names.
        max_examples: optional int. Evaluate on the first examples only.
        download: bool. Let TFDS download and prepare the data if needed.

    Returns:
        `(dataset, class_names)`.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from keras_lit.image_ops import resize_and_crop

    dataset, info = tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        download=download,
        with_info=True,
    )
    features = info.features
    missing = [key for key in (image_key, label_key) if key not in features]
    if missing:
        raise ValueError(
            f"TFDS dataset {name!r} has no feature "
            f"{' or '.join(map(repr, missing))}. Received features: "
            f"{sorted(features.keys())}; set `image_key`/`label_key`."
        )
    label_feature = features[label_key]
    if not isinstance(label_feature, tfds.features.ClassLabel):
        raise ValueError(
            f"`{label_key}` of TFDS dataset {name!r} must be a ClassLabel "
            f"for zero-shot classification. Received: "
            f"{type(label_feature).__name__}"
        )
    if class_names is None:
        class_names = [n.replace("_", " ") for n in label_feature.names]
    elif len(class_names) != label_feature.num_classes:
        raise ValueError(
            f"`class_names` must name all {label_feature.num_classes} "
            f"classes of {name!r}. Received: {len(class_names)} names"
        )
    image_size = tuple(int(v) for v in image_size)

    def to_example(example):
        image = example[image_key]
        channels = image.shape[-1]
        if channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        elif channels == 4:
            image = image[..., :3]
        elif channels != 3:
            raise ValueError(
                f"`{image_key}` must have 1, 3 or 4 channels. "
                f"Received shape {image.shape}"
            )
        return {
            "images": resize_and_crop(image, image_size),
            "labels": tf.cast(example[label_key], "int32"),
        }

    if max_examples is not None:
        dataset = dataset.take(int(max_examples))
    dataset = dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return dataset, list(class_names)


def evaluate_zero_shot_tfds(
    model,
    name,
    split="test",
    templates=None,
    class_names=None,
    batch_size=64,
    top_k=(1, 5),
    image_size=None,
    data_dir=None,
    image_key="image",
    label_key="label",
    max_examples=None,
    download=True,
):
    """`evaluate_zero_shot` on a TFDS dataset, with its own label names.

    Args:
        model: a `LiTModel` (or an object with `encode_images`,
            `encode_texts`; then pass `image_size`).
        name: TFDS dataset name.
        split, data_dir, image_key, label_key, max_examples, download: see
            `load_tfds_classification`.
        templates: templates or a prompt-set name. Defaults to
            `"clip_best_7"`.
        class_names: optional override of the dataset's label names.
        image_size: optional `(height, width)`; defaults to the model's.

    Returns:
        The `evaluate_zero_shot` dict, plus `"class_names"`.

    Example:
    >>> evaluate_zero_shot_tfds(model, "cifar100")  # doctest: +SKIP
    """
    if image_size is None:
        encoder = getattr(model, "image_encoder", None)
        if encoder is None:
            raise ValueError(
                "Pass `image_size` for a model without an `image_encoder`. "
                f"Received: {type(model).__name__}"
            )
        image_size = encoder.image_size
    dataset, class_names = load_tfds_classification(
        name,
        split=split,
        image_size=image_size,
        batch_size=batch_size,
        data_dir=data_dir,
        image_key=image_key,
        label_key=label_key,
        class_names=class_names,
        max_examples=max_examples,
        download=download,
    )
    results = evaluate_zero_shot(
        model,
        dataset,
        class_names,
        templates=templates,
        batch_size=batch_size,
        top_k=top_k,
    )
    results["class_names"] = class_names
    return results
