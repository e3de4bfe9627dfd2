"""Where the app's predictions run: in-process, or on a TF Serving server.

Both backends answer the same REST calls (`/v1/models/<name>:predict`,
`/v1/models/<name>`, `/v1/models/<name>/metadata`), so the page cannot
tell them apart:

- `LocalBackend` runs the signatures of an exported SavedModel in this
  process (`keras_lit.export.load`), implementing TF Serving's REST API.
- `RemoteBackend` forwards the page's requests unchanged to a TF Serving
  REST endpoint (`--serving-url`). The app proxies them instead of letting
  the browser call the server directly because TF Serving sends no CORS
  headers, so a page on another origin could not read its answers.
"""

import hashlib
import json
import os
import re
import threading
import urllib.error
import urllib.request

import numpy as np

from keras_lit.app.rest_format import RestError
from keras_lit.serving import signature_defs
from keras_lit.serving.protocol import DEFAULT_MODEL_NAME
from keras_lit.serving.protocol import METADATA_FILENAME

_EAGER_PREAMBLE = re.compile(
    r"^Graph execution error:\s*\n(?:.*\n)*?<stack traces unavailable>\n"
)
_EAGER_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")
# Graph internals a client has no use for: `[[{{node Assert/Assert}}]]`
# and `{{function_node __wrapped__...}}` prefixes.
_GRAPH_NODES = re.compile(r"\s*\[\[\{\{(?:function_)?node [^}]*\}\}[^\]]*\]\]")
_FUNCTION_PREFIX = re.compile(r"\{\{function_node [^}]*\}\}\s*")


def tensorflow_error_message(error):
    """A TF op error's message as TF Serving reports it.

    Drops what only eager Python adds: the "Graph execution error ...
    <stack traces unavailable>" preamble and the trailing `[Op:...]`, and
    the graph's node names (`[[{{node Assert/Assert}}]]`), which tell a
    client nothing.
    """
    message = getattr(error, "message", None) or str(error)
    message = _EAGER_PREAMBLE.sub("", message)
    message = _EAGER_SUFFIX.sub("", message)
    message = _GRAPH_NODES.sub("", message)
    return _FUNCTION_PREFIX.sub("", message).strip()


def find_version_directory(path):
    """A SavedModel version directory: `path` itself or its newest version.

    Keeps the caller's spelling of the path (relative stays relative), as
    the page shows it.
    """
    path = os.path.normpath(os.path.expanduser(os.fspath(path)))
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if not os.path.isdir(path):
        raise ValueError(f"--model: no such directory: {path}")
    versions = [
        int(name)
        for name in os.listdir(path)
        if name.isdigit()
        and os.path.isfile(os.path.join(path, name, "saved_model.pb"))
    ]
    if not versions:
        raise ValueError(
            f"--model must be a SavedModel export (keras-lit export or "
            f"keras_lit.export.export_for_serving): {path} holds neither a "
            "saved_model.pb nor numbered version directories with one."
        )
    return os.path.join(path, str(max(versions)))


def read_export_metadata(version_dir):
    """The export's `assets.extra/keras_lit_export.json`, or `{}`."""
    path = os.path.join(version_dir, "assets.extra", METADATA_FILENAME)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def export_key(version_dir):
    """A content key for a SavedModel: SHA-256 of its fingerprint.

    Uses `fingerprint.pb` (written by `tf.saved_model.save`: checksums of
    the graph, signatures and variables); older SavedModels without one
    hash `saved_model.pb` and the variables index instead.
    """
    digest = hashlib.sha256()
    names = ["fingerprint.pb"]
    if not os.path.isfile(os.path.join(version_dir, names[0])):
        names = ["saved_model.pb", os.path.join("variables", "variables.index")]
    for name in names:
        path = os.path.join(version_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as file:
                digest.update(file.read())
    return digest.hexdigest()


def _version_number(version_dir):
    name = os.path.basename(version_dir.rstrip(os.sep))
    return int(name) if name.isdigit() else 1


class LocalBackend:
    """Runs an export's signatures in this process, as TF Serving would.

    Args:
        signatures: a `keras_lit.export.ServingSignatures` (what
            `keras_lit.export.load` returns).
        model_name: the name the REST paths use. Defaults to `"lit"`.
        max_concurrent_calls: int. Model calls allowed at once; more wait.
            Defaults to `2`.
    """

    kind = "local"

    def __init__(
        self, signatures, model_name=DEFAULT_MODEL_NAME, max_concurrent_calls=2
    ):
        self.signatures = signatures
        self.model_name = model_name
        self.path = signatures.path
        self.version = _version_number(self.path)
        self.metadata = dict(signatures.metadata)
        self._calls = threading.BoundedSemaphore(max_concurrent_calls)
        self._signature_defs = None

    @classmethod
    def from_export(cls, path, model_name=DEFAULT_MODEL_NAME):
        from keras_lit.export import load

        return cls(load(find_version_directory(path)), model_name)

    def describe(self):
        return f"SavedModel {self.path} (in-process)"

    def model_key(self):
        return export_key(self.path)

    def check_model(self, name, version):
        if name != self.model_name or (
            version is not None and version != self.version
        ):
            spec = name if version is None else f"{name} version {version}"
            raise RestError(
                404, f"Servable not found for request: Latest({spec})"
            )

    def input_names(self, signature_name):
        return list(
            self._function(signature_name).structured_input_signature[1]
        )

    def predict(self, signature_name, inputs):
        """`{name: nested list}` -> `{name: np.ndarray}`; `RestError`s."""
        import tensorflow as tf

        function = self._function(signature_name)
        tensors = signature_defs.input_tensors(
            function, inputs, lambda message: RestError(400, message)
        )
        with self._calls:
            try:
                outputs = function(**tensors)
            except tf.errors.InvalidArgumentError as error:
                raise RestError(400, tensorflow_error_message(error)) from None
            except tf.errors.OpError as error:
                # Caused by the request's data (no other input reaches the
                # model): a client error, never a 500.
                raise RestError(400, tensorflow_error_message(error)) from None
        return {name: value.numpy() for name, value in outputs.items()}

    def embed_images(self, image_bytes):
        """`[bytes]` -> float32 `[N, D]`; raises `RestError` on bad input."""
        outputs = self.predict(
            "embed_image", {"image_bytes": list(image_bytes)}
        )
        return np.asarray(outputs["embeddings"], "float32")

    def warm_up(self, image_bytes):
        """Runs each signature once, so the page's first call is fast.

        (TF Serving does the same with the export's warmup file.) Errors
        are ignored: a failing signature reports itself when called.
        """
        calls = {
            "zero_shot": {"image_bytes": [image_bytes], "class_names": [b"a"]},
            "embed_text": {"texts": [b"a photo"]},
            "embed_image": {"image_bytes": [image_bytes]},
        }
        for name, inputs in calls.items():
            if name in self.signatures:
                try:
                    self.predict(name, inputs)
                except RestError:
                    pass

    def status_body(self):
        return {
            "model_version_status": [
                {
                    "version": str(self.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def metadata_body(self):
        if self._signature_defs is None:
            self._signature_defs = signature_defs.read_signature_defs(self.path)
        return signature_defs.metadata_body(
            self.model_name, self.version, self._signature_defs
        )

    def _function(self, signature_name):
        if signature_name not in self.signatures:
            raise RestError(
                404, f'Serving signature key "{signature_name}" not found.'
            )
        return self.signatures[signature_name]


class RemoteBackend:
    """Forwards the page's REST calls to a TF Serving server.

    Args:
        serving_url: the server's REST address, e.g.
            `"http://localhost:8501"`.
        model_name: the model's name in the server's config. Defaults to
            `"lit"`.
        export_path: optional local copy of the served export. Its metadata
            (prompt templates, temperature, limits) lets the page edit
            templates; its fingerprint keys the search cache.
        timeout: float. Seconds per forwarded call. Defaults to `120.0`.
    """

    kind = "tf-serving"

    def __init__(
        self,
        serving_url,
        model_name=DEFAULT_MODEL_NAME,
        export_path=None,
        timeout=120.0,
    ):
        if not re.match(r"^https?://[^/]+", serving_url or ""):
            raise ValueError(
                "--serving-url must be TF Serving's REST address, such as "
                f"http://localhost:8501. Received: {serving_url!r}"
            )
        self.serving_url = serving_url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout
        self.path = None
        self.metadata = {}
        if export_path is not None:
            self.path = find_version_directory(export_path)
            self.metadata = read_export_metadata(self.path)

    def describe(self):
        return f"TF Serving at {self.serving_url} (model {self.model_name!r})"

    def model_key(self):
        if self.path is not None:
            return export_key(self.path)
        status, _, data = self.forward("GET", self.model_name, None)
        version = ""
        if status == 200:
            try:
                versions = json.loads(data)["model_version_status"]
                version = max(str(v.get("version", "")) for v in versions)
            except (ValueError, KeyError, TypeError):
                pass
        text = f"{self.serving_url}|{self.model_name}|{version}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def forward(self, method, subpath, body):
        """Sends `/v1/models/<subpath>` on; returns `(status, type, bytes)`."""
        request = urllib.request.Request(
            f"{self.serving_url}/v1/models/{subpath}",
            data=body,
            headers={"Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as error:
            return (
                error.code,
                error.headers.get("Content-Type"),
                error.read(),
            )
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            message = (
                f"Cannot reach TF Serving at {self.serving_url}: {reason}. "
                "Is the server running, and is --serving-url its REST port "
                "(8501 by default)?"
            )
            return (
                502,
                "application/json",
                json.dumps({"error": message}).encode("utf-8"),
            )

    def embed_images(self, image_bytes):
        from keras_lit.serving.client import RestClient
        from keras_lit.serving.client import ServingError

        client = RestClient(
            self.serving_url, self.model_name, timeout=self.timeout
        )
        try:
            outputs = client.embed_image(list(image_bytes))
        except ServingError as error:
            status = 502 if error.code == "UNAVAILABLE" else 400
            raise RestError(status, str(error.message)) from None
        return np.asarray(outputs["embeddings"], "float32")
