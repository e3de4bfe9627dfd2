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

Both walk the GIF's blocks (extensions and image data skipped in runs of
same-size sub-blocks, image descriptors read) up to the trailer and
report the largest frame's height and width, the frames' pixels added
up, the frame count and whether the file is complete (a trailer reached
with every block whole). A GIF cut after some of its frames, which TF
would decode silently, is incomplete.

JPEG and PNG structure checks live in `keras_lit.image_structure`.
"""

import tensorflow as tf

# Steps walked before a GIF is refused as malformed. A step reads one block
# header (an extension, an image descriptor, the trailer) or skips a run of
# up to `GIF_RUN` consecutive sub-blocks of the same size (encoders write
# 255-byte sub-blocks, so a frame's data is a few steps whatever its size).
MAX_GIF_STEPS = 8192
GIF_RUN = 256


def gif_layout(data, max_steps=MAX_GIF_STEPS):
    """`(max_height, max_width, total_pixels, frames, complete)` of a GIF.

    Pure Python. `complete` is False when the file ends inside a block or
    before the trailer, or when walking it takes more than `max_steps`
    steps. Returns zeros and `complete=False` for data that is not a GIF.
    """
    data = bytes(data)
    length = len(data)
    if data[:6] not in (b"GIF87a", b"GIF89a") or length < 13:
        return 0, 0, 0, 0, False
    position = 13 + _table_size(data[10])
    in_chain = False
    max_height = max_width = total = frames = 0
    for _ in range(max_steps):
        if position >= length:
            break
        if in_chain:
            size = data[position]
            if size == 0:
                position += 1
                in_chain = False
                continue
            run = 0
            while (
                run < GIF_RUN
                and position + (size + 1) * run < length
                and data[position + (size + 1) * run] == size
            ):
                run += 1
            position += (size + 1) * run
            continue
        introducer = data[position]
        if introducer == 0x3B:  # Trailer.
            return max_height, max_width, total, frames, True
        if introducer == 0x21:  # Extension: label, then sub-blocks.
            position += 2
        elif introducer == 0x2C and position + 10 <= length:
            width = int.from_bytes(data[position + 5 : position + 7], "little")
            height = int.from_bytes(data[position + 7 : position + 9], "little")
            frames += 1
            total += width * height
            max_height = max(max_height, height)
            max_width = max(max_width, width)
            # Descriptor, local colour table, LZW code size, sub-blocks.
            position += 11 + _table_size(data[position + 9])
        else:
            break
        in_chain = True
    return max_height, max_width, total, frames, False


def _table_size(flags):
    """Bytes of the colour table a GIF's flags byte announces."""
    return 3 * (2 ** ((flags & 7) + 1)) if flags & 0x80 else 0


def webp_is_animated(data):
    """True for an extended (VP8X) WebP whose animation flag is set."""
    data = bytes(data[:21])
    return (
        data[:4] == b"RIFF"
        and data[8:16] == b"WEBPVP8X"
        and len(data) >= 21
        and bool(data[20] & 0x02)
    )


def gif_layout_tf(data, max_steps=MAX_GIF_STEPS):
    """`gif_layout` in TensorFlow ops: int64 scalars and a bool.

    The same steps as `gif_layout`, one loop iteration each; a run of
    same-size sub-blocks is measured with one gather of `GIF_RUN` sizes.
    Costs almost nothing for data that is not a GIF (the walk sees no
    bytes).
    """
    data = tf.convert_to_tensor(data, tf.string)
    is_gif = tf.equal(tf.strings.substr(data, 0, 6), b"GIF87a") | tf.equal(
        tf.strings.substr(data, 0, 6), b"GIF89a"
    )
    is_gif &= tf.strings.length(data) >= 13
    gif = tf.where(is_gif, data, "")
    values = tf.cast(tf.io.decode_raw(gif, tf.uint8), tf.int64)
    length = tf.size(values, out_type=tf.int64)
    padded = tf.concat([values, tf.zeros([16], tf.int64)], 0)
    run_offsets = tf.range(GIF_RUN, dtype=tf.int64)

    def byte(position):
        return tf.gather(padded, tf.clip_by_value(position, 0, length + 15))

    def table_size(flags):
        # No module-level tensors: they would start TF's runtime at import,
        # before a MultiWorkerMirroredStrategy or logical devices are set.
        two = tf.constant(2, tf.int64)
        return tf.where(
            flags >= 128,
            3 * tf.bitwise.left_shift(two, flags % 8),
            tf.zeros_like(flags),
        )

    def chain_step(position):
        size = byte(position)
        stride = size + 1
        positions = position + stride * run_offsets
        same = (positions < length) & tf.equal(
            tf.gather(padded, tf.clip_by_value(positions, 0, length + 15)),
            size,
        )
        # The run ends at the first sub-block of another size.
        run = tf.reduce_sum(
            tf.cast(tf.math.cumprod(tf.cast(same, tf.int64)), tf.int64)
        )
        ends = tf.equal(size, 0)
        return tf.where(ends, position + 1, position + stride * run), ends

    def condition(step, position, in_chain, done, *stats):
        return (step < max_steps) & (position < length) & tf.logical_not(done)

    def body(
        step, position, in_chain, done, max_height, max_width, total, frames
    ):
        chain_position, chain_ends = chain_step(position)
        introducer = byte(position)
        is_trailer = tf.equal(introducer, 0x3B)
        is_extension = tf.equal(introducer, 0x21)
        is_image = tf.equal(introducer, 0x2C) & (position + 10 <= length)
        width = byte(position + 5) + 256 * byte(position + 6)
        height = byte(position + 7) + 256 * byte(position + 8)
        block_position = tf.where(
            is_extension,
            position + 2,
            position + 11 + table_size(byte(position + 9)),
        )
        at_block = tf.logical_not(in_chain)
        count = tf.cast(at_block & is_image, tf.int64)
        broken = at_block & ~is_trailer & ~is_extension & ~is_image
        next_position = tf.where(
            in_chain,
            chain_position,
            tf.where(is_trailer, position, block_position),
        )
        next_in_chain = tf.where(in_chain, ~chain_ends, ~is_trailer)
        return (
            step + 1,
            tf.where(broken, length + 1, next_position),
            next_in_chain,
            at_block & is_trailer,
            tf.maximum(max_height, height * count),
            tf.maximum(max_width, width * count),
            total + width * height * count,
            frames + count,
        )

    start = 13 + table_size(byte(tf.constant(10, tf.int64)))
    start = tf.where(is_gif, start, length + 1)
    zero = tf.constant(0, tf.int64)
    loop = tf.while_loop(
        condition,
        body,
        (
            zero,
            start,
            tf.constant(False),
            tf.constant(False),
            zero,
            zero,
            zero,
            zero,
        ),
    )
    _, position, _, done, max_height, max_width, total, frames = loop
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
