"""What a precompute reads: argument checks and the dataset it encodes."""

import tensorflow as tf

from keras_lit.data.pipeline import SEED_SCOPE

# Substrings of the op types that draw random numbers.
RANDOM_OP_MARKERS = (
    "Random",
    "Rng",
    "StatefulUniform",
    "StatefulStandardNormal",
    "StatefulTruncatedNormal",
    "Multinomial",
    "TruncatedNormal",
    "SampleDistortedBoundingBox",
)


def check_positive_int(name, value):
    """Raises a `ValueError` naming `name` unless `value` is an int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive int. Received: {name}={value!r}"
        )


def examples(dataset, image_size):
    """Any {"images", "texts"} dataset -> unbatched, texts as `[N]`.

    Images whose size is not `image_size` are resized here, one by one, as
    `LockedImageEncoder.preprocess` would resize them.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "`dataset` must be a tf.data.Dataset of {'images', 'texts'}. "
            f"Received: {type(dataset).__name__}"
        )
    spec = dataset.element_spec
    if not isinstance(spec, dict) or not {"images", "texts"} <= set(spec):
        raise ValueError(
            "`dataset` must yield dicts with 'images' and 'texts'. "
            f"Received element_spec: {spec}"
        )
    rank = spec["images"].shape.rank
    if rank == 4:
        dataset = dataset.unbatch()
        spec = dataset.element_spec
    elif rank != 3:
        raise ValueError(
            "`images` must be [height, width, 3] per example (or batched). "
            f"Received: images spec {spec['images']}"
        )
    if spec["images"].shape[-1] not in (None, 3):
        raise ValueError(
            "`images` must have 3 (RGB) channels. "
            f"Received: images spec {spec['images']}"
        )

    resize = tuple(spec["images"].shape[:2]) != tuple(image_size)

    def normalize(example):
        texts = example["texts"]
        if isinstance(texts, tf.RaggedTensor):
            texts = texts.flat_values
        images = example["images"]
        if resize:
            images = tf.image.resize(
                tf.cast(images, tf.float32), image_size, antialias=True
            )
            images = tf.clip_by_value(images, 0.0, 255.0)
        return {"images": images, "texts": tf.reshape(texts, [-1])}

    return dataset.map(normalize)


def find_random_ops(dataset):
    """Random op types in a dataset's graph, outside seed bookkeeping.

    Ops under the `keras_lit_seed` name scope (the readers' seeds and
    caption sampling) are ignored; anything else that draws random numbers
    (augmentation layers, `tf.image.random_*`, stateless crops, ...) is
    reported.
    """
    policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    graph = tf.compat.v1.GraphDef.FromString(
        dataset._as_serialized_graph(external_state_policy=policy).numpy()
    )
    nodes = list(graph.node)
    for function in graph.library.function:
        nodes.extend(function.node_def)
    found = set()
    for node in nodes:
        if SEED_SCOPE in node.name.split("/"):
            continue
        if "Dataset" in node.op and "RandomDataset" not in node.op:
            continue
        if any(marker in node.op for marker in RANDOM_OP_MARKERS):
            found.add(node.op)
    return sorted(found)
