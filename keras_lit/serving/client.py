"""Clients for a keras_lit export behind TensorFlow Serving: gRPC and REST.

Send what you have, the bytes of image files and plain strings, and get
NumPy arrays back. Both clients speak TF Serving's documented protocols:
`PredictionService/Predict` and `GetModelMetadata` over gRPC (with the
message limit raised well above gRPC's 4 MiB default), and
`POST /v1/models/<name>[/versions/<v>]:predict` over REST, in the row
(`"instances"`) or columnar (`"inputs"`) JSON format, with image bytes as
`{"b64": ...}`.

Typical usage:

    python -m keras_lit.serving.client --server=localhost:8500 \
        --signature=classify cat.jpg dog.png
    python -m keras_lit.serving.client --rest=http://localhost:8501 \
        --signature=zero_shot --class_names cat dog bird -- cat.jpg
    python -m keras_lit.serving.client --server=localhost:8500 \
        --signature=embed_text --texts "a photo of a cat"
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

import numpy as np

DEFAULT_MODEL_NAME = "lit"
DEFAULT_GRPC_TARGET = "localhost:8500"
DEFAULT_REST_URL = "http://localhost:8501"
DEFAULT_TIMEOUT = 30.0
# gRPC clients refuse responses over 4 MiB by default; `probabilities` for a
# batch of 256 images over 5,000 classes alone is 5 MiB.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

# The export's signatures: inputs, then outputs with their dtypes.
SIGNATURES = {
    "embed_image": (("image_bytes",), {"embeddings": "float32"}),
    "embed_text": (("texts",), {"embeddings": "float32"}),
    "zero_shot": (
        ("image_bytes", "class_names"),
        {
            "probabilities": "float32",
            "top_class": "str",
            "top_index": "int32",
        },
    ),
    "classify": (
        ("image_bytes",),
        {
            "probabilities": "float32",
            "top_classes": "str",
            "top_scores": "float32",
            "top_indices": "int32",
        },
    ),
}
SIGNATURES["serving_default"] = SIGNATURES["classify"]
REST_FORMATS = ("columnar", "row")


class ServingError(RuntimeError):
    """The server refused or failed a request.

    Attributes:
        code: the status, e.g. `"INVALID_ARGUMENT"` (gRPC) or `"HTTP 400"`.
        message: the server's message, e.g.
            `"... image_bytes[1]: truncated JPEG (...)"`.
    """

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def check_inputs(signature_name, inputs):
    """Validates and normalises a request: `{name: list of bytes/str}`.

    Image inputs (names ending in `_bytes`) must be `bytes`; text inputs
    are `str` (or UTF-8 `bytes`). Raises `ValueError` naming the input.
    Returns `{name: list of bytes}` in the order the signature declares.
    """
    if not isinstance(inputs, dict):
        raise ValueError(
            "`inputs` must be a dict of input name -> list. "
            f"Received: {type(inputs).__name__}"
        )
    if signature_name in SIGNATURES:
        expected = SIGNATURES[signature_name][0]
        if sorted(inputs) != sorted(expected):
            raise ValueError(
                f"Signature {signature_name!r} takes inputs "
                f"{list(expected)}. Received: {sorted(inputs)}"
            )
    checked = {}
    for name, values in inputs.items():
        if isinstance(values, (str, bytes)):
            raise ValueError(
                f"`{name}` must be a list (a batch), not a single value. "
                f"Received: {values[:40]!r}"
            )
        values = list(values)
        encoded = []
        for index, value in enumerate(values):
            if name.endswith("_bytes"):
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
        checked[name] = encoded
    return checked


class GrpcClient:
    """Calls the export through TF Serving's gRPC `PredictionService`.

    Args:
        target: `"host:port"` of the server's gRPC port. Defaults to
            `"localhost:8500"`.
        model_name: the model's name in the server config. Defaults to
            `"lit"`.
        version: optional int. Pin a version; defaults to the latest.
        timeout: float. Seconds per call. Defaults to `30.0`.
        max_message_bytes: int. Largest request and response accepted.
            Defaults to 256 MiB (gRPC's own default is 4 MiB).
        credentials: optional `grpc.ChannelCredentials` for TLS.

    Example:
    >>> with GrpcClient("localhost:8500") as client:  # doctest: +SKIP
    ...     result = client.classify([open("cat.jpg", "rb").read()])
    >>> result["top_classes"][0]  # doctest: +SKIP
    array(['cat', 'dog'], dtype=object)
    """

    def __init__(
        self,
        target=DEFAULT_GRPC_TARGET,
        model_name=DEFAULT_MODEL_NAME,
        version=None,
        timeout=DEFAULT_TIMEOUT,
        max_message_bytes=MAX_MESSAGE_BYTES,
        credentials=None,
    ):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        options = [
            ("grpc.max_send_message_length", int(max_message_bytes)),
            ("grpc.max_receive_message_length", int(max_message_bytes)),
        ]
        if credentials is None:
            self.channel = grpc.insecure_channel(target, options=options)
        else:
            self.channel = grpc.secure_channel(
                target, credentials, options=options
            )
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(
            self.channel
        )
        self.target = target
        self.model_name = model_name
        self.version = version
        self.timeout = timeout

    def make_request(self, signature_name, inputs, output_filter=None):
        """Builds the `PredictRequest` proto for `inputs`."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        inputs = check_inputs(signature_name, inputs)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature_name
        if self.version is not None:
            request.model_spec.version.value = int(self.version)
        for name, values in inputs.items():
            request.inputs[name].CopyFrom(
                tf.make_tensor_proto(
                    values, dtype=tf.string, shape=[len(values)]
                )
            )
        request.output_filter.extend(output_filter or [])
        return request

    def predict(self, signature_name, inputs, output_filter=None):
        """Runs one signature: `{input: list}` -> `{output: np.ndarray}`.

        String outputs come back as `str` object arrays. Raises
        `ServingError` with the server's status code and message.
        """
        import grpc

        request = self.make_request(signature_name, inputs, output_filter)
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.code().name, error.details()) from None
        return parse_predict_response(response)

    def metadata(self):
        """`{signature: {"inputs": {name: spec}, "outputs": {...}}}`."""
        import grpc
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = self.model_name
        if self.version is not None:
            request.model_spec.version.value = int(self.version)
        request.metadata_field.append("signature_def")
        try:
            response = self.stub.GetModelMetadata(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.code().name, error.details()) from None
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_table(signature_map.signature_def)

    def embed_image(self, image_bytes):
        return self.predict("embed_image", {"image_bytes": image_bytes})

    def embed_text(self, texts):
        return self.predict("embed_text", {"texts": texts})

    def zero_shot(self, image_bytes, class_names):
        return self.predict(
            "zero_shot",
            {"image_bytes": image_bytes, "class_names": class_names},
        )

    def classify(self, image_bytes):
        return self.predict("classify", {"image_bytes": image_bytes})

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_predict_response(response):
    """`PredictResponse` -> `{output: np.ndarray}`.

    String outputs become `str`, except those whose name ends in `_bytes`
    (TF Serving's convention for binary values), which stay `bytes`.
    """
    import tensorflow as tf

    outputs = {}
    for name, proto in response.outputs.items():
        value = tf.make_ndarray(proto)
        if value.dtype == object and value.size and not name.endswith("_bytes"):
            value = np.vectorize(bytes.decode, otypes=[object])(value)
        outputs[name] = value
    return outputs


def signature_table(signature_defs):
    """`SignatureDef`s -> `{key: {"inputs"/"outputs": {name: spec}}}`."""
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

    return {
        key: {"inputs": specs(sig.inputs), "outputs": specs(sig.outputs)}
        for key, sig in sorted(signature_defs.items())
        if not key.startswith("__")
    }


class RestClient:
    """Calls the export through TF Serving's REST API (JSON over HTTP).

    Args:
        base_url: the server's REST address. Defaults to
            `"http://localhost:8501"`.
        model_name: the model's name in the server config. Defaults to
            `"lit"`.
        version: optional int. Pin a version; defaults to the latest.
        timeout: float. Seconds per call. Defaults to `30.0`.
        format: `"columnar"` (`{"inputs": {...}}`, any batch sizes) or
            `"row"` (`{"instances": [...]}`, every input must have the same
            number of rows). Defaults to `"columnar"`.

    Example:
    >>> client = RestClient("http://localhost:8501")  # doctest: +SKIP
    >>> result = client.embed_text(["a cat"])  # doctest: +SKIP
    >>> result["embeddings"].shape  # doctest: +SKIP
    (1, 768)
    """

    def __init__(
        self,
        base_url=DEFAULT_REST_URL,
        model_name=DEFAULT_MODEL_NAME,
        version=None,
        timeout=DEFAULT_TIMEOUT,
        format="columnar",
    ):
        if format not in REST_FORMATS:
            raise ValueError(
                f"`format` must be one of {', '.join(map(repr, REST_FORMATS))}"
                f". Received: format={format!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.version = version
        self.timeout = timeout
        self.format = format

    @property
    def model_url(self):
        url = f"{self.base_url}/v1/models/{self.model_name}"
        if self.version is not None:
            url += f"/versions/{int(self.version)}"
        return url

    def predict(self, signature_name, inputs, format=None):
        """Runs one signature: `{input: list}` -> `{output: np.ndarray}`."""
        body = predict_request_body(
            signature_name, inputs, format or self.format
        )
        response = self._send(f"{self.model_url}:predict", body)
        return parse_predict_body(response, signature_name)

    def metadata(self):
        """`{signature: {"inputs": {name: spec}, "outputs": {...}}}`."""
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        response = self._send(f"{self.model_url}/metadata", None)
        signature_map = json_format.ParseDict(
            response["metadata"]["signature_def"],
            get_model_metadata_pb2.SignatureDefMap(),
            ignore_unknown_fields=True,
        )
        return signature_table(signature_map.signature_def)

    def embed_image(self, image_bytes):
        return self.predict("embed_image", {"image_bytes": image_bytes})

    def embed_text(self, texts):
        return self.predict("embed_text", {"texts": texts})

    def zero_shot(self, image_bytes, class_names):
        # N images and K class names: only the columnar format can say so.
        return self.predict(
            "zero_shot",
            {"image_bytes": image_bytes, "class_names": class_names},
            format="columnar",
        )

    def classify(self, image_bytes):
        return self.predict("classify", {"image_bytes": image_bytes})

    def _send(self, url, body):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            url,
            data=data,
            headers={"Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text
            raise ServingError(f"HTTP {error.code}", message) from None
        except urllib.error.URLError as error:
            raise ServingError("UNAVAILABLE", str(error.reason)) from None


def predict_request_body(signature_name, inputs, format="columnar"):
    """The JSON body of a REST predict request, as TF Serving documents it.

    Binary inputs (names ending in `_bytes`) are `{"b64": ...}`; strings
    are plain JSON strings. `"row"` puts each example in `"instances"` (all
    inputs need the same number of rows); `"columnar"` puts each input's
    list in `"inputs"`.
    """
    if format not in REST_FORMATS:
        raise ValueError(
            f"`format` must be one of {', '.join(map(repr, REST_FORMATS))}. "
            f"Received: format={format!r}"
        )
    inputs = check_inputs(signature_name, inputs)
    columns = {
        name: [_json_value(name, value) for value in values]
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


def parse_predict_body(body, signature_name=None):
    """A REST predict response -> `{output: np.ndarray}`.

    Handles both documented shapes: `"predictions"` (row format: a list of
    per-example objects, or of bare values when there is one output) and
    `"outputs"` (columnar: an object, or a bare value for one output).
    """
    dtypes = SIGNATURES.get(signature_name, ((), {}))[1]
    if "predictions" in body:
        predictions = body["predictions"]
        if predictions and isinstance(predictions[0], dict):
            names = list(predictions[0])
            columns = {n: [row[n] for row in predictions] for n in names}
        else:
            columns = {_single_output(dtypes): predictions}
    elif "outputs" in body:
        outputs = body["outputs"]
        if isinstance(outputs, dict):
            columns = outputs
        else:
            columns = {_single_output(dtypes): outputs}
    else:
        raise ValueError(
            "A predict response holds 'predictions' or 'outputs'. "
            f"Received keys: {sorted(body)}"
        )
    return {
        name: _to_array(name, value, dtypes.get(name))
        for name, value in columns.items()
    }


def _single_output(dtypes):
    if len(dtypes) == 1:
        return next(iter(dtypes))
    return "output"


def _json_value(name, value):
    if name.endswith("_bytes"):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value.decode("utf-8")


def _to_array(name, value, dtype):
    if name.endswith("_bytes"):
        value = _map_nested(lambda v: base64.b64decode(v["b64"]), value)
    if dtype == "str":
        return np.array(value, dtype=object)
    return np.asarray(value, dtype=dtype)


def _map_nested(function, value):
    if isinstance(value, list):
        return [_map_nested(function, item) for item in value]
    return function(value)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Query a keras_lit export served by TensorFlow Serving."
    )
    address = parser.add_mutually_exclusive_group()
    address.add_argument(
        "--server", default=None, help=f"gRPC host:port ({DEFAULT_GRPC_TARGET})"
    )
    address.add_argument("--rest", default=None, help="REST base URL")
    parser.add_argument("--model_name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument(
        "--signature",
        default="serving_default",
        choices=sorted(SIGNATURES),
    )
    parser.add_argument("--texts", nargs="*", default=[])
    parser.add_argument("--class_names", nargs="*", default=[])
    parser.add_argument("images", nargs="*", help="image files to send")
    args = parser.parse_args(argv)

    if args.rest:
        client = RestClient(args.rest, args.model_name, args.version)
    else:
        client = GrpcClient(
            args.server or DEFAULT_GRPC_TARGET, args.model_name, args.version
        )
    values = {
        "image_bytes": [open(path, "rb").read() for path in args.images],
        "texts": args.texts,
        "class_names": args.class_names,
    }
    names = SIGNATURES[args.signature][0]
    try:
        outputs = client.predict(
            args.signature, {name: values[name] for name in names}
        )
    except ServingError as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps({k: v.tolist() for k, v in outputs.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
