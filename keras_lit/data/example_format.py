"""The TFRecord layout of image-text pairs: `image/encoded` + `text`.

One `tf.train.Example` per image, as in the TF object-detection and tfds
conventions: `image/encoded` holds the encoded bytes (JPEG, PNG, GIF, BMP or
WebP, stored as-is), `text` one or several captions, and the optional
`image/filename` where the image came from.
"""

import tensorflow as tf

IMAGE_KEY = "image/encoded"
TEXT_KEY = "text"
FILENAME_KEY = "image/filename"


def serialize_example(image_bytes, texts, filename=None):
    """One image and its captions -> a serialized `tf.train.Example`.

    Args:
        image_bytes: bytes of an encoded image.
        texts: a caption (str) or a list of captions.
        filename: optional str recorded under `image/filename`.

    Example:
    >>> record = serialize_example(b"...", ["a cat", "a small cat"])
    >>> sorted(parse_example(record))
    ['image', 'texts']
    """
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    texts = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
    feature = {
        IMAGE_KEY: _bytes_feature([image_bytes]),
        TEXT_KEY: _bytes_feature(texts),
    }
    if filename is not None:
        feature[FILENAME_KEY] = _bytes_feature([str(filename).encode()])
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def parse_example(record, image_key=IMAGE_KEY, text_key=TEXT_KEY):
    """A serialized example -> `{"image": bytes, "texts": [N] strings}`.

    A missing image key gives empty bytes (counted as an empty image by the
    readers); a missing text key gives no captions.
    """
    features = tf.io.parse_single_example(
        record,
        {
            image_key: tf.io.FixedLenFeature([], tf.string, default_value=""),
            text_key: tf.io.VarLenFeature(tf.string),
        },
    )
    return {
        "image": features[image_key],
        "texts": tf.sparse.to_dense(features[text_key], default_value=""),
    }


def _bytes_feature(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
