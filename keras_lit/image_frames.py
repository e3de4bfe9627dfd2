"""What a decoder really meets: GIF frames, WebP animation, JPEG markers.

A GIF's logical screen size (header bytes 6-10) is not what TensorFlow's
decoder allocates: every frame carries its own size in its image
descriptor, the decoder holds every frame's pixels at once and sizes its
output by the largest frame. A 48 kB GIF whose screen says 1x1 can hold an
8000x8000 frame. WebP's canvas (VP8X) does bound its frames, but TF cannot
decode animated WebP with `channels=3` ("WebP Animation must be 4 channel
RGBA"; `channels=0` even crashes the process), so animations are refused
before decoding.

One rule, two implementations checked against the same test vectors
(`tests/image_frames_test.py`):

- `gif_layout(data)`: pure Python, for the app and the command line.
- `gif_layout_tf(data)`: TensorFlow ops, for the SavedModel signatures and
  `tf.data` pipelines (no Python at serving time).

Both walk the GIF's blocks (extensions skipped sub-block by sub-block,
image descriptors read) up to the trailer and report the largest frame's
height and width, the frames' pixels added up, the frame count and whether
the file is complete (a trailer reached with every block whole). A GIF cut
after some of its frames, which TF would decode silently, is incomplete.

`jpeg_structure_ok` / `jpeg_structure_ok_tf` walk a JPEG's segments and
scans the same way, so that the corruptions that make TF's decoder fail
without saying which image ("jpeg::Uncompress failed") are refused first,
with the image's index.
"""

import re
import zlib

import tensorflow as tf

# Blocks walked before a GIF is refused as having too many frames: each
# frame is at least one block, so this also caps the frame count.
MAX_GIF_BLOCKS = 4096
_TWO = tf.constant(2, tf.int64)
_ZERO = tf.constant(0, tf.int64)


def gif_layout(data, max_blocks=MAX_GIF_BLOCKS):
    """`(max_height, max_width, total_pixels, frames, complete)` of a GIF.

    Pure Python. `complete` is False when the file ends inside a block or
    before the trailer, or when it holds more than `max_blocks` blocks.
    Returns zeros and `complete=False` for data that is not a GIF.
    """
    data = bytes(data)
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return 0, 0, 0, 0, False
    position = 13
    if data[10] & 0x80:  # Global colour table.
        position += 3 * (2 ** ((data[10] & 7) + 1))
    max_height = max_width = total = frames = 0
    for _ in range(max_blocks):
        if position >= len(data):
            break
        introducer = data[position]
        if introducer == 0x3B:  # Trailer.
            return max_height, max_width, total, frames, True
        if introducer == 0x21:  # Extension: label, then sub-blocks.
            position = _skip_sub_blocks(data, position + 2)
        elif introducer == 0x2C:  # Image descriptor.
            if position + 10 > len(data):
                break
            width = int.from_bytes(data[position + 5 : position + 7], "little")
            height = int.from_bytes(data[position + 7 : position + 9], "little")
            flags = data[position + 9]
            frames += 1
            total += width * height
            max_height = max(max_height, height)
            max_width = max(max_width, width)
            position += 10
            if flags & 0x80:  # Local colour table.
                position += 3 * (2 ** ((flags & 7) + 1))
            # LZW minimum code size, then the image data sub-blocks.
            position = _skip_sub_blocks(data, position + 1)
        else:
            break
        if position is None:
            break
    return max_height, max_width, total, frames, False


def _skip_sub_blocks(data, position):
    """The position after a sub-block chain's terminator, else `None`."""
    while position < len(data):
        size = data[position]
        if size == 0:
            return position + 1
        position += 1 + size
    return None


def webp_is_animated(data):
    """True for an extended (VP8X) WebP whose animation flag is set."""
    data = bytes(data[:21])
    return (
        data[:4] == b"RIFF"
        and data[8:16] == b"WEBPVP8X"
        and len(data) >= 21
        and bool(data[20] & 0x02)
    )


def gif_layout_tf(data, max_blocks=MAX_GIF_BLOCKS):
    """`gif_layout` in TensorFlow ops: int64 scalars and a bool.

    Costs nothing for data that is not a GIF (the walk sees no bytes). For
    a GIF, each extension's or frame's sub-block chain is skipped with one
    gather: a jump table built by pointer doubling (log2 of the file size
    passes of one gather each) maps every position to the end of the chain
    that starts there, so the loop runs once per block, not per sub-block.
    """
    data = tf.convert_to_tensor(data, tf.string)
    is_gif = tf.equal(tf.strings.substr(data, 0, 6), b"GIF87a") | tf.equal(
        tf.strings.substr(data, 0, 6), b"GIF89a"
    )
    is_gif &= tf.strings.length(data) >= 13
    gif = tf.where(is_gif, data, "")
    values = tf.cast(tf.io.decode_raw(gif, tf.uint8), tf.int64)
    length = tf.size(values, out_type=tf.int64)
    # Reads past the end give 0; the walk checks positions itself.
    padded = tf.concat([values, tf.zeros([16], tf.int64)], 0)

    def byte(position):
        return tf.gather(padded, tf.clip_by_value(position, 0, length + 15))

    def le16(position):
        return byte(position) + 256 * byte(position + 1)

    jump = _chain_ends(values, length)

    def skip_sub_blocks(position):
        # `length + 1` marks a chain that runs off the end (truncated).
        inside = position < length
        end = tf.gather(jump, tf.clip_by_value(position, 0, length))
        return tf.where(inside, end, length + 1)

    screen_flags = byte(tf.constant(10, tf.int64))
    start = 13 + tf.where(
        screen_flags >= 128,
        3 * tf.bitwise.left_shift(_TWO, screen_flags % 8),
        _ZERO,
    )
    start = tf.where(is_gif, start, length + 1)
    zero = tf.constant(0, tf.int64)

    def condition(step, position, done, *stats):
        return (step < max_blocks) & (position < length) & tf.logical_not(done)

    def body(step, position, done, max_height, max_width, total, frames):
        introducer = byte(position)
        is_trailer = tf.equal(introducer, 0x3B)
        is_extension = tf.equal(introducer, 0x21)
        is_image = tf.equal(introducer, 0x2C) & (position + 10 <= length)
        width = le16(position + 5)
        height = le16(position + 7)
        flags = byte(position + 9)
        table = tf.where(
            flags >= 128, 3 * tf.bitwise.left_shift(_TWO, flags % 8), _ZERO
        )
        image_end = skip_sub_blocks(position + 11 + table)
        extension_end = skip_sub_blocks(position + 2)
        next_position = tf.where(
            is_extension,
            extension_end,
            tf.where(is_image, image_end, length + 1),
        )
        next_position = tf.where(is_trailer, position, next_position)
        count = tf.cast(is_image, tf.int64)
        return (
            step + 1,
            next_position,
            is_trailer,
            tf.maximum(max_height, height * count),
            tf.maximum(max_width, width * count),
            total + width * height * count,
            frames + count,
        )

    _, position, done, max_height, max_width, total, frames = tf.while_loop(
        condition,
        body,
        (zero, start, tf.constant(False), zero, zero, zero, zero),
    )
    complete = is_gif & done & (position < length)
    return max_height, max_width, total, frames, complete


def webp_is_animated_tf(data):
    """`webp_is_animated` in TensorFlow ops: a bool scalar."""
    data = tf.convert_to_tensor(data, tf.string)
    long_enough = tf.strings.length(data) >= 21
    # Padded so that every offset below exists, however short `data` is.
    head = tf.strings.substr(data, 0, 21) + b"\x00" * 21
    flags = tf.io.decode_raw(tf.strings.substr(head, 20, 1), tf.uint8)[0]
    return (
        tf.equal(tf.strings.substr(head, 0, 4), b"RIFF")
        & tf.equal(tf.strings.substr(head, 8, 8), b"WEBPVP8X")
        & long_enough
        & tf.not_equal(tf.bitwise.bitwise_and(flags, 2), 0)
    )


def _chain_ends(values, length):
    """For every position p, where the sub-block chain starting at p ends.

    A chain is `size, size bytes, size, ...` up to a zero size; it ends just
    after that zero. `length + 1` means the chain runs past the end. Built
    by pointer doubling: `step[p]` is where one sub-block starting at p
    leads (a zero size leads to itself, plus a final +1 afterwards), and
    squaring `step` ceil(log2(length)) + 1 times reaches every terminator.
    """
    positions = tf.range(length + 2, dtype=tf.int64)
    sizes = tf.concat([values, tf.zeros([2], tf.int64)], 0)
    terminator = tf.equal(sizes, 0) & (positions < length)
    step = tf.where(terminator, positions, positions + 1 + sizes)
    # Positions at or past the end are absorbing "ran off the end" states.
    step = tf.where(positions >= length, length + 1, step)
    step = tf.minimum(step, length + 1)
    rounds = tf.cast(
        tf.math.ceil(tf.math.log(tf.cast(length, tf.float64) + 2.0) / 0.6931)
        + 1,
        tf.int64,
    )

    def square(index, table):
        return index + 1, tf.gather(table, table)

    _, step = tf.while_loop(
        lambda index, table: index < rounds,
        square,
        (tf.constant(0, tf.int64), step),
    )
    # A chain that reached its terminator ends one byte after it.
    return tf.where(step <= length - 1, step + 1, length + 1)


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
