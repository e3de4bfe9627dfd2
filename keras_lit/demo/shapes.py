"""Procedural images for the demo: one coloured shape on a textured ground.

Every image is a pure function of `(seed, split, index)`: the same arguments
give the same bytes on any machine, and images can be drawn in any order or
in parallel. Pure numpy, about half a millisecond per 64x64 image.

Each image has four attributes, drawn independently and uniformly:

| attribute    | values                                                  |
|--------------|---------------------------------------------------------|
| `shape`      | circle, square, triangle, star, cross, ring             |
| `colour`     | red, orange, yellow, green, blue, purple, white, black  |
| `size`       | small, large                                            |
| `background` | plain, noisy, striped, checkered, gradient              |

plus a random position, rotation, colour jitter, background tone and sensor
noise, so that no two images are alike.

Example:
>>> images, labels = generate_images(seed=0, split="eval", count=4)
>>> images.shape, images.dtype
((4, 64, 64, 3), dtype('uint8'))
>>> sorted(labels)
['background', 'colour', 'shape', 'size']
"""

import math

import numpy as np

IMAGE_SIZE = 64
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
COLOURS = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "white",
    "black",
)
SIZES = ("small", "large")
BACKGROUNDS = ("plain", "noisy", "striped", "checkered", "gradient")
ATTRIBUTES = {
    "shape": SHAPES,
    "colour": COLOURS,
    "size": SIZES,
    "background": BACKGROUNDS,
}
# Each split draws from its own random stream, so splits never share images.
SPLITS = {"pretrain": 1, "lit": 2, "eval": 3, "retrieval": 4}

RGB = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (235, 215, 35),
    "green": (40, 165, 55),
    "blue": (35, 75, 215),
    "purple": (135, 45, 180),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
# Outer radius in pixels (before the per-shape scale) for each size.
RADIUS = {"small": (8.0, 11.0), "large": (17.0, 23.0)}


def generate_images(seed, split, count, start=0, image_size=IMAGE_SIZE):
    """Draws `count` images of `split`, indices `start .. start + count - 1`.

    Args:
        seed: int. The dataset seed.
        split: one of `"pretrain"`, `"lit"`, `"eval"`, `"retrieval"`.
        count: int. Number of images.
        start: int. Index of the first image. Defaults to `0`.
        image_size: int. Side in pixels. Defaults to `64`.

    Returns:
        `(images, labels)`: uint8 `[count, size, size, 3]` and a dict of int
        arrays `[count]` keyed by attribute name (`"shape"`, `"colour"`,
        `"size"`, `"background"`), indexing `ATTRIBUTES[name]`.
    """
    if split not in SPLITS:
        raise ValueError(
            f"`split` must be one of {', '.join(map(repr, SPLITS))}. "
            f"Received: split={split!r}"
        )
    count = int(count)
    images = np.empty((count, image_size, image_size, 3), np.uint8)
    labels = {name: np.empty(count, np.int32) for name in ATTRIBUTES}
    for row in range(count):
        image, attributes = render_image(
            seed, split, start + row, image_size=image_size
        )
        images[row] = image
        for name, value in attributes.items():
            labels[name][row] = value
    return images, labels


def render_image(seed, split, index, image_size=IMAGE_SIZE):
    """One image and its attribute indices, a pure function of the args."""
    rng = np.random.default_rng([int(seed), SPLITS[split], int(index)])
    attributes = {
        name: int(rng.integers(len(values)))
        for name, values in ATTRIBUTES.items()
    }
    shape = SHAPES[attributes["shape"]]
    colour = COLOURS[attributes["colour"]]
    size = SIZES[attributes["size"]]
    background = BACKGROUNDS[attributes["background"]]

    scale = image_size / IMAGE_SIZE
    radius = rng.uniform(*RADIUS[size]) * scale
    margin = radius + 2.0 * scale
    centre_x, centre_y = rng.uniform(margin, image_size - margin, size=2)
    angle = rng.uniform(0.0, 2.0 * math.pi)

    canvas = _background(rng, background, image_size)
    mask = _shape_mask(shape, image_size, centre_x, centre_y, radius, angle)
    fill = np.asarray(RGB[colour], np.float32)
    fill = np.clip(fill + rng.normal(0.0, 10.0, size=3), 0.0, 255.0)
    canvas = canvas * (1.0 - mask[..., None]) + fill * mask[..., None]
    canvas = canvas + rng.normal(0.0, 6.0, size=canvas.shape)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return image, attributes


def _grid(image_size):
    axis = np.arange(image_size, dtype=np.float32) + 0.5
    return np.meshgrid(axis, axis)  # x, y: [size, size]


def _background(rng, kind, image_size):
    """A grey-toned `[size, size, 3]` float canvas of the given texture."""
    x, y = _grid(image_size)
    tone = rng.uniform(95.0, 165.0)
    tint = rng.normal(0.0, 6.0, size=3)
    if kind == "plain":
        canvas = np.full((image_size, image_size), tone, np.float32)
    elif kind == "noisy":
        canvas = tone + rng.normal(0.0, 28.0, size=(image_size, image_size))
    elif kind == "striped":
        period = rng.uniform(5.0, 9.0) * image_size / IMAGE_SIZE
        theta = rng.uniform(0.0, math.pi)
        phase = x * math.cos(theta) + y * math.sin(theta)
        stripes = np.floor(phase / period) % 2
        canvas = tone + (stripes - 0.5) * 60.0
    elif kind == "checkered":
        cell = rng.uniform(5.0, 9.0) * image_size / IMAGE_SIZE
        checks = (np.floor(x / cell) + np.floor(y / cell)) % 2
        canvas = tone + (checks - 0.5) * 60.0
    elif kind == "gradient":
        theta = rng.uniform(0.0, 2.0 * math.pi)
        ramp = (x * math.cos(theta) + y * math.sin(theta)) / image_size
        ramp = ramp - ramp.mean()
        canvas = tone + ramp * 110.0
    else:
        raise ValueError(f"Unknown background: {kind!r}")
    canvas = canvas.astype(np.float32)[..., None] + tint.astype(np.float32)
    return canvas


def _shape_mask(shape, image_size, centre_x, centre_y, radius, angle):
    """Soft (anti-aliased) `[size, size]` mask in [0, 1] of one shape."""
    x, y = _grid(image_size)
    dx, dy = x - centre_x, y - centre_y
    distance = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx) - angle
    if shape == "circle":
        inside = 0.85 * radius - distance
    elif shape == "ring":
        outer, inner = radius, 0.55 * radius
        inside = np.minimum(outer - distance, distance - inner)
    elif shape in ("square", "triangle"):
        sides = 4 if shape == "square" else 3
        inside = _polygon_boundary(theta, sides, radius) - distance
    elif shape == "star":
        inside = _star_boundary(theta, radius) - distance
    elif shape == "cross":
        cos, sin = math.cos(angle), math.sin(angle)
        u = np.abs(dx * cos + dy * sin)
        v = np.abs(-dx * sin + dy * cos)
        arm, half_width = 0.95 * radius, 0.32 * radius
        horizontal = np.minimum(arm - u, half_width - v)
        vertical = np.minimum(arm - v, half_width - u)
        inside = np.maximum(horizontal, vertical)
    else:
        raise ValueError(f"Unknown shape: {shape!r}")
    return np.clip(inside + 0.5, 0.0, 1.0).astype(np.float32)


def _polygon_boundary(theta, sides, radius):
    """Distance from the centre to a regular polygon's edge at `theta`."""
    sector = 2.0 * math.pi / sides
    local = np.mod(theta, sector) - sector / 2.0
    return radius * math.cos(sector / 2.0) / np.cos(local)


def _star_boundary(theta, radius, points=5, inner_ratio=0.45):
    """Distance from the centre to a five-pointed star's edge at `theta`.

    Each edge joins an outer tip to an inner notch with a straight segment,
    so the boundary radius along a ray comes from a line intersection.
    """
    sector = 2.0 * math.pi / points
    local = np.abs(np.mod(theta, sector) - sector / 2.0)
    # Tip at local = sector / 2, notch at local = 0 (in polar coordinates).
    tip_x, tip_y = (
        radius * math.cos(sector / 2.0),
        radius * math.sin(sector / 2.0),
    )
    notch_x, notch_y = inner_ratio * radius, 0.0
    # Ray (cos, sin) * r meets the segment notch -> tip.
    edge_x, edge_y = tip_x - notch_x, tip_y - notch_y
    cos, sin = np.cos(local), np.sin(local)
    denominator = cos * edge_y - sin * edge_x
    return (notch_x * edge_y - notch_y * edge_x) / denominator
