"""Writes the shared test vectors of the wire-format rules (run by hand).

    PYTHONPATH=. python tests/data/make_wire_vectors.py

Each rule has one Python home and twins in TensorFlow ops and JavaScript;
`tests/wire_rules_test.py` runs all of them on these vectors. Expected
values come from how each vector is built (image sizes), from an
independent float64 reference (prompt averaging), or from the Python home
(canonical text, whose rule is pinned by hand in zero_shot_test.py).
"""

import base64
import io
import json
import os
import struct

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def encode(array, image_format, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, image_format, **options)
    return buffer.getvalue()


def pixels(height, width, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = (height, width, channels) if channels > 1 else (height, width)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def image_vectors():
    vectors = []

    def add(name, data, image_format, width, height, tf_raises=False):
        vector = {
            "name": name,
            "bytes_b64": base64.b64encode(data).decode("ascii"),
            "format": image_format,
            "width": width,
            "height": height,
        }
        if tf_raises:
            vector["tf_raises"] = True
        vectors.append(vector)

    rgb = pixels(9, 13)
    add("png", encode(rgb, "PNG"), "PNG", 13, 9)
    add("png_gray", encode(pixels(7, 5, 1), "PNG"), "PNG", 5, 7)
    add("png_rgba", encode(pixels(6, 4, 4), "PNG"), "PNG", 4, 6)
    add("jpeg", encode(rgb, "JPEG", quality=80), "JPEG", 13, 9)
    progressive = encode(pixels(17, 11), "JPEG", progressive=True)
    assert b"\xff\xc2" in progressive
    add("jpeg_progressive", progressive, "JPEG", 11, 17)
    add("gif89a", encode(rgb, "GIF"), "GIF", 13, 9)
    gif87 = b"GIF87a" + struct.pack("<HH", 300, 200) + b"\x00\x00\x00;"
    add("gif87a_header", gif87, "GIF", 300, 200)
    bmp = encode(pixels(5, 6), "BMP")
    add("bmp", bmp, "BMP", 6, 5)
    top_down = bytearray(bmp)
    top_down[22:26] = struct.pack("<i", -5)
    add("bmp_top_down", bytes(top_down), "BMP", 6, 5)
    lossy = encode(pixels(10, 14), "WEBP", quality=80)
    assert lossy[12:16] == b"VP8 ", lossy[12:16]
    add("webp_lossy", lossy, "WebP", 14, 10)
    lossless = encode(pixels(12, 9), "WEBP", lossless=True)
    assert lossless[12:16] == b"VP8L", lossless[12:16]
    add("webp_lossless", lossless, "WebP", 9, 12)
    extended = encode(pixels(4, 4, 4), "WEBP")
    assert extended[12:16] == b"VP8X", extended[12:16]
    add("webp_extended", extended, "WebP", 4, 4)

    # Headers claiming huge images (decompression bombs).
    png_bomb = bytearray(encode(pixels(1, 1), "PNG"))
    png_bomb[16:24] = struct.pack(">II", 20000, 30000)
    add("png_bomb", bytes(png_bomb), "PNG", 20000, 30000)
    jpeg_bomb = bytearray(encode(pixels(8, 8), "JPEG"))
    start = jpeg_bomb.index(b"\xff\xc0")
    jpeg_bomb[start + 5 : start + 9] = struct.pack(">HH", 30000, 20000)
    add("jpeg_bomb", bytes(jpeg_bomb), "JPEG", 20000, 30000)
    webp_bomb = bytearray(extended)
    webp_bomb[24:27] = (16000 - 1).to_bytes(3, "little")
    webp_bomb[27:30] = (9000 - 1).to_bytes(3, "little")
    add("webp_bomb", bytes(webp_bomb), "WebP", 16000, 9000)
    gif_bomb = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00" * 3
    add("gif_bomb_screen", gif_bomb, "GIF", 65535, 65535)

    # Known formats whose size cannot be read.
    add("png_signature_only", b"\x89PNG\r\n\x1a\n", "PNG", -1, -1)
    add("gif_short", b"GIF89a\x01\x00", "GIF", -1, -1)
    add("bmp_short", b"BM\x00\x00\x00\x00", "BMP", -1, -1)
    add(
        "webp_unknown_chunk",
        b"RIFF\x20\x00\x00\x00WEBPVP8Z" + b"\x00" * 16,
        "WebP",
        -1,
        -1,
    )
    add(
        "jpeg_without_frame",
        b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9",
        "JPEG",
        -1,
        -1,
        tf_raises=True,
    )

    # Not images, or almost-magic bytes.
    add("garbage", b"garbage bytes", "", -1, -1)
    add("png_as_base64_text", base64.b64encode(encode(rgb, "PNG")), "", -1, -1)
    add("jpeg_two_bytes", b"\xff\xd8", "", -1, -1)
    add("gif_loose_magic", b"GIF8" + b"\x10\x00\x10\x00" * 3, "", -1, -1)
    add("riff_not_webp", b"RIFF\x04\x00\x00\x00WAVEfmt ", "", -1, -1)
    return vectors


TEXTS = [
    "  A photo of a Jack-o'-lantern. ",
    "DON’T stop",
    "Grevy's  Zebra!",
    "ÉCOLE  İstanbul ΟΔΟΣ Straße",
    "a\u00a0b\u2003c\tD\ne",
    "x_y/z — w",
    "t-shirt/blouse",
    "a (b) [c] {d} $5 +1 <x> ^ ` | ~ #",
    "Ünïcödé CAFÉ — “quoted” [x] {y} <z> $5 + 1 = 6 ^ ` | ~",
    "“quoted” «fr» ¿qué? ¡sí!",
    "日本語、テスト。",
    "emoji 🙂 ok",
    "snake_case_name",
    "?!",
    "",
]


def text_vectors():
    from keras_lit.zero_shot.weights import canonicalize_text
    from keras_lit.zero_shot.weights import format_prompts

    class_names = ["Red Circle", "T-shirt", "Grevy's zebra"]
    templates = ["a photo of a {}.", "{} — drawn", "a {} and a {}!"]
    return {
        "canonical": [
            {"text": text, "canonical": canonicalize_text(text)}
            for text in TEXTS
        ],
        "prompts": {
            "class_names": class_names,
            "templates": templates,
            "prompts": format_prompts(class_names, templates),
        },
    }


def averaging_vectors():
    """Class-major prompt embeddings -> normalise, mean, normalise (float64)."""
    rng = np.random.default_rng(16)
    cases = []
    for classes, templates, dim in ((3, 2, 5), (1, 4, 3), (2, 1, 4)):
        rows = rng.normal(size=(classes * templates, dim)).round(4)
        if classes == 3:
            rows[1] *= 100.0  # Prompts of different lengths weigh the same.
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        mean = unit.reshape(classes, templates, dim).mean(axis=1)
        weights = mean / np.linalg.norm(mean, axis=1, keepdims=True)
        cases.append(
            {
                "num_templates": templates,
                "prompt_embeddings": rows.tolist(),
                "class_weights": weights.tolist(),
            }
        )
    return cases


def main():
    outputs = {
        "image_header_vectors.json": {
            "rule": "keras_lit.image_header.read_image_header",
            "vectors": image_vectors(),
        },
        "text_vectors.json": {
            "rule": "keras_lit.zero_shot.weights.canonicalize_text and "
            "format_prompts",
            **text_vectors(),
        },
        "prompt_averaging_vectors.json": {
            "rule": "keras_lit.zero_shot.weights.average_prompt_embeddings",
            "cases": averaging_vectors(),
        },
    }
    for name, content in outputs.items():
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as file:
            json.dump(content, file, indent=1, ensure_ascii=False)
            file.write("\n")


if __name__ == "__main__":
    main()
