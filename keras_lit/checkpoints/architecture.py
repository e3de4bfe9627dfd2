"""The architecture of a LiT checkpoint, read from its parameter shapes.

An architecture is a plain dict:

```
{"image": {"hidden_dim", "num_layers", "num_heads", "mlp_dim",
           "patch_size", "image_size", "head_dim"},
 "text": {"kind": "bert" | "transformer", "vocabulary_size", "hidden_dim",
          "num_layers", "num_heads", "intermediate_dim",
          "max_sequence_length", "num_segments" (BERT)},
 "embedding_dim": int, "sequence_length": 16}
```

Every size follows from the shapes, except the number of heads of a BERT
text tower, whose query kernels are stored flattened (`[D, D]`): it defaults
to `hidden_dim // 64` (BERT-Base 12, BERT-Large 16) and can be given.
"""

import math
import re

IMAGE = "img/"
BERT = "txt/BertEncoder_0/"
BERT_LAYERS = BERT + "encoder_block/layer_sequence/layers_"
TEXT_TRANSFORMER = "txt/Encoder_0/"
SEQUENCE_LENGTH = 16
BERT_HEAD_DIM = 64


def infer_architecture(shapes, text_num_heads=None):
    """`{key: shape}` of a LiT checkpoint -> its architecture dict.

    Args:
        shapes: dict of checkpoint key -> shape (tuple of ints).
        text_num_heads: optional int, heads of a BERT text tower. Defaults
            to `hidden_dim // 64`.

    Raises a one-line `ValueError` naming the key when a key needed to tell
    a size is missing or has the wrong rank.
    """
    shapes = {
        key: tuple(int(d) for d in shape) for key, shape in shapes.items()
    }
    image = _image_architecture(shapes)
    if any(key.startswith(BERT) for key in shapes):
        text = _bert_architecture(shapes, text_num_heads)
    elif any(key.startswith("txt/Embed_0/") for key in shapes):
        text = _transformer_architecture(shapes)
    else:
        raise ValueError(
            "LiT checkpoint has no text tower: expected keys under "
            f"'{BERT}' (BERT) or 'txt/Embed_0/' (text transformer)."
        )
    head = _shape(shapes, "txt/head/kernel", rank=2)
    if head[0] != text["hidden_dim"]:
        raise ValueError(
            f"LiT checkpoint key 'txt/head/kernel' has shape {list(head)}; "
            f"expected [{text['hidden_dim']}, embedding_dim]"
        )
    image_dim = image["head_dim"] or image["hidden_dim"]
    if head[1] != image_dim:
        raise ValueError(
            f"LiT checkpoint key 'txt/head/kernel' has shape {list(head)}; "
            f"expected [{head[0]}, {image_dim}] (the image embedding width)"
        )
    return {
        "image": image,
        "text": text,
        "embedding_dim": head[1],
        "sequence_length": SEQUENCE_LENGTH,
    }


def _image_architecture(shapes):
    kernel = _shape(shapes, "img/embedding/kernel", rank=4)
    block = "img/Transformer/encoderblock_0/"
    query = _shape(
        shapes, block + "MultiHeadDotProductAttention_0/query/kernel", rank=3
    )
    mlp = _shape(shapes, block + "MlpBlock_0/Dense_0/kernel", rank=2)
    positions = _shape(
        shapes, "img/Transformer/posembed_input/pos_embedding", rank=3
    )
    grid = math.isqrt(positions[1] - 1)
    if grid * grid != positions[1] - 1 or kernel[0] != kernel[1]:
        raise ValueError(
            "LiT checkpoint key 'img/Transformer/posembed_input/pos_embedding'"
            f" has shape {list(positions)}: expected 1 + a square number of "
            "square patches"
        )
    head = shapes.get("img/head/kernel")
    return {
        "hidden_dim": kernel[3],
        "num_layers": _count(shapes, r"img/Transformer/encoderblock_(\d+)/"),
        "num_heads": query[1],
        "mlp_dim": mlp[1],
        "patch_size": kernel[0],
        "image_size": grid * kernel[0],
        "head_dim": None if head is None else head[-1],
    }


def _bert_architecture(shapes, num_heads):
    embedder = BERT + "embedder/"
    tokens = _shape(shapes, embedder + "embedders_token_ids/embedding", rank=2)
    positions = _shape(
        shapes, embedder + "embedders_position_ids/embedding", rank=2
    )
    segments = _shape(
        shapes, embedder + "embedders_segment_ids/embedding", rank=2
    )
    intermediate = _shape(
        shapes, BERT_LAYERS + "0/mlp_block/mlp/dense_layer/kernel", rank=2
    )
    hidden = tokens[1]
    if num_heads is None:
        if hidden % BERT_HEAD_DIM:
            raise ValueError(
                f"Cannot tell the number of heads of this BERT text tower "
                f"(width {hidden} is not a multiple of {BERT_HEAD_DIM}); "
                "pass text_num_heads (keras-lit import: --text-num-heads)"
            )
        num_heads = hidden // BERT_HEAD_DIM
    if int(num_heads) < 1 or hidden % int(num_heads):
        raise ValueError(
            f"text_num_heads must divide the BERT width {hidden}. "
            f"Received: text_num_heads={num_heads}"
        )
    return {
        "kind": "bert",
        "vocabulary_size": tokens[0],
        "hidden_dim": hidden,
        "num_layers": _count(shapes, re.escape(BERT_LAYERS) + r"(\d+)/"),
        "num_heads": int(num_heads),
        "intermediate_dim": intermediate[1],
        "max_sequence_length": positions[0],
        "num_segments": segments[0],
    }


def _transformer_architecture(shapes):
    tokens = _shape(shapes, "txt/Embed_0/embedding", rank=2)
    positions = _shape(shapes, "txt/pos_embedding", rank=3)
    block = TEXT_TRANSFORMER + "encoderblock_0/"
    query = _shape(
        shapes, block + "MultiHeadDotProductAttention_0/query/kernel", rank=3
    )
    mlp = _shape(shapes, block + "MlpBlock_0/Dense_0/kernel", rank=2)
    return {
        "kind": "transformer",
        "vocabulary_size": tokens[0],
        "hidden_dim": tokens[1],
        "num_layers": _count(shapes, re.escape(block[:-2]) + r"(\d+)/"),
        "num_heads": query[1],
        "intermediate_dim": mlp[1],
        "max_sequence_length": positions[1],
    }


def _shape(shapes, key, rank):
    if key not in shapes:
        raise ValueError(f"LiT checkpoint is missing key {key!r}")
    shape = shapes[key]
    if len(shape) != rank:
        raise ValueError(
            f"LiT checkpoint key {key!r} has shape {list(shape)}; expected "
            f"{rank} dimensions"
        )
    return shape


def _count(shapes, pattern):
    pattern = re.compile(pattern)
    indices = {
        int(match.group(1))
        for match in (pattern.match(key) for key in shapes)
        if match
    }
    return max(indices) + 1 if indices else 0
