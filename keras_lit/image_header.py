"""Image format and size from the first bytes of a file, in pure Python.

The one Python home of the header rule. A header is read before anything
decodes the pixels, so that a small file claiming a huge image (a
decompression bomb) is refused without allocating memory. Two copies must
exist outside Python and follow the same rule, checked against the same
test vectors (`tests/data/image_header_vectors.json`):

- TensorFlow ops that run inside `tf.data` and the exported SavedModel
  (`keras_lit.image_ops.image_header_size` and
  `keras_lit.export.image_checks.image_format`);
- JavaScript in the app's page (`keras_lit/app/static/wire.js`).

The rule:

- format by magic bytes: JPEG `FF D8 FF`, PNG `89 'PNG' 0D 0A 1A 0A`, GIF
  `GIF87a`/`GIF89a`, BMP `BM`, WebP `RIFF....WEBP`; anything else is
  unknown (`format == ""`);
- size: PNG from IHDR (bytes 16-24, big-endian); GIF from the logical
  screen (bytes 6-10, little-endian); BMP from the info header (bytes
  18-26, a negative height meaning top-down); WebP from the `VP8 `, `VP8L`
  or `VP8X` chunk; JPEG from the first start-of-frame marker found by
  walking the segments. A known format whose size cannot be read (too
  short, no frame marker) has `width == height == -1`.

Each format's size has its own reader in `_SIZE_READERS`, so a reader can
grow (for example, bounding every GIF frame) without touching the others.
"""

from collections import namedtuple

IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WebP")
FORMAT_NAMES = "JPEG, PNG, GIF, BMP or WebP"


class ImageHeaderError(ValueError):
    """Bytes that are not an image this package reads, or a bad header."""


class ImageHeader(namedtuple("ImageHeader", ["format", "width", "height"])):
    """`format` (`""` if unknown), `width` and `height` (`-1` if unread)."""

    @property
    def readable(self):
        return self.width > 0 and self.height > 0

    @property
    def pixels(self):
        """`width * height`, or `0` when the size was not read."""
        return self.width * self.height if self.readable else 0


_UNREAD = (-1, -1)


def image_format(data):
    """`"JPEG"`, `"PNG"`, `"GIF"`, `"BMP"`, `"WebP"` or `""` (unknown)."""
    data = _as_bytes(data)
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return ""


def read_image_header(data):
    """The `ImageHeader` of encoded image bytes; never decodes pixels.

    Unknown formats give `ImageHeader("", -1, -1)` and unreadable sizes
    `-1`; use `parse_image_header` for an error instead.

    Example:
    >>> read_image_header(b"GIF89a\\x02\\x00\\x03\\x00")
    ImageHeader(format='GIF', width=2, height=3)
    """
    data = _as_bytes(data)
    name = image_format(data)
    if not name:
        return ImageHeader("", *_UNREAD)
    return ImageHeader(name, *(_SIZE_READERS[name](data) or _UNREAD))


def parse_image_header(data):
    """Like `read_image_header`, but raises `ImageHeaderError` instead.

    The message says what was wrong: no known image signature, or a header
    too short or corrupt to give a size.
    """
    header = read_image_header(data)
    if not header.format:
        raise ImageHeaderError(
            f"not a {FORMAT_NAMES} image ({len(data)} bytes with no known "
            "image signature)"
        )
    if not header.readable:
        raise ImageHeaderError(
            f"unreadable {header.format} header (corrupt or truncated)"
        )
    return header


def _as_bytes(data):
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(
            "Image data must be bytes, the content of an encoded image "
            f"file. Received: {type(data).__name__}"
        )
    return data


# --- One size reader per format: bytes -> (width, height) or None ----------


def _png_size(data):
    if len(data) >= 24:
        return _be(data, 16, 4), _be(data, 20, 4)
    return None


def _gif_size(data):
    # The logical screen; frames may differ (see PITFALLS: GIF).
    if len(data) >= 10:
        return _le(data, 6, 2), _le(data, 8, 2)
    return None


def _bmp_size(data):
    if len(data) < 26:
        return None
    height = _le(data, 22, 4)
    if height >= 2**31:  # Top-down BMPs store a negative height.
        height = 2**32 - height
    return _le(data, 18, 4), height


def _webp_size(data):
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        return _le(data, 26, 2) % 16384, _le(data, 28, 2) % 16384
    if chunk == b"VP8L" and len(data) >= 25:
        bits = _le(data, 21, 4)
        return bits % 16384 + 1, (bits // 16384) % 16384 + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return _le(data, 24, 3) + 1, _le(data, 27, 3) + 1
    return None


def _jpeg_size(data):
    """Walks the JPEG segments to the first start-of-frame marker."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # Fill byte.
            position += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        is_frame = 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)
        if is_frame and position + 9 <= len(data):
            return _be(data, position + 7, 2), _be(data, position + 5, 2)
        length = _be(data, position + 2, 2)
        if length < 2:
            return None
        position += 2 + length
    return None


_SIZE_READERS = {
    "JPEG": _jpeg_size,
    "PNG": _png_size,
    "GIF": _gif_size,
    "BMP": _bmp_size,
    "WebP": _webp_size,
}


def _be(data, offset, count):
    return int.from_bytes(data[offset : offset + count], "big")


def _le(data, offset, count):
    return int.from_bytes(data[offset : offset + count], "little")
