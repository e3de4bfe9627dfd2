"""Byte-level checks on encoded images, as TF ops inside the SavedModel.

Each request image passes, in order: not empty, a known format (magic
bytes), complete (the end of the file is there), a readable header, a
header size within `max_pixels`, a whole JPEG or PNG structure
(`keras_lit.image_structure`), and what the decoder will really allocate
within `max_pixels` (every GIF frame; no animated WebP:
`keras_lit.image_frames`); only then is it decoded. Each check runs
only once the previous one passed (`checked`), so the first failing check
is the error a client sees, e.g. `image_bytes[1]: truncated JPEG (...)`.

The format and size rules are `keras_lit.image_ops`' TF twins of
`keras_lit.image_header`, checked against the same test vectors.
"""

import tensorflow as tf

from keras_lit import image_ops
from keras_lit.image_frames import frame_checks_tf
from keras_lit.image_header import FORMAT_NAMES
from keras_lit.image_structure import jpeg_structure_ok_tf
from keras_lit.image_structure import png_structure_ok_tf


def require(condition, message):
    """An assert whose whole error text is `message` (a string tensor)."""
    return tf.debugging.Assert(condition, [message], summarize=1)


def checked(checks, make_output):
    """Runs checks in order, then builds the output behind them.

    Each check is a function returning `(condition, message)`; it is built
    under the control dependencies of the previous check's assert, so a
    later check (a header parse, a regex over a long string) never runs on
    input that an earlier check refused, and the first failing check is the
    error a client sees.
    """
    dependencies = []
    for check in checks:
        with tf.control_dependencies(dependencies):
            condition, message = check()
            dependencies = [require(condition, message)]
    with tf.control_dependencies(dependencies):
        return make_output()


def decode_checked_image(index, data, max_pixels):
    """One encoded image -> uint8 `[H, W, 3]`, behind `ImageChecks`."""
    image_checks = ImageChecks(index, data, max_pixels)
    image = checked(
        image_checks.checks(),
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    return image


class ImageChecks:
    """The checks on `image_bytes[index]`, in the order they run.

    Later checks read what earlier ones found (`format`, `height`,
    `width`), so each is built only after the previous one.
    """

    def __init__(self, index, data, max_pixels):
        self.where = tf.strings.format("image_bytes[{}]", index)
        self.data = data
        self.length = tf.strings.length(data)
        self.max_pixels = max_pixels
        self.format = None
        self.height = self.width = None
        self._frames = None

    def checks(self):
        return [
            self.not_empty,
            self.known_format,
            self.complete,
            self.readable_header,
            self.within_limit,
            self.whole_structure,
        ] + [self._frame_check(index) for index in range(3)]

    def not_empty(self):
        return (
            self.length > 0,
            self.where + ": empty string; expected the bytes of an encoded "
            f"{FORMAT_NAMES} image",
        )

    def known_format(self):
        self.format = image_ops.image_format(self.data)
        return (
            tf.not_equal(self.format, ""),
            self.where
            + f": not a {FORMAT_NAMES} image ("
            + tf.strings.as_string(self.length)
            + " bytes with no known image signature); send the raw "
            "file bytes (REST clients: base64 in a b64 object)",
        )

    def complete(self):
        return (
            is_complete(self.data, self.format),
            self.where
            + ": truncated "
            + self.format
            + " ("
            + tf.strings.as_string(self.length)
            + " bytes; the end of the file is missing)",
        )

    def readable_header(self):
        self.height, self.width = image_ops.image_header_size(self.data)
        return (
            (self.height > 0) & (self.width > 0),
            self.where
            + ": unreadable "
            + self.format
            + " header (corrupt or truncated)",
        )

    def within_limit(self):
        return (
            self.height * self.width <= self.max_pixels,
            self.where
            + tf.strings.format(
                ": header claims {}x{} pixels, over the limit of "
                "max_pixels={} set at export; refused before decoding "
                "(possible decompression bomb)",
                (self.height, self.width, self.max_pixels),
            ),
        )

    def whole_structure(self):
        is_jpeg = tf.equal(self.format, "JPEG")
        is_png = tf.equal(self.format, "PNG")
        return (
            (~is_jpeg | jpeg_structure_ok_tf(self.data))
            & (~is_png | png_structure_ok_tf(self.data)),
            self.where
            + ": corrupt "
            + self.format
            + " (its markers or chunks are broken; the decoder would fail)",
        )

    def _frame_check(self, index):
        def check():
            # Built once, behind the checks before the first of them.
            if self._frames is None:
                self._frames = frame_checks_tf(self.data, self.max_pixels)
            condition, message = self._frames[index]
            return condition, self.where + ": " + message

        return check


def is_complete(data, image_format):
    """False when the end of a JPEG, PNG, WebP or BMP file is missing."""
    return tf.case(
        [
            (tf.equal(image_format, "JPEG"), lambda: _jpeg_complete(data)),
            (tf.equal(image_format, "PNG"), lambda: _png_complete(data)),
            # The RIFF size excludes the first 8 bytes.
            (
                tf.equal(image_format, "WebP"),
                lambda: _declares_at_most_length(data, 4, 8),
            ),
            (
                tf.equal(image_format, "BMP"),
                lambda: _declares_at_most_length(data, 2, 0),
            ),
        ],
        default=lambda: tf.constant(True),
        exclusive=True,
    )


def _byte_values(data):
    return tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)


def _jpeg_complete(data):
    def scan():
        # The last end-of-image marker (FF D9) must follow the last
        # start-of-scan (FF DA). Entropy-coded data never holds FF D9 (FF
        # is stuffed as FF 00), so only a cut-off file fails. Trailing
        # bytes after the marker are fine.
        values = _byte_values(data)
        marker = tf.equal(values[:-1], 0xFF)
        positions = tf.range(tf.size(values) - 1)
        last_end = tf.reduce_max(
            tf.where(marker & tf.equal(values[1:], 0xD9), positions, -1)
        )
        last_scan = tf.reduce_max(
            tf.where(marker & tf.equal(values[1:], 0xDA), positions, -2)
        )
        return (last_scan >= 0) & (last_end > last_scan)

    length = tf.strings.length(data)
    ends_cleanly = tf.equal(
        tf.strings.substr(data, tf.maximum(length - 2, 0), 2), b"\xff\xd9"
    )
    return tf.cond(ends_cleanly, lambda: tf.constant(True), scan)


def _png_complete(data):
    def scan():
        values = _byte_values(data)
        name = [ord(c) for c in "IEND"]
        found = tf.equal(values[: tf.size(values) - 3], name[0])
        for offset in range(1, 4):
            end = tf.size(values) - 3 + offset
            found &= tf.equal(values[offset:end], name[offset])
        return tf.reduce_any(found)

    length = tf.strings.length(data)
    ends_cleanly = tf.equal(
        tf.strings.substr(data, tf.maximum(length - 8, 0), 4), b"IEND"
    )
    return tf.cond(ends_cleanly, lambda: tf.constant(True), scan)


def _declares_at_most_length(data, offset, extra):
    """A little-endian uint32 size in the header, plus `extra` bytes, fits."""
    length = tf.strings.length(data)

    def compare():
        raw = tf.strings.substr(data, offset, 4)
        values = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)
        weights = tf.constant([1, 256, 65536, 16777216], tf.int64)
        declared = tf.reduce_sum(values * weights) + extra
        return declared <= tf.cast(length, tf.int64)

    return tf.cond(length >= offset + 4, compare, lambda: tf.constant(False))
