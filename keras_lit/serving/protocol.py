"""The wire format of a keras_lit export: one home for every rule.

Everything that the exporter, the clients, the app and the test stand-in
must agree on lives here, so that no copy can drift:

- shared names: `DEFAULT_MODEL_NAME`, `METADATA_FILENAME`, ...;
- `SIGNATURES`, the signature table (inputs, outputs, dtypes, shapes) that
  `export_for_serving` builds and checks its SavedModel against;
- TF Serving's REST predict JSON
  (https://www.tensorflow.org/tfx/serving/api_rest): request bodies in the
  columnar (`"inputs"`) and row (`"instances"`) forms, binary values as
  `{"b64": ...}`, responses as `"outputs"` or `"predictions"`, errors as
  `{"error": message}` with an HTTP status;
- TF Serving's gRPC `PredictRequest`/`PredictResponse` conversion.

`keras_lit.serving.signature_defs` reads the same table back from a
SavedModel, as `GetModelMetadata` reports it.

Imports only NumPy at module level: TensorFlow and the serving protos load
when a function needs them, so the app's request parsing stays light.
"""

import base64
import binascii
import json
from collections import namedtuple

import numpy as np

DEFAULT_MODEL_NAME = "lit"
DEFAULT_SIGNATURE = "serving_default"
METHOD_NAME = "tensorflow/serving/predict"
# Files inside a version directory.
METADATA_FILENAME = "keras_lit_export.json"  # Under assets.extra/.
WARMUP_FILENAME = "tf_serving_warmup_requests"  # Under assets.extra/.
BATCHING_FILENAME = "batching_params.pbtxt"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WebP")
REST_FORMATS = ("columnar", "row")

TensorSpec = namedtuple("TensorSpec", ["dtype", "shape"])
Signature = namedtuple("Signature", ["inputs", "outputs"])

# Shape symbols: `N` images and `K` texts or class names per request (any
# size, `-1` in the SavedModel), `D` the embedding width, `C` the classes
# baked in at export and `k = min(top_k, C)`. Inputs are listed in the
# order the signature functions take them.
_IMAGES = TensorSpec("string", ("N",))
SIGNATURES = {
    "embed_image": Signature(
        {"image_bytes": _IMAGES},
        {"embeddings": TensorSpec("float32", ("N", "D"))},
    ),
    "embed_text": Signature(
        {"texts": TensorSpec("string", ("K",))},
        {"embeddings": TensorSpec("float32", ("K", "D"))},
    ),
    "zero_shot": Signature(
        {"image_bytes": _IMAGES, "class_names": TensorSpec("string", ("K",))},
        {
            "probabilities": TensorSpec("float32", ("N", "K")),
            "top_class": TensorSpec("string", ("N",)),
            "top_index": TensorSpec("int32", ("N",)),
        },
    ),
    "classify": Signature(
        {"image_bytes": _IMAGES},
        {
            "probabilities": TensorSpec("float32", ("N", "C")),
            "top_classes": TensorSpec("string", ("N", "k")),
            "top_scores": TensorSpec("float32", ("N", "k")),
            "top_indices": TensorSpec("int32", ("N", "k")),
        },
    ),
}
# `serving_default` is `classify` when class names were baked in at export,
# `embed_image` otherwise; both take `image_bytes` only.
DEFAULT_SIGNATURES = ("classify", "embed_image")
_ANY_SIZE = ("N", "K")


def signature(name):
    """The `Signature` of a key (`serving_default` reads as `classify`)."""
    return SIGNATURES.get(
        DEFAULT_SIGNATURES[0] if name == DEFAULT_SIGNATURE else name
    )


def expected_signature_table(keys, sizes):
    """`SIGNATURES` as `signature_defs.signature_table(..., method=True)`
    reports an export.

    Args:
        keys: the signature keys the export has (without the default).
        sizes: `{"D": width, "C": classes, "k": top_k}`.
    """
    table = {}
    for key in sorted(keys):
        entry = {"method": METHOD_NAME}
        for side, specs in zip(("inputs", "outputs"), SIGNATURES[key]):
            entry[side] = {
                name: {
                    "dtype": spec.dtype,
                    "shape": [
                        None if dim in _ANY_SIZE else int(sizes[dim])
                        for dim in spec.shape
                    ],
                }
                for name, spec in sorted(specs.items())
            }
        table[key] = entry
    default = DEFAULT_SIGNATURES[0 if "classify" in keys else 1]
    table[DEFAULT_SIGNATURE] = table[default]
    return dict(sorted(table.items()))


def is_binary(name):
    """TF Serving's rule: a tensor whose name ends in `_bytes` is binary."""
    return name.endswith("_bytes")


# --- Inputs -----------------------------------------------------------------


def check_inputs(signature_name, inputs):
    """Validates and normalises a request: `{name: list of bytes/str}`.

    Image inputs (names ending in `_bytes`) must be `bytes`; text inputs
    are `str` (or UTF-8 `bytes`). Raises `ValueError` naming the input.
    Returns `{name: list of bytes}`.
    """
    if not isinstance(inputs, dict):
        raise ValueError(
            "`inputs` must be a dict of input name -> list. "
            f"Received: {type(inputs).__name__}"
        )
    known = signature(signature_name)
    if known is not None and sorted(inputs) != sorted(known.inputs):
        raise ValueError(
            f"Signature {signature_name!r} takes inputs "
            f"{list(known.inputs)}. Received: {sorted(inputs)}"
        )
    return {
        name: _checked_values(name, values) for name, values in inputs.items()
    }


def _checked_values(name, values):
    if isinstance(values, (str, bytes)):
        raise ValueError(
            f"`{name}` must be a list (a batch), not a single value. "
            f"Received: {values[:40]!r}"
        )
    encoded = []
    for index, value in enumerate(values):
        if is_binary(name):
            if not isinstance(value, (bytes, bytearray)):
                raise ValueError(
                    f"`{name}[{index}]` must be bytes, the content of an "
                    "encoded image file (open(path, 'rb').read()). "
                    f"Received: {type(value).__name__}"
                )
            encoded.append(bytes(value))
        elif isinstance(value, str):
            encoded.append(value.encode("utf-8"))
        elif isinstance(value, bytes):
            encoded.append(value)
        else:
            raise ValueError(
                f"`{name}[{index}]` must be a string. "
                f"Received: {type(value).__name__} {value!r}"
            )
    return encoded


# --- gRPC -------------------------------------------------------------------


def make_predict_request(
    model_name, signature_name, inputs, version=None, output_filter=None
):
    """A `PredictRequest` proto for `{name: list}` inputs (checked first)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    inputs = check_inputs(signature_name, inputs)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(
            tf.make_tensor_proto(values, dtype=tf.string, shape=[len(values)])
        )
    request.output_filter.extend(output_filter or [])
    return request


def parse_predict_response(response):
    """`PredictResponse` -> `{output: np.ndarray}`.

    String outputs become `str`, except binary ones (`is_binary`), which
    stay `bytes`.
    """
    import tensorflow as tf

    outputs = {}
    for name, proto in response.outputs.items():
        value = tf.make_ndarray(proto)
        if value.dtype == object and value.size and not is_binary(name):
            value = np.vectorize(bytes.decode, otypes=[object])(value)
        outputs[name] = value
    return outputs


# --- REST JSON --------------------------------------------------------------


class ProtocolError(ValueError):
    """A request that TF Serving's REST API refuses: status and message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self):
        return {"error": self.message}


def predict_request_body(signature_name, inputs, format="columnar"):
    """The JSON body of a REST predict request, as TF Serving documents it.

    Binary inputs are `{"b64": ...}`; strings are plain JSON strings.
    `"row"` puts each example in `"instances"` (all inputs need the same
    number of rows); `"columnar"` puts each input's list in `"inputs"`.
    """
    check_format(format)
    inputs = check_inputs(signature_name, inputs)
    columns = {
        name: [
            _b64(value) if is_binary(name) else value.decode("utf-8")
            for value in values
        ]
        for name, values in inputs.items()
    }
    body = {"signature_name": signature_name}
    if format == "columnar":
        body["inputs"] = columns
        return body
    sizes = {name: len(values) for name, values in columns.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            "The row format needs the same number of rows in every input; "
            f"use format='columnar'. Received: {sizes}"
        )
    names = list(columns)
    rows = zip(*(columns[name] for name in names))
    body["instances"] = [dict(zip(names, row)) for row in rows]
    return body


def check_format(format):
    if format not in REST_FORMATS:
        raise ValueError(
            f"`format` must be one of {', '.join(map(repr, REST_FORMATS))}. "
            f"Received: format={format!r}"
        )


def parse_predict_request(payload, input_names=None):
    """Parses a REST predict body.

    Args:
        payload: the raw request body (`bytes`) or an already parsed dict.
        input_names: optional callable `signature_name -> list of input
            names`, used to name a bare (unnamed) input; it may raise
            `ProtocolError(404)` for a signature it does not know.

    Returns:
        `(signature_name, inputs, format)`: the signature key
        (`"serving_default"` when absent), `{name: nested list}` with
        `{"b64": ...}` objects turned into `bytes` and strings encoded as
        UTF-8 `bytes`, and `"columnar"` or `"row"`.
    """
    body = _json_object(payload)
    signature_name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str) or not signature_name:
        raise ProtocolError(
            400,
            f"'signature_name' must be a string. Received: {signature_name!r}",
        )
    if ("inputs" in body) == ("instances" in body):
        raise ProtocolError(
            400,
            "Missing 'inputs' or 'instances' key"
            if "inputs" not in body
            else "Both 'inputs' and 'instances' are set; send only one",
        )

    def single_name():
        names = list(input_names(signature_name)) if input_names else []
        if len(names) != 1:
            raise ProtocolError(
                400,
                f"Signature {signature_name!r} takes {len(names)} inputs "
                f"{names}; name each input in an object",
            )
        return names[0]

    if "inputs" in body:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            columns = {single_name(): columns}
        inputs = {name: _decode(value) for name, value in columns.items()}
        return signature_name, inputs, "columnar"
    return signature_name, _rows(body["instances"], single_name), "row"


def _json_object(payload):
    if isinstance(payload, (bytes, bytearray, str)):
        try:
            payload = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as error:
            raise ProtocolError(400, f"JSON Parse error: {error}") from None
    if not isinstance(payload, dict):
        raise ProtocolError(
            400,
            "JSON Value: the request body must be an object with "
            "'signature_name' and 'inputs' (or 'instances'). Received: "
            f"{type(payload).__name__}",
        )
    return payload


def _rows(instances, single_name):
    if not isinstance(instances, list):
        raise ProtocolError(400, "'instances' must be a list")
    named = [
        isinstance(item, dict) and set(item) != {"b64"} for item in instances
    ]
    if instances and all(named):
        names = list(instances[0])
        if any(sorted(item) != sorted(names) for item in instances):
            raise ProtocolError(
                400, "Every instance must have the same named inputs"
            )
        return {
            name: _decode([item[name] for item in instances]) for name in names
        }
    if any(named):
        raise ProtocolError(400, "Mixed named and unnamed instances")
    return {single_name(): _decode(instances)}


def encode_predict_response(outputs, format):
    """`{name: np.ndarray}` -> the JSON body TF Serving would answer.

    Columnar requests get `{"outputs": ...}`, row requests
    `{"predictions": ...}`; with a single output its name is dropped.
    """
    encoded = {name: _encode(name, value) for name, value in outputs.items()}
    if format == "columnar":
        if len(encoded) == 1:
            return {"outputs": next(iter(encoded.values()))}
        return {"outputs": encoded}
    if len(encoded) == 1:
        return {"predictions": next(iter(encoded.values()))}
    sizes = {len(value) for value in encoded.values()}
    if len(sizes) != 1:
        raise ProtocolError(
            400,
            "The row format needs every output to have the same batch "
            "size; send the request in the columnar 'inputs' format",
        )
    (rows,) = sizes
    return {
        "predictions": [
            {name: value[row] for name, value in encoded.items()}
            for row in range(rows)
        ]
    }


def parse_predict_body(body, signature_name=None):
    """A REST predict response -> `{output: np.ndarray}`.

    Handles both documented shapes: `"predictions"` (row format: a list of
    per-example objects, or of bare values when there is one output) and
    `"outputs"` (columnar: an object, or a bare value for one output).
    """
    known = signature(signature_name)
    outputs = known.outputs if known is not None else {}
    single = next(iter(outputs)) if len(outputs) == 1 else "output"
    if "predictions" in body:
        predictions = body["predictions"]
        if predictions and isinstance(predictions[0], dict):
            names = list(predictions[0])
            columns = {n: [row[n] for row in predictions] for n in names}
        else:
            columns = {single: predictions}
    elif "outputs" in body:
        columns = body["outputs"]
        if not isinstance(columns, dict):
            columns = {single: columns}
    else:
        raise ValueError(
            "A predict response holds 'predictions' or 'outputs'. "
            f"Received keys: {sorted(body)}"
        )
    arrays = {}
    for name, value in columns.items():
        if is_binary(name):
            value = _map_nested(
                lambda item: base64.b64decode(item["b64"]), value
            )
        dtype = outputs[name].dtype if name in outputs else None
        if dtype == "string":
            arrays[name] = np.array(value, dtype=object)
        else:
            arrays[name] = np.asarray(value, dtype=dtype)
    return arrays


def _b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def _decode(value):
    """JSON -> Python: `{"b64": ...}` to bytes, strings to UTF-8 bytes."""
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise ProtocolError(
                400,
                'A JSON object inside a tensor must be {"b64": '
                f'"<base64 string>"}}. Received keys: {sorted(value)}',
            )
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise ProtocolError(
                400, f"Unable to base64 decode a 'b64' value: {error}"
            ) from None
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _encode(name, array):
    """An output array as a JSON-ready nested list (`b64` for binary)."""

    def convert(value):
        if isinstance(value, bytes):
            if not is_binary(name):
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return _b64(value)
        return value

    return _map_nested(convert, np.asarray(array).tolist())


def _map_nested(function, value):
    if isinstance(value, list):
        return [_map_nested(function, item) for item in value]
    return function(value)
