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
import json
import sys
import urllib.error
import urllib.request

from keras_lit.serving import protocol
from keras_lit.serving.protocol import DEFAULT_MODEL_NAME
from keras_lit.serving.protocol import check_inputs  # noqa: F401
from keras_lit.serving.protocol import parse_predict_body
from keras_lit.serving.protocol import parse_predict_response
from keras_lit.serving.protocol import predict_request_body
from keras_lit.serving.signature_defs import signature_table

DEFAULT_GRPC_TARGET = "localhost:8500"
DEFAULT_REST_URL = "http://localhost:8501"
DEFAULT_TIMEOUT = 30.0
# gRPC clients refuse responses over 4 MiB by default; `probabilities` for a
# batch of 256 images over 5,000 classes alone is 5 MiB.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


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


class _SignatureMethods:
    """One method per signature of `protocol.SIGNATURES`, over `predict`."""

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


class GrpcClient(_SignatureMethods):
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
        return protocol.make_predict_request(
            self.model_name, signature_name, inputs, self.version, output_filter
        )

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

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RestClient(_SignatureMethods):
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
        protocol.check_format(format)
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

    def zero_shot(self, image_bytes, class_names):
        # N images and K class names: only the columnar format can say so.
        return self.predict(
            "zero_shot",
            {"image_bytes": image_bytes, "class_names": class_names},
            format="columnar",
        )

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
        choices=sorted([*protocol.SIGNATURES, protocol.DEFAULT_SIGNATURE]),
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
    names = protocol.signature(args.signature).inputs
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
