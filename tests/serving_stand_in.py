"""TEST STAND-IN for TensorFlow Serving. Not a product; not shipped.

The TF Serving binary cannot be installed on this machine (no Docker, no
apt repository), so the client tests talk to this in-process imitation
instead. It implements only what the tests need, following TF Serving's
documented behaviour:

- gRPC `tensorflow.serving.PredictionService`: `Predict` (model name and
  optional version, `signature_name` defaulting to `serving_default`,
  `output_filter`) and `GetModelMetadata` (`signature_def`). Errors map to
  gRPC status codes; TensorFlow's `InvalidArgument` stays
  `INVALID_ARGUMENT` with the op's message. Like `tensorflow_model_server`,
  it accepts messages up to 2 GiB.
- REST `POST /v1/models/<name>[/versions/<v>]:predict` in the row
  (`"instances"`) and columnar (`"inputs"`) formats with `{"b64": ...}`
  binary values, answering `"predictions"` or `"outputs"`, and
  `GET .../metadata`; errors are `{"error": message}` with an HTTP status.

Each model is a SavedModel loaded with `tf.saved_model.load`, exactly the
file TF Serving would load. The only keras_lit code on the serving side is
the wire format (`keras_lit.serving.protocol`, `signature_defs`): the rules
the clients and the app follow too, written once.
"""

import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import grpc
import tensorflow as tf
import tensorflow_text  # noqa: F401  (TF Serving links these ops in)
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from keras_lit.serving import protocol
from keras_lit.serving import signature_defs

MAX_MESSAGE_BYTES = 2**31 - 1
_CODES = {
    tf.errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    tf.errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    tf.errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    tf.errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
}
_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}


class ServingStatus(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Servable:
    """One loaded model version: its signatures and SignatureDefs."""

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        self.loaded = tf.saved_model.load(path)
        self.signature_defs = signature_defs.read_signature_defs(path)

    def input_names(self, signature_name):
        return list(self.function(signature_name).structured_input_signature[1])

    def function(self, signature_name):
        signature_name = signature_name or protocol.DEFAULT_SIGNATURE
        if signature_name not in self.loaded.signatures:
            raise ServingStatus(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            )
        return self.loaded.signatures[signature_name]

    def run(self, signature_name, inputs, output_filter=()):
        """`{name: np.ndarray}` -> `{name: np.ndarray}`, TF errors mapped."""
        function = self.function(signature_name)
        tensors = signature_defs.input_tensors(
            function,
            inputs,
            lambda message: ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT, message
            ),
        )
        try:
            outputs = function(**tensors)
        except tf.errors.OpError as error:
            code = _CODES.get(type(error), grpc.StatusCode.INTERNAL)
            raise ServingStatus(code, error.message) from None
        if output_filter:
            unknown = sorted(set(output_filter) - set(outputs))
            if unknown:
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {unknown}",
                )
            outputs = {k: v for k, v in outputs.items() if k in output_filter}
        return {name: value.numpy() for name, value in outputs.items()}


class StandInServer:
    """Serves `{model_name: (version, path)}` over gRPC and REST.

    Use as a context manager; `grpc_target` and `rest_url` are set once it
    has started (ports are picked by the OS).
    """

    def __init__(self, models):
        self.servables = {
            name: Servable(name, version, path)
            for name, (version, path) in models.items()
        }

    def find(self, name, version=None):
        servable = self.servables.get(name)
        if servable is None or (
            version is not None and version != servable.version
        ):
            spec = name if version is None else f"{name} version {version}"
            raise ServingStatus(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Latest({spec})",
            )
        return servable

    def __enter__(self):
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        self.grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4), options=options
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self), self.grpc_server
        )
        port = self.grpc_server.add_insecure_port("127.0.0.1:0")
        self.grpc_server.start()
        self.grpc_target = f"127.0.0.1:{port}"

        handler = type("Handler", (_RestHandler,), {"stand_in": self})
        self.http_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.http_thread = threading.Thread(
            target=self.http_server.serve_forever, daemon=True
        )
        self.http_thread.start()
        self.rest_url = f"http://127.0.0.1:{self.http_server.server_port}"
        return self

    def __exit__(self, *exc):
        self.http_server.shutdown()
        self.http_server.server_close()
        self.grpc_server.stop(grace=None).wait()


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, stand_in):
        self.stand_in = stand_in

    def Predict(self, request, context):
        try:
            servable = self.stand_in.find(
                request.model_spec.name, _version(request.model_spec)
            )
            inputs = {
                name: tf.make_ndarray(proto)
                for name, proto in request.inputs.items()
            }
            outputs = servable.run(
                request.model_spec.signature_name,
                inputs,
                list(request.output_filter),
            )
        except ServingStatus as status:
            context.abort(status.code, status.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = (
            request.model_spec.signature_name or "serving_default"
        )
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            servable = self.stand_in.find(
                request.model_spec.name, _version(request.model_spec)
            )
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Metadata field(s) not supported: "
                    f"{list(request.metadata_field)}",
                )
        except ServingStatus as status:
            context.abort(status.code, status.message)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(
            signature_defs.signature_def_map(servable.signature_defs)
        )
        return response


def _version(model_spec):
    return model_spec.version.value if model_spec.HasField("version") else None


class _RestHandler(BaseHTTPRequestHandler):
    stand_in = None
    PATH = re.compile(
        r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
        r"(?P<verb>:predict|/metadata)?$"
    )

    def log_message(self, *args):  # Quiet test output.
        pass

    def do_GET(self):
        self._handle(None)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self._handle(self.rfile.read(length))

    def _handle(self, payload):
        match = self.PATH.match(self.path)
        try:
            if match is None:
                raise ServingStatus(
                    grpc.StatusCode.NOT_FOUND, f"Malformed request: {self.path}"
                )
            version = match["version"] and int(match["version"])
            servable = self.stand_in.find(match["name"], version)
            if match["verb"] == "/metadata" and payload is None:
                body = signature_defs.metadata_body(
                    servable.name, servable.version, servable.signature_defs
                )
            elif match["verb"] == ":predict" and payload is not None:
                body = _predict_json(servable, payload)
            else:
                raise ServingStatus(
                    grpc.StatusCode.NOT_FOUND, f"Malformed request: {self.path}"
                )
            self._reply(200, body)
        except ServingStatus as status:
            self._reply(_HTTP.get(status.code, 500), {"error": status.message})
        except protocol.ProtocolError as error:
            self._reply(error.status, error.body())

    def _reply(self, code, body):
        data = json.dumps(body).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _predict_json(servable, payload):
    """A REST predict body -> the JSON answer, by the shared wire rules."""
    signature_name, inputs, format = protocol.parse_predict_request(
        payload, servable.input_names
    )
    outputs = servable.run(signature_name, inputs)
    return protocol.encode_predict_response(outputs, format)


def save_echo_model(path):
    """A tiny SavedModel echoing `payload_bytes`: for message-size tests."""

    class Echo(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="payload_bytes")
            ]
        )
        def echo(self, payload_bytes):
            return {"echo_bytes": tf.identity(payload_bytes)}

    module = Echo()
    tf.saved_model.save(module, path, signatures={"echo": module.echo})
    return path
