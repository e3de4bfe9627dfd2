"""Reading Google's LiT `.npz` checkpoints into `{"a/b/c": array}`.

The released files hold one array per parameter, keyed by its `/`-joined
Flax path (`img/Transformer/encoderblock_0/LayerNorm_0/scale`). The original
loader (`vit_jax.checkpoint.load`) passes them through Flax's
`convert_pre_linen`, which renumbers every `<prefix>_<n>` child so that, at
each level, each prefix counts 0, 1, 2, ... in natural order. That maps the
older (pre-Linen) spelling, e.g. `LayerNorm_0, MultiHeadDotProductAttention_1,
LayerNorm_2, MlpBlock_3` inside each `encoderblock_i`, to the current one
(`LayerNorm_0, MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0`);
on current files it changes nothing. `read_checkpoint` does the same.
"""

import os
import re
import zipfile

import numpy as np

_NUMBERED = re.compile(r"^(.*)_(\d+)$")


def read_checkpoint(path):
    """Loads a LiT `.npz` as `{key: float32 array}` in the current spelling.

    Args:
        path: path of a `.npz` file written with `np.savez` (one array per
            `/`-joined parameter path), as Google's released LiT files.

    Raises a `ValueError` (one line) for a file that is not such an archive.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LiT checkpoint not found: {path!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            params = {key: np.asarray(archive[key]) for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else "unreadable"
        raise ValueError(
            f"{path!r} is not a LiT .npz checkpoint (np.savez archive of "
            f"arrays): {reason}"
        ) from None
    if not params:
        raise ValueError(f"LiT checkpoint {path!r} holds no arrays.")
    return convert_pre_linen(params)


def convert_pre_linen(params):
    """Flax's `convert_pre_linen` renumbering on `/`-joined keys.

    At every level of the key tree, the children named `<prefix>_<n>` are
    renumbered 0, 1, 2, ... per prefix, visiting the names in natural sort
    order (`block_2` before `block_10`).
    """
    tree = {}
    for key, value in params.items():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(
                    f"LiT checkpoint key {key!r} nests under an array."
                )
        node[leaf] = value
    flat = {}
    _flatten(_renumber(tree), "", flat)
    return flat


def _renumber(node):
    if not isinstance(node, dict):
        return node
    renamed = {}
    counts = {}
    for name in sorted(node, key=_natural_key):
        match = _NUMBERED.match(name)
        new_name = name
        if match:
            prefix = match.group(1)
            new_name = f"{prefix}_{counts.get(prefix, 0)}"
            counts[prefix] = counts.get(prefix, 0) + 1
        renamed[new_name] = _renumber(node[name])
    return renamed


def _flatten(node, prefix, out):
    for name, value in node.items():
        key = f"{prefix}/{name}" if prefix else name
        if isinstance(value, dict):
            _flatten(value, key, out)
        else:
            out[key] = value


def _natural_key(name):
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", name)
        if part
    ]
