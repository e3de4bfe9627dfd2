"""Whole JPEG and PNG files: segment and chunk walks, Python and TF ops.

TF's decoders refuse some damaged files with a message that does not say
which image ("jpeg::Uncompress failed", "Invalid PNG data"). These checks
run first, so the SavedModel and the app can name the bad image:

- `jpeg_structure_ok`: segments and scans well formed up to end-of-image,
  only markers a decoder accepts after the first scan;
- `png_structure_ok`: whole chunks up to `IEND`, `IHDR`'s CRC-32 correct.

Each has a TF-ops twin (`*_tf`) checked against it on the same vectors
(`tests/image_frames_test.py`).
"""

import re
import zlib

import tensorflow as tf

# --- JPEG marker structure --------------------------------------------------

# Markers a decoder accepts once the first scan has begun: DHT, DAC, SOS,
# EOI, DQT, DNL, DRI, APPn, COM and TEM. Anything else there (a second SOI
# or SOF, a reserved marker) makes libjpeg fail ("jpeg::Uncompress failed");
# it is what random bytes written over the middle of a JPEG produce.
_JPEG_AFTER_SCAN = frozenset(
    [0xC4, 0xCC, 0xDA, 0xD9, 0xDB, 0xDC, 0xDD, 0xFE, 0x01]
    + list(range(0xE0, 0xF0))
)
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
MAX_JPEG_SEGMENTS = 4096


def jpeg_structure_ok(data, max_segments=MAX_JPEG_SEGMENTS):
    """True when a JPEG's segments and scans are well formed up to EOI.

    Pure Python. Walks the segments (each length-prefixed), skips each
    scan's entropy-coded data to the next marker (a `FF` byte not followed
    by a stuffed `00`, a restart marker or another `FF`) and requires every
    marker after the first scan to be one a decoder accepts there, and an
    end-of-image marker. Catches the corruptions that make TF's decoder
    fail; a JPEG whose entropy-coded data is damaged without breaking its
    markers still decodes (libjpeg fills what it cannot read).
    """
    data = bytes(data)
    length = len(data)
    if data[:2] != b"\xff\xd8":
        return False
    position, seen_scan = 2, False
    for _ in range(max_segments):
        if position + 1 >= length or data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:  # Fill byte.
            position += 1
            continue
        if marker == 0xD9:
            return seen_scan
        if seen_scan and marker not in _JPEG_AFTER_SCAN:
            return False
        if not seen_scan and (marker == 0xD8 or marker < 0xC0):
            if marker != 0x01:
                return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        if position + 4 > length:
            return False
        size = int.from_bytes(data[position + 2 : position + 4], "big")
        if size < 2:
            return False
        position += 2 + size
        if marker == 0xDA:
            seen_scan = True
            found = _JPEG_MARKER.search(data, position)
            position = found.start() if found else length
    return False


def jpeg_structure_ok_tf(data, max_segments=MAX_JPEG_SEGMENTS):
    """`jpeg_structure_ok` in TensorFlow ops: a bool scalar.

    Costs nothing for data that is not a JPEG. The scans' entropy-coded
    data is skipped with one `searchsorted` over the positions of every
    marker-like `FF xx` pair, so the loop runs once per segment.
    """
    data = tf.convert_to_tensor(data, tf.string)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 2), b"\xff\xd8")
    jpeg = tf.where(is_jpeg, data, "")
    values = tf.cast(tf.io.decode_raw(jpeg, tf.uint8), tf.int64)
    length = tf.size(values, out_type=tf.int64)
    padded = tf.concat([values, tf.zeros([4], tf.int64)], 0)
    following = padded[1 : length + 1]
    is_marker = (
        tf.equal(values, 0xFF)
        & tf.not_equal(following, 0x00)
        & tf.not_equal(following, 0xFF)
        & ((following < 0xD0) | (following > 0xD7))
    )
    markers = tf.where(is_marker)[:, 0]
    markers_or_end = tf.concat([markers, length[None]], 0)
    allowed = tf.scatter_nd(
        [[code] for code in sorted(_JPEG_AFTER_SCAN)],
        tf.ones([len(_JPEG_AFTER_SCAN)], tf.bool),
        [256],
    )

    def byte(position):
        return tf.gather(padded, tf.clip_by_value(position, 0, length + 3))

    def condition(step, position, seen_scan, done, ok):
        return (step < max_segments) & tf.logical_not(done)

    def body(step, position, seen_scan, done, ok):
        marker = byte(position + 1)
        broken = (position + 1 >= length) | tf.not_equal(byte(position), 0xFF)
        fill = tf.equal(marker, 0xFF)
        end = tf.equal(marker, 0xD9)
        standalone = tf.equal(marker, 0x01) | (
            (marker >= 0xD0) & (marker <= 0xD7)
        )
        bad_after_scan = seen_scan & tf.logical_not(tf.gather(allowed, marker))
        bad_before_scan = tf.logical_not(seen_scan) & (
            tf.equal(marker, 0xD8) | ((marker < 0xC0) & ~tf.equal(marker, 1))
        )
        size = byte(position + 2) * 256 + byte(position + 3)
        short = (position + 4 > length) | (size < 2)
        is_scan = tf.equal(marker, 0xDA)
        after_segment = position + 2 + size
        # The first marker at or after the scan header; `length` if none.
        next_marker_index = tf.searchsorted(
            markers, after_segment[None], side="left"
        )[0]
        scan_end = tf.gather(markers_or_end, next_marker_index)
        next_position = tf.where(
            fill,
            position + 1,
            tf.where(
                standalone,
                position + 2,
                tf.where(is_scan, scan_end, after_segment),
            ),
        )
        failed = broken | (~fill & ~end & (bad_after_scan | bad_before_scan))
        failed |= ~fill & ~end & ~standalone & short
        finished = failed | (~broken & end)
        return (
            step + 1,
            next_position,
            seen_scan | (is_scan & ~failed),
            finished,
            ~failed & end & seen_scan,
        )

    _, _, _, done, ok = tf.while_loop(
        condition,
        body,
        (
            tf.constant(0, tf.int64),
            tf.constant(2, tf.int64),
            tf.constant(False),
            tf.logical_not(is_jpeg),
            tf.constant(False),
        ),
    )
    return is_jpeg & done & ok


# --- PNG chunk structure ----------------------------------------------------

MAX_PNG_CHUNKS = 65536


def png_structure_ok(data, max_chunks=MAX_PNG_CHUNKS):
    """True when a PNG's chunks are whole up to IEND and IHDR's CRC holds.

    Pure Python. Walks the length-prefixed chunks from byte 8 to `IEND`,
    requiring each to fit in the file (a PNG cut anywhere, even at its last
    byte, fails), and checks the CRC-32 of the `IHDR` chunk (the header
    that every size check reads). Other chunks' CRCs are left to the
    decoder.
    """
    data = bytes(data)
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 33:
        return False
    if data[12:16] != b"IHDR" or int.from_bytes(data[8:12], "big") != 13:
        return False
    if zlib.crc32(data[12:29]) != int.from_bytes(data[29:33], "big"):
        return False
    position = 8
    for _ in range(max_chunks):
        if position + 12 > len(data):
            return False
        size = int.from_bytes(data[position : position + 4], "big")
        end = position + 12 + size
        if end > len(data):
            return False
        if data[position + 4 : position + 8] == b"IEND":
            return True
        position = end
    return False


def _crc32_table():
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32_TABLE = _crc32_table()


def png_structure_ok_tf(data, max_chunks=MAX_PNG_CHUNKS):
    """`png_structure_ok` in TensorFlow ops: a bool scalar.

    Costs nothing for data that is not a PNG; one loop step per chunk.
    """
    data = tf.convert_to_tensor(data, tf.string)
    is_png = tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")
    is_png &= tf.strings.length(data) >= 33
    png = tf.where(is_png, data, "")
    values = tf.cast(tf.io.decode_raw(png, tf.uint8), tf.int64)
    length = tf.size(values, out_type=tf.int64)
    padded = tf.concat([values, tf.zeros([40], tf.int64)], 0)

    def be32(position):
        indices = tf.clip_by_value(
            position + tf.range(4, dtype=tf.int64), 0, length + 36
        )
        return tf.reduce_sum(
            tf.gather(padded, indices)
            * tf.constant([2**24, 2**16, 2**8, 1], tf.int64)
        )

    table = tf.constant(_CRC32_TABLE, tf.int64)
    crc = tf.constant(0xFFFFFFFF, tf.int64)
    for offset in range(12, 29):
        index = tf.bitwise.bitwise_and(
            tf.bitwise.bitwise_xor(crc, padded[offset]), 0xFF
        )
        crc = tf.bitwise.bitwise_xor(
            tf.gather(table, index), tf.bitwise.right_shift(crc, 8)
        )
    crc = tf.bitwise.bitwise_xor(crc, 0xFFFFFFFF)
    header_ok = (
        tf.equal(be32(tf.constant(8, tf.int64)), 13)
        & tf.equal(be32(tf.constant(12, tf.int64)), 0x49484452)  # "IHDR"
        & tf.equal(crc, be32(tf.constant(29, tf.int64)))
    )
    iend = 0x49454E44  # "IEND"

    def condition(step, position, done, ok):
        return (step < max_chunks) & tf.logical_not(done)

    def body(step, position, done, ok):
        end = position + 12 + be32(position)
        fits = (position + 12 <= length) & (end <= length)
        is_end = tf.equal(be32(position + 4), iend)
        return step + 1, end, ~fits | is_end, fits & is_end

    _, _, _, ok = tf.while_loop(
        condition,
        body,
        (
            tf.constant(0, tf.int64),
            tf.constant(8, tf.int64),
            ~(is_png & header_ok),
            tf.constant(False),
        ),
    )
    return is_png & header_ok & ok
