"""Real photographs that ship inside installed Python packages.

scikit-image, matplotlib and scikit-learn each carry a few sample photos.
Nothing is downloaded: a missing package gives a one-line error naming
what to install.
"""

import numpy as np

from keras_lit.real.packaged import packaged_file

# name -> (import name, pip requirement, path inside the package, caption)
PHOTOS = {
    "chelsea": ("skimage", "scikit-image==0.26.0", "data/chelsea.png", "cat"),
    "coffee": ("skimage", "scikit-image==0.26.0", "data/coffee.png", "coffee"),
    "astronaut": (
        "skimage",
        "scikit-image==0.26.0",
        "data/astronaut.png",
        "astronaut",
    ),
    "rocket": ("skimage", "scikit-image==0.26.0", "data/rocket.jpg", "rocket"),
    "grace_hopper": (
        "matplotlib",
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "Grace Hopper",
    ),
    "china": (
        "sklearn",
        "scikit-learn==1.9.1",
        "datasets/images/china.jpg",
        "temple",
    ),
    "flower": (
        "sklearn",
        "scikit-learn==1.9.1",
        "datasets/images/flower.jpg",
        "flower",
    ),
}


def photo_path(name):
    """The file of one shipped photo (see `PHOTOS`)."""
    if name not in PHOTOS:
        raise ValueError(
            f"`name` must be one of {', '.join(map(repr, PHOTOS))}. "
            f"Received: name={name!r}"
        )
    package, requirement, relative, _ = PHOTOS[name]
    return packaged_file(
        package,
        relative,
        requirement,
        FileNotFoundError,
        f"The {name!r} photo ships with {package}",
    )


def load_photo(name, size=None):
    """One shipped photo as uint8 `[H, W, 3]` (RGB).

    Args:
        name: a key of `PHOTOS`.
        size: optional `(height, width)`: centre-crop to that aspect ratio,
            then resize (bilinear, antialiased).
    """
    from PIL import Image

    with Image.open(photo_path(name)) as image:
        image = image.convert("RGB")
        if size is not None:
            image = _crop_resize(image, size)
        return np.asarray(image, dtype=np.uint8)


def load_photos(names=None, size=(224, 224)):
    """`(names, uint8 [N, H, W, 3])` for several shipped photos."""
    names = list(PHOTOS if names is None else names)
    return names, np.stack([load_photo(name, size) for name in names])


def _crop_resize(image, size):
    from PIL import Image

    height, width = int(size[0]), int(size[1])
    scale = min(image.width / width, image.height / height)
    crop_w, crop_h = width * scale, height * scale
    left = (image.width - crop_w) / 2
    top = (image.height - crop_h) / 2
    box = (left, top, left + crop_w, top + crop_h)
    return image.resize((width, height), Image.BILINEAR, box=box)
