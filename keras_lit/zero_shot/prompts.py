"""Prompt sets shipped as package data (`keras_lit/zero_shot/assets/`).

- `"clip_imagenet_80"`: CLIP's 80 ImageNet prompt templates, in CLIP's
  order (OpenAI's "Prompt Engineering for ImageNet" notebook, as copied by
  open_clip's `OPENAI_IMAGENET_TEMPLATES`).
- `"clip_best_7"`: the 7-template subset that CLIP's notebook found best
  (open_clip's `SIMPLE_IMAGENET_TEMPLATES`).
- `"identity"`: the bare class name, `["{}"]`.

`imagenet_class_names()` returns the 1000 cleaned-up ImageNet class names
published with CLIP (`imagenet_classes` in OpenAI's "Prompt Engineering for
ImageNet" notebook) in label order, byte for byte, so numbers compare with
published ones (a test checks the file's sha256). The list names two pairs
of classes identically: 657 and 744 are both "missile", 836 and 837 both
"sunglasses" (a `UserWarning` says so), which makes classes 744 and 837
unreachable for every model evaluated with it. (open_clip's later copy
renames 836/837 "sunglass" and "sunglasses / dark glasses / shades"; this
package keeps CLIP's.)
"""

import functools
import os

ASSETS_DIR = os.path.join(os.path.dirname(__file__), "assets")

_PROMPT_SET_FILES = {
    "clip_imagenet_80": "clip_imagenet_templates.txt",
    "clip_best_7": "clip_best_7_templates.txt",
}
PROMPT_SETS = tuple(_PROMPT_SET_FILES) + ("identity",)
DEFAULT_PROMPT_SET = "clip_best_7"


@functools.lru_cache(maxsize=None)
def _read_lines(filename):
    path = os.path.join(ASSETS_DIR, filename)
    with open(path, encoding="utf-8") as file:
        return tuple(line.rstrip("\n") for line in file if line.strip())


def prompt_templates(name=DEFAULT_PROMPT_SET):
    """A shipped prompt set as a list of templates containing `{}`.

    Args:
        name: one of `PROMPT_SETS`: `"clip_imagenet_80"`, `"clip_best_7"`
            or `"identity"`. Defaults to `"clip_best_7"`.

    Example:
    >>> len(prompt_templates("clip_imagenet_80"))
    80
    >>> prompt_templates("clip_best_7")[0]
    'itap of a {}.'
    """
    if name == "identity":
        return ["{}"]
    if name not in _PROMPT_SET_FILES:
        raise ValueError(
            f"`name` must be one of {', '.join(map(repr, PROMPT_SETS))}. "
            f"Received: name={name!r}"
        )
    return list(_read_lines(_PROMPT_SET_FILES[name]))


def imagenet_class_names():
    """CLIP's 1000 ImageNet class names, in label order (a new list)."""
    return list(_read_lines("imagenet_class_names.txt"))


def resolve_templates(templates):
    """`None` -> the default set; a set name -> its templates; else as is."""
    if templates is None:
        return prompt_templates(DEFAULT_PROMPT_SET)
    if isinstance(templates, str) and templates in PROMPT_SETS:
        return prompt_templates(templates)
    return templates
