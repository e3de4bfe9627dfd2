"""Free-form captions for the demo images, and the zero-shot prompts.

Training captions come from several templates with varied attribute order and
synonyms ("disc", "hoop", "plus sign", "stripy", ...); some leave out the size
or the background, as real alt-texts leave things out. Every caption names the
shape and the colour.

Zero-shot evaluation asks questions the text tower was never trained on as
such: a label set ("which shape?") becomes one prompt per class from
`PROMPT_TEMPLATES`, templates that no training caption uses, filled with the
plain class names ("circle", "red", ...).

Example:
>>> caption(seed=0, split="lit", index=3,
...         attributes={"shape": 0, "colour": 0, "size": 1, "background": 2})
'red disc sitting on a lined pattern'
"""

import re

import numpy as np

from keras_lit.demo.shapes import ATTRIBUTES
from keras_lit.demo.shapes import SPLITS

# Words a caption may use for each attribute value.
SYNONYMS = {
    "shape": {
        "circle": ["circle", "disc", "round dot", "disk"],
        "square": ["square", "box", "diamond", "four sided shape"],
        "triangle": ["triangle", "three sided shape", "wedge"],
        "star": ["star", "five pointed star", "starfish shape"],
        "cross": ["cross", "plus sign", "plus"],
        "ring": ["ring", "hoop", "donut", "loop"],
    },
    "colour": {
        "red": ["red", "scarlet", "crimson"],
        "orange": ["orange", "tangerine"],
        "yellow": ["yellow", "lemon", "golden"],
        "green": ["green", "emerald", "leafy green"],
        "blue": ["blue", "royal blue", "cobalt"],
        "purple": ["purple", "violet", "plum"],
        "white": ["white", "snowy", "ivory"],
        "black": ["black", "jet black", "inky"],
    },
    "size": {
        "small": ["small", "tiny", "little"],
        "large": ["large", "big", "huge"],
    },
    "background": {
        "plain": ["plain", "solid", "blank", "uniform"],
        "noisy": ["noisy", "grainy", "speckled"],
        "striped": ["striped", "stripy", "lined"],
        "checkered": ["checkered", "checkerboard", "chequered"],
        "gradient": ["gradient", "shaded", "fading"],
    },
}

# `{s}` shape, `{c}` colour, `{z}` size, `{b}` background adjective,
# `{g}` a word for "background".
CAPTION_TEMPLATES = (
    "a {z} {c} {s} on a {b} {g}",
    "{b} {g} with a {z} {c} {s}",
    "{c} {s}, {z}, {b} {g}",
    "the {s} is {c} and {z}",
    "picture of a {c} {s} against a {b} {g}",
    "{z} {c} {s}",
    "there is a {c} {s} here",
    "a {s} in {c} over a {b} {g}",
    "{c} {s} sitting on a {b} {g}",
    "photo of a {z} {c} {s}",
    "an image showing a {c} {s} on a {b} {g}",
)
BACKGROUND_NOUNS = ("background", "backdrop", "pattern")

# Zero-shot prompts: none is a training template, and each asks about one
# attribute alone, which no training caption does. They use words the text
# tower has read in captions ("photo", "image", "shape", ...), as a real
# text tower knows "photo" from its pretraining corpus; an unknown word
# splits into characters that are never trained and crowd the 16 tokens.
PROMPT_TEMPLATES = {
    "shape": ("a photo of a {}", "an image showing a {}", "a picture of a {}"),
    "colour": (
        "a photo of a {} shape",
        "an image showing a {} shape",
        "a picture of a {} shape",
    ),
    "size": (
        "a photo of a {} shape",
        "an image showing a {} shape",
        "a picture of a {} shape",
    ),
    "background": (
        "a photo with a {} background",
        "an image on a {} backdrop",
        "a picture with a {} pattern",
    ),
}
# What the demo shows a person: the class names of each label set.
LABEL_SETS = {name: list(values) for name, values in ATTRIBUTES.items()}


def caption(seed, split, index, attributes, return_mentions=False):
    """A caption for one image, a pure function of `(seed, split, index)`.

    Args:
        seed: int. The dataset seed.
        split: the image's split (see `keras_lit.demo.shapes.SPLITS`).
        index: int. The image's index in its split.
        attributes: dict of attribute indices, as from `render_image`.
        return_mentions: bool. Also return the attribute names the caption
            mentions. Defaults to `False`.

    Returns:
        A caption string, or `(caption, mentioned_attribute_names)`.
    """
    # Offset 100: a stream distinct from the image's own.
    rng = np.random.default_rng([int(seed), 100 + SPLITS[split], int(index)])
    words = {}
    for key, name in (("s", "shape"), ("c", "colour"), ("z", "size")):
        value = ATTRIBUTES[name][int(attributes[name])]
        words[key] = _choice(rng, SYNONYMS[name][value])
    value = ATTRIBUTES["background"][int(attributes["background"])]
    words["b"] = _choice(rng, SYNONYMS["background"][value])
    words["g"] = _choice(rng, BACKGROUND_NOUNS)
    template = _choice(rng, CAPTION_TEMPLATES)
    text = _VOWEL.sub(r"\1an \2", template.format(**words))
    if return_mentions:
        return text, mentioned_attributes(template)
    return text


def captions_for(seed, split, labels, start=0):
    """Captions for a batch of images, given their label dict."""
    count = len(next(iter(labels.values())))
    return [
        caption(
            seed,
            split,
            start + row,
            {name: labels[name][row] for name in labels},
        )
        for row in range(count)
    ]


def mentioned_attributes(template):
    """The attribute names a caption template mentions."""
    keys = {"s": "shape", "c": "colour", "z": "size", "b": "background"}
    return [name for key, name in keys.items() if "{" + key + "}" in template]


# "an orange", "an inky", but "a uniform".
_VOWEL = re.compile(r"(^|\s)a ([aeio]|un(?!i))")


def _choice(rng, options):
    return options[int(rng.integers(len(options)))]
