"""Which Keras weight each LiT checkpoint key fills, and how.

`weight_map(model, architecture)` lists one `WeightEntry` per checkpoint
key: the key, the shape the checkpoint holds, the Keras variable, and
optionally the slice of the variable's last axis it fills (the project's
text transformer fuses query, key and value into one kernel). The array is
reshaped in C order to the target shape, which is exactly the layout change
each key needs:

- Flax and Keras both store dense kernels `[in, out]`, conv kernels HWIO and
  ViT attention kernels `[D, heads, head_dim]` / `[heads, head_dim, D]`.
- BERT (flaxformer) stores its q/k/v kernels flattened `[D, D]` with columns
  in (heads, head_dim) order, and the attention output kernel `[D, D]` with
  rows in that order: KerasHub's `[D, H, hd]` and `[H, hd, D]` in C order.
- Position embeddings drop their leading 1; `t` becomes a scalar.

`assign_weights` checks the checkpoint against the map (a missing, extra or
wrongly shaped key fails in one line naming it) and writes each variable
once.
"""

import collections

import numpy as np

from keras_lit.checkpoints.architecture import BERT
from keras_lit.checkpoints.architecture import BERT_LAYERS
from keras_lit.checkpoints.architecture import TEXT_TRANSFORMER

WeightEntry = collections.namedtuple(
    "WeightEntry", ["key", "shape", "variable", "part"]
)


def weight_map(model, architecture):
    """`[WeightEntry]` for a model built by `build_lit_model`."""
    entries = []
    entries += _image_entries(model.image_encoder, architecture["image"])
    text = architecture["text"]
    backbone = model.text_encoder.backbone
    if text["kind"] == "bert":
        entries += _bert_entries(backbone, text)
    else:
        entries += _transformer_entries(backbone, text)
    projection = model.text_encoder.projection
    embedding_dim = architecture["embedding_dim"]
    width = text["hidden_dim"]
    entries += [
        WeightEntry(
            "txt/head/kernel", (width, embedding_dim), projection.kernel, None
        ),
        WeightEntry("txt/head/bias", (embedding_dim,), projection.bias, None),
        WeightEntry("t", (1,), model.head.log_temperature, None),
    ]
    return entries


def expected_shapes(entries):
    """`{key: shape}` the checkpoint must hold."""
    return {entry.key: entry.shape for entry in entries}


def check_keys(shapes, entries, source="LiT checkpoint"):
    """Raises a one-line `ValueError` for a missing, extra or misshapen key."""
    expected = expected_shapes(entries)
    for key, shape in expected.items():
        if key not in shapes:
            raise ValueError(
                f"{source} is missing key {key!r} (expected shape "
                f"{list(shape)})"
            )
    for key in sorted(shapes):
        if key not in expected:
            raise ValueError(
                f"{source} has unexpected key {key!r} (shape "
                f"{list(shapes[key])}); it is not part of this LiT "
                "architecture"
            )
    for key, shape in expected.items():
        if tuple(shapes[key]) != tuple(shape):
            raise ValueError(
                f"{source} key {key!r} has shape {list(shapes[key])}; "
                f"expected {list(shape)}"
            )


def assign_weights(params, entries, source="LiT checkpoint"):
    """Writes the checkpoint arrays into the variables of `entries`."""
    check_keys({k: np.shape(v) for k, v in params.items()}, entries, source)
    values = {}
    for entry in entries:
        variable = entry.variable
        target = tuple(variable.shape)
        array = np.asarray(params[entry.key], dtype="float32")
        if entry.part is None:
            values[id(variable)] = (variable, array.reshape(target))
            continue
        start, stop = entry.part
        if id(variable) not in values:
            values[id(variable)] = (variable, np.zeros(target, "float32"))
        full = values[id(variable)][1]
        full[..., start:stop] = array.reshape(target[:-1] + (stop - start,))
    for variable, value in values.values():
        variable.assign(value.astype(variable.dtype))


def _image_entries(image_encoder, image):
    weights = _by_path(image_encoder.backbone)
    dim, heads = image["hidden_dim"], image["num_heads"]
    head_dim, mlp = dim // heads, image["mlp_dim"]
    patch = image["patch_size"]
    positions = (image["image_size"] // patch) ** 2 + 1
    embedding = "vit_patching_and_embedding/"
    entries = [
        ("img/embedding/kernel", (patch, patch, 3, dim),
         embedding + "patch_embedding/kernel"),
        ("img/embedding/bias", (dim,), embedding + "patch_embedding/bias"),
        ("img/cls", (1, 1, dim), embedding + "class_token"),
        ("img/Transformer/posembed_input/pos_embedding", (1, positions, dim),
         embedding + "position_embedding/embeddings"),
        ("img/Transformer/encoder_norm/scale", (dim,), "vit_encoder/ln/gamma"),
        ("img/Transformer/encoder_norm/bias", (dim,), "vit_encoder/ln/beta"),
    ]  # fmt: skip
    for i in range(image["num_layers"]):
        key = f"img/Transformer/encoderblock_{i}/"
        block = f"vit_encoder/transformer_block_{i + 1}/"
        attention = key + "MultiHeadDotProductAttention_0/"
        entries += _norm(key + "LayerNorm_0", block + "ln_1", dim)
        entries += _norm(key + "LayerNorm_1", block + "ln_2", dim)
        for name in ("query", "key", "value"):
            entries += [
                (attention + name + "/kernel", (dim, heads, head_dim),
                 block + f"mha/{name}/kernel"),
                (attention + name + "/bias", (heads, head_dim),
                 block + f"mha/{name}/bias"),
            ]  # fmt: skip
        entries += [
            (attention + "out/kernel", (heads, head_dim, dim),
             block + "mha/attention_output/kernel"),
            (attention + "out/bias", (dim,),
             block + "mha/attention_output/bias"),
        ]  # fmt: skip
        entries += _dense(
            key + "MlpBlock_0/Dense_0", block + "mlp/dense_1", dim, mlp
        )
        entries += _dense(
            key + "MlpBlock_0/Dense_1", block + "mlp/dense_2", mlp, dim
        )
    result = _resolve(entries, weights)
    head = image_encoder.head
    if head is not None:
        result += [
            WeightEntry(
                "img/head/kernel", (dim, head.units), head.kernel, None
            ),
            WeightEntry("img/head/bias", (head.units,), head.bias, None),
        ]
    return result


def _bert_entries(backbone, text):
    weights = _by_path(backbone)
    dim, inner = text["hidden_dim"], text["intermediate_dim"]
    embedder = BERT + "embedder/"
    entries = [
        (embedder + "embedders_token_ids/embedding",
         (text["vocabulary_size"], dim), "token_embedding/embeddings"),
        (embedder + "embedders_position_ids/embedding",
         (text["max_sequence_length"], dim), "position_embedding/embeddings"),
        (embedder + "embedders_segment_ids/embedding",
         (text["num_segments"], dim), "segment_embedding/embeddings"),
    ]  # fmt: skip
    entries += _norm(BERT + "layer_norm", "embeddings_layer_norm", dim)
    for i in range(text["num_layers"]):
        key = f"{BERT_LAYERS}{i}/"
        layer = f"transformer_layer_{i}/"
        attention = key + "attention_block/attention_layer/"
        for name in ("query", "key", "value"):
            entries += _dense(
                attention + name,
                layer + f"self_attention_layer/{name}",
                dim,
                dim,
            )
        entries += _dense(
            key + "attention_block/dense_layer",
            layer + "self_attention_layer/attention_output",
            dim,
            dim,
        )
        entries += _norm(
            key + "attention_block/layer_norm",
            layer + "self_attention_layer_norm",
            dim,
        )
        entries += _dense(
            key + "mlp_block/mlp/dense_layer",
            layer + "feedforward_intermediate_dense",
            dim,
            inner,
        )
        entries += _dense(
            key + "mlp_block/dense_layer",
            layer + "feedforward_output_dense",
            inner,
            dim,
        )
        entries += _norm(
            key + "mlp_block/layer_norm", layer + "feedforward_layer_norm", dim
        )
    return _resolve(entries, weights)


def _transformer_entries(backbone, text):
    weights = _by_path(backbone)
    dim, heads = text["hidden_dim"], text["num_heads"]
    head_dim, inner = dim // heads, text["intermediate_dim"]
    embedding = "token_and_position_embedding/"
    entries = [
        ("txt/Embed_0/embedding", (text["vocabulary_size"], dim),
         embedding + "token_embedding/embeddings"),
        ("txt/pos_embedding", (1, text["max_sequence_length"], dim),
         embedding + "position_embedding/embeddings"),
    ]  # fmt: skip
    entries += _norm(TEXT_TRANSFORMER + "encoder_norm", "final_layer_norm", dim)
    parts = []
    for i in range(text["num_layers"]):
        key = f"{TEXT_TRANSFORMER}encoderblock_{i}/"
        layer = f"transformer_layer_{i}/"
        attention = key + "MultiHeadDotProductAttention_0/"
        entries += _norm(
            key + "LayerNorm_0", layer + "self_attention_layer_norm", dim
        )
        entries += _norm(
            key + "LayerNorm_1", layer + "feedforward_layer_norm", dim
        )
        # Query, key and value fill thirds of the fused `qkv` weights.
        for index, name in enumerate(("query", "key", "value")):
            part = (index * dim, (index + 1) * dim)
            parts += [
                (attention + name + "/kernel", (dim, heads, head_dim),
                 layer + "qkv/kernel", part),
                (attention + name + "/bias", (heads, head_dim),
                 layer + "qkv/bias", part),
            ]  # fmt: skip
        entries += [
            (attention + "out/kernel", (heads, head_dim, dim),
             layer + "attention_output/kernel"),
            (attention + "out/bias", (dim,), layer + "attention_output/bias"),
        ]  # fmt: skip
        entries += _dense(
            key + "MlpBlock_0/Dense_0",
            layer + "feedforward_intermediate_dense",
            dim,
            inner,
        )
        entries += _dense(
            key + "MlpBlock_0/Dense_1",
            layer + "feedforward_output_dense",
            inner,
            dim,
        )
    return _resolve(entries, weights) + [
        WeightEntry(key, shape, _lookup(weights, path), part)
        for key, shape, path, part in parts
    ]


def _norm(key, path, dim):
    return [
        (key + "/scale", (dim,), path + "/gamma"),
        (key + "/bias", (dim,), path + "/beta"),
    ]


def _dense(key, path, inputs, outputs):
    return [
        (key + "/kernel", (inputs, outputs), path + "/kernel"),
        (key + "/bias", (outputs,), path + "/bias"),
    ]


def _by_path(layer):
    return {weight.path: weight for weight in layer.weights}


def _lookup(weights, path):
    if path not in weights:
        raise KeyError(
            f"The Keras tower has no weight {path!r}; the LiT weight map "
            "does not match this version of its layers."
        )
    return weights[path]


def _resolve(entries, weights):
    return [
        WeightEntry(key, tuple(shape), _lookup(weights, path), None)
        for key, shape, path in entries
    ]
