"""SignatureDefs of a SavedModel on disk, as TF Serving reports them.

Used by the exporter (to check its SavedModel against
`keras_lit.serving.protocol.SIGNATURES`), by the clients (`GetModelMetadata`
answers), by the app (its `/metadata` route and its in-process predict) and
by the test stand-in. TensorFlow and the serving protos load on first use.
"""

import os


def read_signature_defs(version_dir):
    """The `SignatureDef`s of `<version_dir>/saved_model.pb`, by key.

    Keys starting with `__` (TF's own, such as `__saved_model_init_op`) are
    left out, as TF Serving leaves them out of its metadata.
    """
    return {
        key: value
        for key, value in _meta_graph(version_dir).signature_def.items()
        if not key.startswith("__")
    }


def read_custom_ops(version_dir):
    """Op types of a SavedModel that TensorFlow itself does not register.

    These (TF Text's tokenizer ops here) must be linked into the server.
    """
    import tensorflow as tf

    graph_def = _meta_graph(version_dir).graph_def
    op_types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        op_types |= {node.op for node in function.node_def}
    # `tf.raw_ops` lists TensorFlow's own ops, even when TF Text's are
    # registered in this process too.
    return sorted(op for op in op_types if not hasattr(tf.raw_ops, op))


def _meta_graph(version_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    (meta_graph,) = saved_model.meta_graphs
    return meta_graph


def signature_table(signature_defs, method=False):
    """`SignatureDef`s -> `{key: {"inputs"/"outputs": {name: spec}}}`.

    A spec is `{"dtype": "float32", "shape": [None, 64]}` (`None` for any
    size). With `method=True` each entry also has its `"method"` name.
    """
    import tensorflow as tf

    def specs(tensor_infos):
        return {
            name: {
                "dtype": tf.dtypes.as_dtype(info.dtype).name,
                "shape": [
                    None if dim.size < 0 else int(dim.size)
                    for dim in info.tensor_shape.dim
                ],
            }
            for name, info in sorted(tensor_infos.items())
        }

    table = {}
    for key, value in sorted(signature_defs.items()):
        if key.startswith("__"):
            continue
        entry = {"method": value.method_name} if method else {}
        entry["inputs"] = specs(value.inputs)
        entry["outputs"] = specs(value.outputs)
        table[key] = entry
    return table


def signature_def_map(signature_defs):
    """A `SignatureDefMap` proto, as `GetModelMetadata` packs it."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, value in signature_defs.items():
        signature_map.signature_def[key].CopyFrom(value)
    return signature_map


def metadata_body(model_name, version, signature_defs):
    """The JSON of `GET /v1/models/<name>[/versions/<v>]/metadata`."""
    from google.protobuf import json_format

    return {
        "model_spec": {
            "name": model_name,
            "signature_name": "",
            "version": str(version),
        },
        "metadata": {
            "signature_def": json_format.MessageToDict(
                signature_def_map(signature_defs),
                preserving_proto_field_name=True,
            )
        },
    }


def input_tensors(function, inputs, error):
    """Checks `{name: values}` against a concrete function's inputs.

    Returns `{name: tf.Tensor}`; raises `error(message)` when a name is
    missing or unexpected, or a value has the wrong dtype or rank.
    """
    import tensorflow as tf

    specs = function.structured_input_signature[1]
    missing = sorted(set(specs) - set(inputs))
    extra = sorted(set(inputs) - set(specs))
    if missing or extra:
        raise error(
            f"Request inputs do not match the signature, which takes "
            f"{sorted(specs)}: missing {missing}, unexpected {extra}"
        )
    tensors = {}
    for name, value in inputs.items():
        spec = specs[name]
        try:
            tensors[name] = tf.constant(value, dtype=spec.dtype)
        except (TypeError, ValueError) as failure:
            raise error(
                f"Expects arg[{name}] to be {spec.dtype.name}: {failure}"
            ) from None
        if not spec.shape.is_compatible_with(tensors[name].shape):
            raise error(
                f"input {name} has shape {tensors[name].shape.as_list()}, "
                f"expected {spec.shape.as_list()}"
            )
    return tensors
