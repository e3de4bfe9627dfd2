"""The training data of `keras-lit train`, from the config's `data` section."""

from keras_lit.cli.common import CLIError
from keras_lit.cli.common import existing_path


def read_captions(data, limit):
    """Training captions, for learning a vocabulary (no image decoding)."""
    import tensorflow as tf

    from keras_lit import data as lit_data

    fmt = data["format"]
    path = existing_path(data["train"], "data.train")
    if fmt == "csv":
        _, captions = lit_data.read_csv_pairs(
            path,
            image_column=data["image_column"],
            text_column=data["text_column"],
        )
    elif fmt == "folder":
        _, captions = lit_data.read_folder_pairs(
            path, captions_file=data["captions_file"]
        )
    elif fmt == "tfrecord":
        files = sorted(tf.io.gfile.glob(path))
        records = tf.data.TFRecordDataset(files).take(limit)
        captions = []
        for record in records:
            example = tf.train.Example.FromString(record.numpy())
            values = example.features.feature["text"].bytes_list.value
            captions.append([v.decode("utf-8") for v in values])
    elif fmt == "precomputed":
        from keras_lit.precompute import load_precomputed

        dataset = load_precomputed(path, shuffle=False, caption="first")
        captions = [
            example["texts"].numpy().decode("utf-8")
            for example in dataset.take(limit)
        ]
    else:
        raise CLIError(
            "data.format must be 'tfrecord', 'csv', 'folder' or "
            f"'precomputed'. Received: {fmt!r}"
        )
    flat = []
    for caption in captions[:limit]:
        if isinstance(caption, (list, tuple)):
            flat.extend(caption)
        else:
            flat.append(caption)
    if not flat:
        raise CLIError(f"data.train holds no captions: {path}")
    return flat


def image_text_dataset(data, image_size, for_precompute, batch_size, seed):
    """The reader of `data.format` over `data.train`."""
    from keras_lit import data as lit_data

    path = existing_path(data["train"], "data.train")
    options = dict(image_size=image_size)
    if for_precompute:
        options.update(shuffle=False, caption="all")
    else:
        options.update(
            shuffle=True,
            seed=seed,
            batch_size=batch_size,
            augment=data["augment"],
        )
    fmt = data["format"]
    if fmt == "tfrecord":
        return lit_data.tfrecord_dataset(path, **options)
    if fmt == "csv":
        return lit_data.csv_dataset(
            path,
            image_column=data["image_column"],
            text_column=data["text_column"],
            **options,
        )
    if fmt == "folder":
        return lit_data.folder_dataset(
            path, captions_file=data["captions_file"], **options
        )
    raise CLIError(f"Unsupported data.format={fmt!r}")
