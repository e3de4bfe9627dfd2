"""Fashion-MNIST from Debian's `dataset-fashion-mnist`, with free captions.

`apt-get install dataset-fashion-mnist` puts the four IDX files (60,000
training and 10,000 test images, 28x28 grey, 10 classes) under
`/usr/share/datasets/fashion-mnist/`. `load_fashion_mnist` reads them with
numpy; `caption` writes a varied natural caption for a label (templates and
synonyms), as free-form alt-text would be.
"""

import gzip
import os
import struct

import numpy as np

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
DIR_ENV = "KERAS_LIT_FASHION_MNIST_DIR"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
CLASS_NAMES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
# Words a caption may use for each class (the first is the class name).
SYNONYMS = (
    ("t-shirt", "tee", "top", "tee shirt"),
    ("trouser", "pair of trousers", "pair of pants", "pair of slacks"),
    ("pullover", "sweater", "jumper", "knit sweater"),
    ("dress", "frock", "gown", "summer dress"),
    ("coat", "jacket", "overcoat", "winter coat"),
    ("sandal", "summer sandal", "strappy sandal", "open shoe"),
    ("shirt", "button-up shirt", "blouse", "collared shirt"),
    ("sneaker", "trainer", "running shoe", "sports shoe"),
    ("bag", "handbag", "purse", "tote"),
    ("ankle boot", "boot", "short boot", "bootie"),
)
TEMPLATES = (
    "a photo of a {}.",
    "{} for sale",
    "product shot: {}",
    "a grey {} on a black background",
    "my new {}",
    "a small picture of a {}",
    "{}, catalogue image",
    "this {} is on sale today",
    "a low resolution photo of a {}",
    "look at this {}",
)
INSTALL_HINT = (
    f"Fashion-MNIST comes from Debian: apt-get install {DEBIAN_PACKAGE} "
    f"(or set {DIR_ENV} to a folder with the four IDX .gz files)"
)


class DatasetMissingError(FileNotFoundError):
    """The Fashion-MNIST files are missing or damaged."""


def data_dir():
    """`$KERAS_LIT_FASHION_MNIST_DIR`, else Debian's install folder."""
    return os.environ.get(DIR_ENV) or DEFAULT_DIR


def load_fashion_mnist(split="train", directory=None):
    """`(images uint8 [N, 28, 28], labels int64 [N])` of one split."""
    if split not in FILES:
        raise ValueError(
            f"`split` must be 'train' or 'test'. Received: split={split!r}"
        )
    directory = directory or data_dir()
    image_file, label_file = (os.path.join(directory, f) for f in FILES[split])
    images = _read_idx(image_file, magic=2051)
    labels = _read_idx(label_file, magic=2049).astype(np.int64)
    if images.shape != (SPLIT_SIZES[split], 28, 28) or len(labels) != len(
        images
    ):
        raise DatasetMissingError(
            f"{image_file}: unexpected shape {images.shape}. {INSTALL_HINT}"
        )
    if labels.min() < 0 or labels.max() >= len(CLASS_NAMES):
        raise DatasetMissingError(f"{label_file}: labels out of range.")
    return images, labels


def _read_idx(path, magic):
    if not os.path.isfile(path):
        raise DatasetMissingError(f"{path} is missing. {INSTALL_HINT}")
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise DatasetMissingError(
            f"{path} is damaged ({error}). {INSTALL_HINT}"
        ) from None
    if len(data) < 8 or struct.unpack(">i", data[:4])[0] != magic:
        raise DatasetMissingError(f"{path} is not an IDX file. {INSTALL_HINT}")
    rank = data[3]
    shape = struct.unpack(f">{rank}i", data[4 : 4 + 4 * rank])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(shape)):
        raise DatasetMissingError(f"{path} is truncated. {INSTALL_HINT}")
    return body.reshape(shape)


def caption(label, rng):
    """A random caption for class `label`: template x synonym."""
    words = SYNONYMS[label]
    word = words[rng.integers(len(words))]
    template = TEMPLATES[rng.integers(len(TEMPLATES))]
    text = template.format(word)
    if word[0] in "aeiou":  # "a overcoat" -> "an overcoat"
        text = text.replace(f"a {word}", f"an {word}")
    return text


def to_rgb(images, size):
    """`[N, 28, 28]` grey uint8 -> `[N, size, size, 3]` uint8 (bilinear)."""
    import tensorflow as tf

    resized = tf.image.resize(
        tf.convert_to_tensor(images[..., None], tf.float32),
        (size, size),
        method="bilinear",
    )
    resized = tf.clip_by_value(tf.round(resized), 0, 255)
    return np.repeat(resized.numpy().astype(np.uint8), 3, axis=-1)
