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

JPEG and PNG structure checks live in `keras_lit.image_structure`.
"""

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


# --- The checks every decode path runs --------------------------------------


def frame_checks_tf(data, max_pixels):
    """`[(condition, message)]` a decode path asserts before decoding.

    TF ops; conditions are bool scalars, messages plain strings (callers
    prefix the image's name or index). A GIF must be complete, its largest
    frame and its frames' pixels together within `max_pixels`; a WebP must
    not be animated. Other formats pass (their header size is what their
    decoder allocates and is checked by the header rule).
    """
    max_height, max_width, total, _, complete = gif_layout_tf(data)
    is_gif = tf.equal(tf.strings.substr(data, 0, 3), b"GIF")
    return [
        (
            tf.logical_not(is_gif) | complete,
            "truncated or malformed GIF (its blocks do not reach the "
            "trailer; a GIF cut after some of its frames)",
        ),
        (
            tf.logical_not(is_gif)
            | ((max_height * max_width <= max_pixels) & (total <= max_pixels)),
            tf.strings.format(
                "GIF frames need {}x{} pixels ({} over all frames), over the "
                "limit of max_pixels=" + str(max_pixels) + " (the header's "
                "screen size is not what the decoder allocates)",
                (max_width, max_height, total),
            ),
        ),
        (
            tf.logical_not(webp_is_animated_tf(data)),
            "animated WebP is not supported (TensorFlow cannot decode it "
            "to RGB); send a still image, e.g. its first frame as PNG",
        ),
    ]


def assert_frames_tf(data, max_pixels, name="image"):
    """Asserts `frame_checks_tf`; returns `data` behind the asserts.

    Raises `InvalidArgumentError` with `"<name>: <message>"` on failure.
    """
    data = tf.convert_to_tensor(data, tf.string)
    asserts = [
        tf.debugging.Assert(condition, [name + ": " + message], summarize=1)
        for condition, message in frame_checks_tf(data, max_pixels)
    ]
    with tf.control_dependencies(asserts):
        return tf.identity(data)


def frame_problem(data, max_pixels):
    """Pure-Python `frame_checks_tf`: a message, or `None` when fine."""
    data = bytes(data)
    if data[:3] == b"GIF":
        max_height, max_width, total, _, complete = gif_layout(data)
        if not complete:
            return (
                "truncated or malformed GIF (its blocks do not reach the "
                "trailer; a GIF cut after some of its frames)"
            )
        if max_height * max_width > max_pixels or total > max_pixels:
            return (
                f"GIF frames need {max_width}x{max_height} pixels ({total} "
                f"over all frames), over the limit of max_pixels={max_pixels}"
                " (the header's screen size is not what the decoder "
                "allocates)"
            )
    if webp_is_animated(data):
        return (
            "animated WebP is not supported (TensorFlow cannot decode it "
            "to RGB); send a still image, e.g. its first frame as PNG"
        )
    return None
