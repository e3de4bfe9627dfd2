"""Train-time image augmentation, stateless so pipelines stay reproducible."""

import tensorflow as tf


def inception_crop(image, image_size, seed, area_range=(0.05, 1.0)):
    """A random crop of 5-100% of the area, resized to `image_size`.

    The "Inception crop" of LiT's and big_vision's training recipes: the
    crop's aspect ratio is drawn from `[3/4, 4/3]` and the crop is resized to
    `image_size` without keeping its aspect ratio. Stateless: the same `seed`
    gives the same crop.

    Args:
        image: `[height, width, 3]` image (any dtype).
        image_size: `(height, width)` of the output.
        seed: int `[2]` tensor, a stateless random seed.
        area_range: `(low, high)` fraction of the image area to keep.
            Defaults to `(0.05, 1.0)`.

    Returns:
        float32 `[*image_size, 3]` in the input's value range.

    Example:
    >>> image = tf.zeros([64, 48, 3], tf.uint8)
    >>> tuple(inception_crop(image, (32, 32), seed=[1, 2]).shape)
    (32, 32, 3)
    """
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.zeros([0, 0, 4], tf.float32),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
        area_range=area_range,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, size)
    crop = tf.image.resize(
        tf.cast(crop, tf.float32), image_size, antialias=True
    )
    return tf.reshape(crop, tuple(image_size) + (3,))
