"""
Title: Google's published LiT models in Keras
Author: keras_lit contributors
Date created: 2026/12/07
Last modified: 2026/12/07
Description: Import a released LiT checkpoint, classify photos zero-shot and export it for TF Serving.
Accelerator: None
"""

"""
## Introduction

The LiT authors released their models as JAX/Flax `.npz` files:
**LiT-B16B_2** (ViT-B/16 + BERT-Base, 196M parameters) and **LiT-L16L**
(ViT-L/16 + BERT-Large, 638M), plus LiT-L16S, LiT-L16Ti and the older
LiT-B16B. `keras_lit` imports them into a Keras `LiTModel` built from
library parts (KerasHub's `ViTBackbone` and `BertBackbone`, the project's
text transformer for L16S/L16Ti), with the original preprocessing and
tokenisation in `model.preprocessor`. The imported model gives the original
code's numbers on raw images and strings (checked to 1e-5 against outputs
of Google's own code in `tests/checkpoints_test.py`), trains on with `fit`
(the image tower stays locked), and exports to a TF Serving SavedModel.

This example:

1. imports a released model (`LiTModel.from_preset("lit_b16b_2")`),
2. classifies photos zero-shot into labels chosen now,
3. exports it for TensorFlow Serving and checks the SavedModel gives the
   same answers.

**Files.** `from_preset("lit_b16b_2")` downloads `LiT-B16B_2.npz` (474 MB)
and `LiT-B16B_2.txt` from `gs://vit_models/lit/` once, into
`~/.keras/keras_lit/lit/`. Without network it fails in one line; copy the
two files there, or pass the path of a local `.npz` (its vocabulary next to
it). The command line does the same and writes a LiT preset:

```
keras-lit import --checkpoint LiT-B16B_2.npz --vocab LiT-B16B_2.txt --out lit_b16b_2/
```

**Smoke mode.** With `KERAS_LIT_SMOKE=1` (how CI runs this notebook, with
no network) the example imports the tiny B16B_2-like checkpoint of the
test fixtures instead: the same key layout written by the original code,
with random weights. Every step runs, but its zero-shot labels mean
nothing.
"""

"""
## Setup
"""

import os
import shutil
import tempfile

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras_lit  # Imports TensorFlow quietly.
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from keras_lit import export
from keras_lit.models import LiTModel

"""
## Hyperparameters
"""

SMOKE = os.environ.get("KERAS_LIT_SMOKE") == "1"
PRESET = "lit_b16b_2"  # or "lit_l16l", "lit_l16s", "lit_l16ti", "lit_b16b"
LABELS = ["a woman", "a man", "a cat", "a cup of coffee", "a rocket", "a dog"]
TEMPLATES = ["a photo of {}."]
FIXTURES = os.environ.get(
    "KERAS_LIT_CHECKPOINT_FIXTURES", "../shared/lit_checkpoints"
)

"""
## Import the model

A released name downloads (once) and converts the checkpoint; a path to a
`.npz` converts a local file. The BERT towers store no head count, so a
file that is not one of the released models may need `text_num_heads`.
"""

if SMOKE:
    checkpoint = os.path.join(FIXTURES, "lit_tiny_b16b_like.npz")
    model = LiTModel.from_preset(checkpoint, text_num_heads=4)
else:
    model = LiTModel.from_preset(PRESET)

backbone = model.image_encoder.backbone
print(f"image tower: {type(backbone).__name__}, {backbone.num_layers} layers")
print(f"text tower: {model.text_encoder.backbone.name}")
print(f"parameters: {model.count_params():,}")
print(f"logit scale exp(t): {float(model.temperature):.2f}")
print(f"image size: {model.image_encoder.image_size}")

"""
The preprocessing is the original one: images are resized to the tower's
size without keeping the aspect ratio (plain bilinear, no antialiasing),
floored to whole pixels and scaled to [-1, 1]; texts are lower-cased,
accent-stripped WordPiece ids with `[CLS]` first, no `[SEP]`, 16 tokens.
"""

tokens = model.preprocessor({"texts": ["A photo of a cat."]})["token_ids"]
print(tokens.numpy())

"""
In smoke mode the fixture also holds the original code's outputs on its
inputs, so we can check the import here too.
"""

if SMOKE:
    reference = np.load(
        os.path.join(FIXTURES, "lit_tiny_b16b_like_expected.npz")
    )
    fixture_images = np.load(os.path.join(FIXTURES, "images.npy"))
    with open(os.path.join(FIXTURES, "texts.txt"), encoding="utf-8") as file:
        fixture_texts = file.read().splitlines()
    image_error = np.abs(
        model.encode_images(fixture_images) - reference["zimg"]
    ).max()
    text_error = np.abs(
        model.encode_texts(fixture_texts) - reference["ztxt"]
    ).max()
    print(
        f"max |difference| to the original code: images {image_error:.1e}, "
        f"texts {text_error:.1e}"
    )

"""
## Zero-shot classification of photos

A few real photos that come with installed packages: Grace Hopper from
Matplotlib and, when scikit-image is installed, its cat, coffee, astronaut
and rocket.
"""


def sample_photos():
    folder = os.path.join(matplotlib.get_data_path(), "sample_data")
    paths = [os.path.join(folder, "grace_hopper.jpg")]
    try:
        import skimage

        data = os.path.join(os.path.dirname(skimage.__file__), "data")
        for name in (
            "chelsea.png",
            "coffee.png",
            "astronaut.png",
            "rocket.jpg",
        ):
            if os.path.exists(os.path.join(data, name)):
                paths.append(os.path.join(data, name))
    except ImportError:
        pass
    photos = {}
    for path in paths:
        with open(path, "rb") as file:
            photos[os.path.basename(path)] = file.read()
    return photos


photos = sample_photos()
images = [
    tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    for data in photos.values()
]

weights = keras_lit.zero_shot.build_zero_shot_weights(
    model, LABELS, templates=TEMPLATES, verbose=0
)
probabilities = []
for image in images:  # Photos of different sizes: one at a time.
    embedding = model.encode_images(image[None])
    logits = float(model.temperature) * embedding @ weights.T
    probabilities.append(tf.nn.softmax(logits, axis=-1).numpy()[0])
probabilities = np.array(probabilities)
for name, row in zip(photos, probabilities):
    print(f"{name:18s} {LABELS[int(row.argmax())]!r} ({row.max():.2f})")

figure, axes = plt.subplots(1, len(images), figsize=(3 * len(images), 3.4))
for axis, image, row in zip(np.atleast_1d(axes), images, probabilities):
    axis.imshow(image)
    axis.set_title(f"{LABELS[int(row.argmax())]}\n{row.max():.2f}", fontsize=9)
    axis.axis("off")
plt.tight_layout()
plt.show()

"""
## Continue training

The image tower is locked as in every LiT model, so `fit` trains only the
text tower and the temperature (the paper's setting). Give it your own
`{"images", "texts"}` pairs:

```python
model.compile()  # AdamW as in LiT; pick a small learning rate to fine-tune
model.fit({"images": images, "texts": captions}, batch_size=256, epochs=1)
```

## Export for TensorFlow Serving

`resize="stretch"` resizes uploaded images as the original code did (the
default `"crop"` keeps the aspect ratio, as `keras_lit.data` does in
training). The SavedModel takes encoded image bytes and strings.
"""

export_dir = tempfile.mkdtemp(prefix="lit_export_")
path = export.export_for_serving(
    model,
    export_dir,
    class_names=LABELS,
    templates=TEMPLATES,
    resize="stretch",
)
signatures = export.load(path)
served = signatures["classify"](image_bytes=tf.constant(list(photos.values())))
served_probabilities = served["probabilities"].numpy()
print(
    "top class per photo:",
    [v.decode() for v in served["top_classes"][:, 0].numpy()],
)
print(
    "max |served - Keras| probability:",
    f"{np.abs(served_probabilities - probabilities).max():.1e}",
)

"""
Serve the version directory with stock TF Serving
(`tensorflow_model_server --model_base_path=<export_dir> --model_name=lit`);
`serving/README.md` documents the signatures (`embed_image`, `embed_text`,
`zero_shot`, `classify`) and the clients.
"""

shutil.rmtree(export_dir)

"""
## Conclusion

A released LiT model is one `from_preset` away: the towers are KerasHub
layers, the preprocessing is the original, the numbers are the original
code's, and the result trains with `fit` and serves with TF Serving. In
smoke mode the labels above are random; with the real `lit_b16b_2` the
photos get their labels.
"""
