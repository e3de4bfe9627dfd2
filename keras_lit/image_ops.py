"""Image decoding and resizing in TensorFlow, shared by data and export.

Decoding follows the traps in this stack: `decode_image(channels=3,
expand_animations=False)` for every format (JPEG, PNG, GIF, BMP, WebP;
grayscale and RGBA become RGB), and a pixel limit read from the file header
*before* decoding, so a small file that claims a huge image (a decompression
bomb) is refused instead of allocating gigabytes.
"""

import tensorflow as tf

from keras_lit.image_frames import assert_frames_tf

DEFAULT_MAX_PIXELS = 50_000_000


# A valid 1x1 grayscale JPEG: `extract_jpeg_shape` parses it when the input
# is not a JPEG, so the JPEG case needs no `tf.cond` (each cond branch is a
# function that tf.data instantiates again for every iterator).
_TINY_JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    b"\xff\xdb\x00C\x00\x10\x0b\x0c\x0e\x0c\n\x10\x0e\r\x0e\x12\x11\x10\x13"
    b"\x18(\x1a\x18\x16\x16\x181#%\x1d(:3=<9387@H\\N@DWE78PmQW_bghg>Mqypdx"
    b"\\egc\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x11\x00\xff\xc4\x00"
    b"\x14\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x00\x07\xff\xc4\x00\x14\x10\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x00\x00\x00\x00\x00\x00\x00\xff\xda\x00\x08\x01\x01\x00\x00?\x00?\x7f"
    b"\xff\xd9"
)


def image_format(image_bytes):
    """`"JPEG"`, `"PNG"`, `"GIF"`, `"BMP"`, `"WebP"` or `""`, as TF ops.

    The magic-byte rule of `keras_lit.image_header.image_format`, for a
    string tensor of any shape.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    matches = _format_matches(_padded_head(image_bytes))
    result = tf.fill(tf.shape(image_bytes), "")
    for name in reversed(list(matches)):
        result = tf.where(matches[name], name, result)
    return result


def _padded_head(image_bytes, size=32):
    """The first `size` bytes, zero-padded so fixed offsets are in range."""
    return tf.strings.substr(
        tf.strings.join(
            [tf.strings.substr(image_bytes, 0, size), b"\x00" * size]
        ),
        0,
        size,
    )


def _format_matches(head):
    """`{format: boolean tensor}` from a padded head (see `_padded_head`)."""

    def starts_with(prefix, offset=0):
        return tf.equal(tf.strings.substr(head, offset, len(prefix)), prefix)

    return {
        "JPEG": starts_with(b"\xff\xd8\xff"),
        "PNG": starts_with(b"\x89PNG\r\n\x1a\n"),
        "GIF": starts_with(b"GIF87a") | starts_with(b"GIF89a"),
        "BMP": starts_with(b"BM"),
        "WebP": starts_with(b"RIFF") & starts_with(b"WEBP", 8),
    }


def image_header_size(image_bytes):
    """`(height, width)` read from a PNG, JPEG, GIF, BMP or WebP header.

    The rule of `keras_lit.image_header.read_image_header` (checked against
    the same test vectors), as TensorFlow ops on a scalar string. Reads a
    few header bytes only; never decodes pixels. Returns int64 scalars;
    `(-1, -1)` when the format is unknown or the header is too short.
    JPEG sizes come from `tf.io.extract_jpeg_shape` (which raises on a
    corrupt JPEG header). Branch-free: every format is parsed and the
    matching one selected, because each `tf.cond`/`tf.case` branch is a
    function that `tf.data` instantiates again for every iterator and file
    (this cut the per-iterator cost about 2.5x).
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    length = tf.strings.length(image_bytes)
    # Every field sits in the first 32 bytes: parse only those.
    padded = _padded_head(image_bytes)
    header = tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)
    is_format = _format_matches(padded)

    def read(offset, count, big_endian):
        powers = range(count)
        weights = [256**i for i in (reversed(powers) if big_endian else powers)]
        values = header[offset : offset + count]
        return tf.reduce_sum(values * tf.constant(weights, tf.int64))

    def be(offset, count):
        return read(offset, count, True)

    def le(offset, count):
        return read(offset, count, False)

    def chunk(name):
        return tf.equal(tf.strings.substr(padded, 12, 4), name)

    bmp_height = le(22, 4)
    # Top-down BMPs store a negative height.
    bmp_height = tf.where(bmp_height >= 2**31, 2**32 - bmp_height, bmp_height)
    lossless_bits = le(21, 4)
    is_jpeg = is_format["JPEG"]
    jpeg_shape = tf.cast(
        tf.io.extract_jpeg_shape(
            tf.where(is_jpeg, image_bytes, tf.constant(_TINY_JPEG))
        ),
        tf.int64,
    )
    is_webp = is_format["WebP"]
    candidates = [
        (is_format["PNG"] & (length >= 24), be(20, 4), be(16, 4)),
        (is_format["GIF"] & (length >= 10), le(8, 2), le(6, 2)),
        (is_format["BMP"] & (length >= 26), bmp_height, le(18, 4)),
        (is_jpeg, jpeg_shape[0], jpeg_shape[1]),
        (
            is_webp & chunk(b"VP8 ") & (length >= 30),
            le(28, 2) % 16384,
            le(26, 2) % 16384,
        ),
        (
            is_webp & chunk(b"VP8L") & (length >= 25),
            (lossless_bits // 16384) % 16384 + 1,
            lossless_bits % 16384 + 1,
        ),
        (
            is_webp & chunk(b"VP8X") & (length >= 30),
            le(27, 3) + 1,
            le(24, 3) + 1,
        ),
    ]
    height = width = tf.constant(-1, tf.int64)
    for matches, candidate_height, candidate_width in reversed(candidates):
        height = tf.where(matches, candidate_height, height)
        width = tf.where(matches, candidate_width, width)
    return height, width


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
    check = tf.debugging.assert_less_equal(
        height * width,
        tf.constant(max_pixels, tf.int64),
        message=(
            f"image_bytes: header claims more than {max_pixels} pixels "
            "(possible decompression bomb)"
        ),
    )
    with tf.control_dependencies([check]):
        image_bytes = assert_frames_tf(image_bytes, max_pixels, "image_bytes")
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_and_crop(image, image_size):
    """Resizes the shorter side to fit, then centre-crops to `image_size`.

    Keeps the aspect ratio (no stretching). Returns float32 in [0, 255].
    """
    target_height, target_width = image_size
    image = tf.cast(image, tf.float32)
    size = tf.shape(image)[:2]
    shape = tf.cast(size, tf.float32)
    scale = tf.maximum(target_height / shape[0], target_width / shape[1])
    new_size = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    new_size = tf.maximum(new_size, [target_height, target_width])
    # An image already at the target size skips the antialiased resize
    # (an identity that costs more than decoding a small JPEG).
    image = tf.cond(
        tf.reduce_all(tf.equal(new_size, size)),
        lambda: image,
        lambda: tf.image.resize(image, new_size, antialias=True),
    )
    # Centre crop; `new_size` is never smaller than the target.
    top = (new_size[0] - target_height) // 2
    left = (new_size[1] - target_width) // 2
    image = image[top : top + target_height, left : left + target_width]
    image = tf.ensure_shape(image, [target_height, target_width, None])
    return tf.clip_by_value(image, 0.0, 255.0)
