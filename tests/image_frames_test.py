"""GIF frame sizes and animated WebP: Python and TF ops on shared vectors."""

import io
import json
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_lit.image_frames import gif_layout
from keras_lit.image_frames import gif_layout_tf
from keras_lit.image_frames import webp_is_animated
from keras_lit.image_frames import webp_is_animated_tf
from keras_lit.image_structure import jpeg_structure_ok
from keras_lit.image_structure import jpeg_structure_ok_tf
from keras_lit.image_structure import png_structure_ok
from keras_lit.image_structure import png_structure_ok_tf


def animated(fmt, sizes=((20, 30), (20, 30), (20, 30)), **options):
    frames = [
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8))
        for i, (h, w) in enumerate(sizes)
    ]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, fmt, save_all=True, append_images=frames[1:], **options
    )
    return buffer.getvalue()


def screen_says(data, height, width):
    """The GIF with its logical screen size overwritten."""
    return data[:6] + struct.pack("<HH", width, height) + data[10:]


def still_gif(height, width, palette=True):
    image = Image.fromarray(np.zeros((height, width), np.uint8), "L")
    buffer = io.BytesIO()
    (image.convert("P") if palette else image).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def vectors():
    gif = animated("GIF", duration=100, loop=0)
    cases = {
        "animated": (gif, (20, 30, 1800, 3, True)),
        "still": (still_gif(7, 9), (7, 9, 63, 1, True)),
        "frame over screen": (
            screen_says(still_gif(300, 400), 1, 1),
            (300, 400, 120000, 1, True),
        ),
        "no trailer": (gif[:-1], (20, 30, 1800, 3, False)),
        "not a gif": (b"\x89PNG\r\n\x1a\nxxxxxxxx", (0, 0, 0, 0, False)),
        "empty": (b"", (0, 0, 0, 0, False)),
        "garbage block": (gif[:-1] + b"\x99", (20, 30, 1800, 3, False)),
    }
    # Cut after every byte: every prefix but the whole file is incomplete.
    for cut in range(0, len(gif) - 1, 7):
        cases[f"cut at {cut}"] = (gif[:cut], None)
    return cases


def layout_in_graph(data, **kwargs):
    """`gif_layout_tf` traced, as a SavedModel runs it (eagerly, its loop
    runs op by op: 36 s for a 25 kB chain of sub-blocks)."""
    return _traced_layout(tf.constant(data, tf.string), **kwargs)


_traced_layout = tf.function(gif_layout_tf)


def test_python_and_tf_agree_on_shared_vectors(vectors):
    for name, (data, expected) in vectors.items():
        got = gif_layout(data)
        got_tf = tuple(v.numpy().item() for v in layout_in_graph(data))
        assert got_tf == got, name
        if expected is not None:
            assert got == expected, name
        else:
            assert got[-1] is False, name


def raw_gif(sizes, screen=(1, 1)):
    """A GIF with frames of `sizes` (pixel data is a stub: layout only)."""
    header = b"GIF89a" + struct.pack("<HHBBB", screen[1], screen[0], 0x80, 0, 0)
    blocks = [header, b"\x00" * 6, b"\x21\xf9\x04\x00\x00\x00\x00\x00"]
    for height, width in sizes:
        blocks.append(b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0))
        blocks.append(b"\x02\x03\x44\x01\x05\x00")
    return b"".join(blocks) + b"\x3b"


def test_mixed_frame_sizes_report_the_largest_and_the_sum():
    data = raw_gif([(10, 50), (40, 5)])
    assert gif_layout(data) == (40, 50, 700, 2, True)
    got = tuple(v.numpy().item() for v in layout_in_graph(data))
    assert got == (40, 50, 700, 2, True)


def test_step_limit_refuses_endless_gifs():
    data = animated("GIF", sizes=((2, 2),) * 5, duration=50)
    assert gif_layout(data, max_steps=4)[-1] is False
    assert not layout_in_graph(data, max_steps=4)[-1]
    assert gif_layout(data)[-1] is True
    # Sub-blocks of alternating sizes (no encoder writes these) cost one
    # step each: a long chain of them is refused within the step limit.
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, 2, 2, 0) + b"\x02"
    head = raw_gif([])[:-1] + descriptor
    fragmented = head + b"\x01\x01\x02\x01\x01" * 5000 + b"\x00\x3b"
    assert gif_layout(fragmented, max_steps=10**6)[-1] is True
    assert gif_layout(fragmented)[-1] is False
    assert not layout_in_graph(fragmented)[-1]


def test_animated_webp_detected():
    anim = animated("WEBP", duration=100)
    still = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(still, "WEBP")
    for data, expected in [
        (anim, True),
        (still.getvalue(), False),
        (b"", False),
    ]:
        assert webp_is_animated(data) is expected
        assert bool(webp_is_animated_tf(data)) is expected


def jpeg(pixels, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_jpeg_structure_python_and_tf_agree_and_match_tf_decoding():
    """Corrupted middles: refused exactly when TF's decoder fails (sample)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    valid = [
        jpeg(noise, quality=90),
        jpeg(noise, quality=1, progressive=True),
        jpeg(noise, optimize=True),
        jpeg(np.full((9, 7, 3), 77, np.uint8)),
    ]
    cases = [(data, True) for data in valid]
    base = valid[0]
    for _ in range(60):
        start = int(rng.integers(700, len(base) - 300))
        size = int(rng.integers(1, 300))
        garbage = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        cases.append((base[:start] + garbage + base[start + size :], None))
    cases += [(base[:-1], False), (base[:100], False), (b"", False)]
    cases += [(b"\xff\xd8" + b"\xff" * 50, False), (b"GIF89a", False)]
    check_tf = tf.function(jpeg_structure_ok_tf)
    refused_and_failing = 0
    for data, expected in cases:
        got = jpeg_structure_ok(data)
        assert bool(check_tf(tf.constant(data))) == got
        if expected is not None:
            assert got is expected
            continue
        try:
            tf.io.decode_image(data, channels=3, expand_animations=False)
            decodes = True
        except tf.errors.InvalidArgumentError:
            decodes = False
        # Whatever TF's decoder refuses, the structure check refuses too
        # (it runs first and names the image).
        if not decodes:
            assert not got
            refused_and_failing += 1
    assert refused_and_failing >= 10


def test_png_structure_python_and_tf_agree():
    pixels = np.random.default_rng(0).integers(0, 255, (20, 30, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    png = buffer.getvalue()
    bad_crc = png[:29] + bytes([png[29] ^ 1]) + png[30:]
    cases = [(png, True), (png + b"trailing", True), (bad_crc, False)]
    cases += [(png[:cut], False) for cut in (len(png) - 1, len(png) - 5, 40)]
    cases += [(b"", False), (b"\x89PNG\r\n\x1a\n", False), (b"GIF89a", False)]
    check_tf = tf.function(png_structure_ok_tf)
    for data, expected in cases:
        assert png_structure_ok(data) is expected
        assert bool(check_tf(tf.constant(data))) is expected
        if not expected and data[:4] == b"\x89PNG":
            with pytest.raises(tf.errors.InvalidArgumentError):
                tf.io.decode_image(data, channels=3, expand_animations=False)


def test_every_python_side_decode_path_bounds_gif_frames(tmp_path):
    """Data pipeline and `image_ops.decode_image` (CLI, Keras classify)."""
    from keras_lit import image_ops
    from keras_lit.data import folder_dataset
    from keras_lit.image_frames import frame_problem

    bomb = screen_says(still_gif(300, 400), 1, 1)  # 120,000 px behind 1x1
    limit = 100_000
    assert "GIF frames need 400x300" in frame_problem(bomb, limit)
    assert frame_problem(bomb, 10**6) is None
    with pytest.raises(tf.errors.InvalidArgumentError, match="GIF frames"):
        image_ops.decode_image(bomb, max_pixels=limit)
    assert image_ops.decode_image(bomb).shape == (300, 400, 3)
    anim = animated("WEBP", duration=100)
    with pytest.raises(tf.errors.InvalidArgumentError, match="animated WebP"):
        image_ops.decode_image(anim)
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "bomb.gif").write_bytes(bomb)
    (folder / "cut.gif").write_bytes(animated("GIF", duration=9)[:150])
    (folder / "ok.gif").write_bytes(still_gif(20, 20))
    (folder / "anim.webp").write_bytes(anim)
    (folder / "captions.jsonl").write_text(
        "".join(
            json.dumps({"file_name": name, "text": "x"}) + "\n"
            for name in ["bomb.gif", "cut.gif", "ok.gif", "anim.webp"]
        )
    )
    dataset = folder_dataset(
        str(folder),
        image_size=(8, 8),
        batch_size=1,
        shuffle=False,
        max_pixels=limit,
    )
    assert len(list(dataset)) == 1
    assert dataset.skipped_images.counts["corrupt"] == 3
