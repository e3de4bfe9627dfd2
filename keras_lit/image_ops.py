"""Image decoding and resizing in TensorFlow, shared by data and export.

Decoding follows the traps in this stack: `decode_image(channels=3,
expand_animations=False)` for every format (JPEG, PNG, GIF, BMP, WebP;
grayscale and RGBA become RGB), and a pixel limit read from the file header
*before* decoding, so a small file that claims a huge image (a decompression
bomb) is refused instead of allocating gigabytes.
"""

import tensorflow as tf

DEFAULT_MAX_PIXELS = 50_000_000


def image_header_size(image_bytes):
    """`(height, width)` read from a PNG, JPEG, GIF, BMP or WebP header.

    Reads a few header bytes only; never decodes pixels. Returns int64
    scalars; `(-1, -1)` when the format is unknown or the header is too short.
    WebP covers the lossy (`VP8 `), lossless (`VP8L`) and extended (`VP8X`)
    layouts; JPEG sizes come from `tf.io.extract_jpeg_shape`.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    length = tf.strings.length(image_bytes)

    def be(offset, count):
        raw = tf.strings.substr(image_bytes, offset, count)
        values = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)
        weights = tf.constant([256**i for i in reversed(range(count))], tf.int64)
        return tf.reduce_sum(values * weights)

    def le(offset, count):
        raw = tf.strings.substr(image_bytes, offset, count)
        values = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)
        weights = tf.constant([256**i for i in range(count)], tf.int64)
        return tf.reduce_sum(values * weights)

    unknown = (tf.constant(-1, tf.int64), tf.constant(-1, tf.int64))
    magic = tf.strings.substr(image_bytes, 0, 4)

    def png():
        # IHDR: width at bytes 16-19, height at 20-23, big-endian.
        return tf.cond(
            length >= 24, lambda: (be(20, 4), be(16, 4)), lambda: unknown
        )

    def gif():
        return tf.cond(
            length >= 10, lambda: (le(8, 2), le(6, 2)), lambda: unknown
        )

    def bmp():
        def sizes():
            height = le(22, 4)
            # Top-down BMPs store a negative height.
            height = tf.where(height >= 2**31, 2**32 - height, height)
            return (height, le(18, 4))

        return tf.cond(length >= 26, sizes, lambda: unknown)

    def jpeg():
        def sizes():
            shape = tf.cast(tf.io.extract_jpeg_shape(image_bytes), tf.int64)
            return (shape[0], shape[1])

        return sizes()

    def webp():
        chunk = tf.strings.substr(image_bytes, 12, 4)

        def lossy():
            # Frame header after the 3-byte tag and the 9d 01 2a start code:
            # 14-bit width and height, little-endian.
            return (le(28, 2) % 16384, le(26, 2) % 16384)

        def lossless():
            # 0x2f signature, then width-1 and height-1 packed in 14 bits.
            bits = le(21, 4)
            return ((bits // 16384) % 16384 + 1, bits % 16384 + 1)

        def extended():
            # Canvas width-1 and height-1, 24 bits each, little-endian.
            return (le(27, 3) + 1, le(24, 3) + 1)

        return tf.case(
            [
                (tf.equal(chunk, b"VP8 ") & (length >= 30), lossy),
                (tf.equal(chunk, b"VP8L") & (length >= 25), lossless),
                (tf.equal(chunk, b"VP8X") & (length >= 30), extended),
            ],
            default=lambda: unknown,
            exclusive=False,
        )

    is_png = tf.equal(magic, b"\x89PNG")
    is_gif = tf.equal(tf.strings.substr(image_bytes, 0, 3), b"GIF")
    is_bmp = tf.equal(tf.strings.substr(image_bytes, 0, 2), b"BM")
    is_jpeg = tf.equal(tf.strings.substr(image_bytes, 0, 2), b"\xff\xd8")
    # `substr` refuses a start beyond the end, hence the clamp.
    form_type = tf.strings.substr(image_bytes, tf.minimum(length, 8), 4)
    is_webp = tf.equal(magic, b"RIFF") & tf.equal(form_type, b"WEBP")
    return tf.case(
        [
            (is_png, png),
            (is_gif, gif),
            (is_bmp, bmp),
            (is_jpeg, jpeg),
            (is_webp, webp),
        ],
        default=lambda: unknown,
        exclusive=False,
    )


def check_image_bytes(image_bytes, max_pixels=DEFAULT_MAX_PIXELS):
    """A boolean scalar: non-empty bytes whose header is within `max_pixels`.

    Does not catch every corrupt file (decoding does); it refuses empty
    strings and headers that claim more than `max_pixels` pixels.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    non_empty = tf.strings.length(image_bytes) > 0

    def within_limit():
        height, width = image_header_size(image_bytes)
        return height * width <= max_pixels

    return tf.cond(non_empty, within_limit, lambda: tf.constant(False))


def decode_image(image_bytes, max_pixels=DEFAULT_MAX_PIXELS):
    """Encoded bytes -> `[H, W, 3]` uint8, refusing oversized headers.

    Raises `InvalidArgumentError` naming the problem for empty input, an
    image whose header exceeds `max_pixels`, or bytes that do not decode.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    tf.debugging.assert_greater(
        tf.strings.length(image_bytes),
        0,
        message="image_bytes: empty string, expected an encoded image",
    )
    height, width = image_header_size(image_bytes)
    tf.debugging.assert_less_equal(
        height * width,
        tf.constant(max_pixels, tf.int64),
        message=(
            f"image_bytes: header claims more than {max_pixels} pixels "
            "(possible decompression bomb)"
        ),
    )
    image = tf.io.decode_image(
        image_bytes, channels=3, expand_animations=False
    )
    image.set_shape([None, None, 3])
    return image


def resize_and_crop(image, image_size):
    """Resizes the shorter side to fit, then centre-crops to `image_size`.

    Keeps the aspect ratio (no stretching). Returns float32 in [0, 255].
    """
    target_height, target_width = image_size
    image = tf.cast(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.maximum(target_height / shape[0], target_width / shape[1])
    new_size = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    new_size = tf.maximum(new_size, [target_height, target_width])
    image = tf.image.resize(image, new_size, antialias=True)
    image = tf.image.resize_with_crop_or_pad(image, target_height, target_width)
    return tf.clip_by_value(image, 0.0, 255.0)
