"""The sample images the app ships: demo shapes, drawn by the demo's code.

`keras_lit/app/static/samples/` holds twelve JPEGs drawn with
`keras_lit.demo.shapes.render_image` (two of each shape, each in its own
colour, from the held-out `"eval"` split), so a model trained by
`keras-lit demo` recognises them and any other model still has something
to classify. `write_samples` redraws them; the files are committed so that
the app starts without drawing anything.

Regenerate with:

    python -m keras_lit.app.samples keras_lit/app/static/samples

When the served model's image tower is a real pretrained one (a KerasHub
backbone, such as `keras-lit demo --real`'s ImageNet EfficientNet-Lite0),
the app also offers the real photos that scikit-image, matplotlib and
scikit-learn ship (`real_photo_samples`), read from those packages.
"""

import os
import sys

SAMPLES_DIR = os.path.join(os.path.dirname(__file__), "static", "samples")
SAMPLE_SEED = 0
SAMPLE_SPLIT = "eval"
SAMPLE_SIZE = 128
SAMPLES_PER_SHAPE = 2
JPEG_QUALITY = 92


def choose_samples():
    """`[(filename, index, attributes)]`: two large shapes per kind.

    Walks the `"eval"` split from index 0 and keeps an image when its shape
    has fewer than two samples yet and its colour is new for that shape.
    """
    from keras_lit.demo import shapes

    chosen = []
    counts = {shape: 0 for shape in shapes.SHAPES}
    seen = set()
    index = 0
    while len(chosen) < SAMPLES_PER_SHAPE * len(shapes.SHAPES):
        _, attributes = shapes.render_image(
            SAMPLE_SEED, SAMPLE_SPLIT, index, image_size=8
        )
        names = {
            key: shapes.ATTRIBUTES[key][value]
            for key, value in attributes.items()
        }
        key = (names["shape"], names["colour"])
        if (
            names["size"] == "large"
            and counts[names["shape"]] < SAMPLES_PER_SHAPE
            and key not in seen
        ):
            seen.add(key)
            counts[names["shape"]] += 1
            filename = f"{names['colour']}-{names['shape']}.jpg"
            chosen.append((filename, index, names))
        index += 1
    return chosen


def render_samples():
    """`[(filename, uint8 [128, 128, 3], attributes)]` for every sample."""
    from keras_lit.demo import shapes

    return [
        (
            filename,
            shapes.render_image(
                SAMPLE_SEED, SAMPLE_SPLIT, index, image_size=SAMPLE_SIZE
            )[0],
            names,
        )
        for filename, index, names in choose_samples()
    ]


def write_samples(output_dir):
    """Draws the samples as JPEGs into `output_dir`; returns the paths."""
    import tensorflow as tf

    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for filename, image, _ in render_samples():
        path = os.path.join(output_dir, filename)
        data = tf.io.encode_jpeg(image, quality=JPEG_QUALITY).numpy()
        with open(path, "wb") as file:
            file.write(data)
        paths.append(path)
    return paths


def list_samples(samples_dir=SAMPLES_DIR):
    """The shipped sample filenames, sorted."""
    if not os.path.isdir(samples_dir):
        return []
    return sorted(
        name
        for name in os.listdir(samples_dir)
        if name.lower().endswith((".jpg", ".jpeg", ".png"))
    )


def is_real_tower(metadata):
    """Whether an export's image tower is a real pretrained one.

    `keras_lit.export` records the backbone as `"image_backbone"`,
    `"<package>.<class>"`; KerasHub backbones are pretrained vision models
    (ViT, DINOv2, EfficientNet ...), unlike the demo's KerasCV shapes tower.
    """
    return str(metadata.get("image_backbone", "")).startswith("keras_hub.")


def real_photo_samples():
    """`{filename: path}` of the shipped real photos that are installed."""
    from keras_lit.real import photos

    samples = {}
    for name in photos.PHOTOS:
        try:
            path = photos.photo_path(name)
        except FileNotFoundError:
            continue
        samples[f"photo-{name}{os.path.splitext(path)[1]}"] = path
    return samples


if __name__ == "__main__":
    for written in write_samples(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(written)
