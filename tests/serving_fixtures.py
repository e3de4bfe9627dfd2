"""One tiny serving export shared by the export and serving-client tests.

Exporting traces four signatures and saves a SavedModel (about 10 s on two
cores), so the export is made once per test process and reused.
"""

import io
import os
import struct
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from conftest import make_lit_model
from conftest import random_images

CLASS_NAMES = ["red circle", "Blue square", "green star!"]
TEMPLATES = ["a photo of a {}.", "a drawing of a {}"]
TOP_K = 2
BATCHING_PARAMETERS = "max_batch_size { value: 32 }"
FAKE_OLD_VERSION = 7

_CACHE = {}


@dataclass
class TinyExport:
    model: object
    base_dir: str
    path: str
    version: int


def tiny_export(tmp_path_factory, vocabulary):
    """The shared export: `<base>/8`, next to a fake older version `7`."""
    if "export" not in _CACHE:
        from keras_lit.export import export_for_serving

        model = make_lit_model(vocabulary)
        base_dir = str(tmp_path_factory.mktemp("lit_models"))
        # An older version (TF Serving would serve it) and a non-version
        # directory (ignored): auto-increment must pick 8.
        os.makedirs(os.path.join(base_dir, str(FAKE_OLD_VERSION)))
        os.makedirs(os.path.join(base_dir, "notes"))
        path = export_for_serving(
            model,
            base_dir,
            class_names=CLASS_NAMES,
            templates=TEMPLATES,
            top_k=TOP_K,
            batching_parameters=BATCHING_PARAMETERS,
        )
        _CACHE["export"] = TinyExport(
            model, base_dir, path, int(os.path.basename(path))
        )
    return _CACHE["export"]


def loaded_signatures(export):
    if "loaded" not in _CACHE:
        from keras_lit.export import load

        _CACHE["loaded"] = load(export.path)
    return _CACHE["loaded"]


# --- Encoded test images ----------------------------------------------------


def encode(image, image_format, **options):
    """Encodes a uint8 `[H, W, C]` array with Pillow."""
    from PIL import Image

    buffer = io.BytesIO()
    array = image[..., 0] if image.shape[-1] == 1 else image
    Image.fromarray(array).save(buffer, image_format, **options)
    return buffer.getvalue()


def sample_images():
    """Encoded images covering formats, sizes, grayscale and alpha."""
    rgb = random_images(4, 48, seed=3)
    rgba = np.concatenate([rgb[3], np.full((48, 48, 1), 200, "uint8")], -1)
    return {
        "png_at_size": encode(random_images(1, 32, seed=1)[0], "PNG"),
        "jpeg_larger": encode(rgb[0][:40], "JPEG", quality=92),
        "png_gray": encode(rgb[1][..., :1], "PNG"),
        "webp": encode(rgb[2], "WEBP", lossless=True),
        "png_rgba": encode(rgba, "PNG"),
        "bmp": encode(rgb[1][:20, :30], "BMP"),
        "gif": encode(rgb[0][:24], "GIF"),
    }


def png_claiming(height, width):
    """A 1x1 PNG whose IHDR claims `height` x `width` (a bomb header)."""
    data = bytearray(encode(np.zeros((1, 1, 3), "uint8"), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    return bytes(data)


def jpeg_claiming(height, width):
    """A small JPEG whose SOF0 frame header claims `height` x `width`."""
    data = bytearray(encode(np.zeros((8, 8, 3), "uint8"), "JPEG"))
    start = data.index(b"\xff\xc0")
    data[start + 5 : start + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_claiming(height, width):
    """An extended (VP8X) WebP whose canvas claims `height` x `width`."""
    data = bytearray(encode(np.zeros((4, 4, 4), "uint8"), "WEBP"))
    assert data[12:16] == b"VP8X", data[12:16]
    data[24:27] = (width - 1).to_bytes(3, "little")
    data[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def decode_like_serving(image_bytes, image_size=(32, 32)):
    """The pixels the export feeds the tower (`resize="crop"`), uint8.

    Decoded, resized on the shorter side, centre-cropped and rounded, as
    `keras_lit.data` does.
    """
    from keras_lit import image_ops

    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = image_ops.resize_and_crop(image, image_size)
    return tf.cast(tf.round(image), tf.uint8).numpy()
