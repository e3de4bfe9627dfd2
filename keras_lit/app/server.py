"""The app's HTTP side: the page, its small JSON API, and TF Serving's REST.

Routes (`<model>` is `<name>` or `<name>/versions/<v>`):

| method | path | what |
| --- | --- | --- |
| GET | `/` | the page (`static/index.html`, `app.js`, `style.css`) |
| GET | `/api/config` | model, exported templates, temperature, limits |
| POST | `/v1/models/<model>:predict` | TF Serving's REST predict |
| GET | `/v1/models/<model>` | TF Serving's model status |
| GET | `/v1/models/<model>/metadata` | TF Serving's signature metadata |
| GET | `/api/search/status` | indexing progress of the `--images` folder |
| POST | `/api/search` | `{"embedding": [...], "top_k": k}` -> images |
| POST | `/api/search/refresh` | rescan the folder (new and changed files) |
| GET | `/api/images/<name>` | an indexed image file |
| GET | `/api/samples/real/<name>` | a shipped real photo (real-tower models) |

Every error is JSON, `{"error": "<readable message>"}`, with an HTTP status,
and no request can stop the server. Bodies over the size limit get a 413
before they are parsed (the rest of the body is read and dropped first, up
to `MAX_DRAIN_BYTES`, so that the browser receives the answer instead of a
reset connection). When bound to loopback, requests whose `Host` header
names anything but the loopback address are refused, which stops other web
sites from reaching the app through DNS rebinding.
"""

import errno
import json
import logging
import math
import os
import re
import socket
import threading
from urllib.parse import quote

from keras_lit.app import rest_format
from keras_lit.app.rest_format import RestError
from keras_lit.app.samples import SAMPLES_DIR
from keras_lit.app.samples import is_real_tower
from keras_lit.app.samples import list_samples
from keras_lit.app.samples import real_photo_samples
from keras_lit.app.search_index import IndexNotReady

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
DEFAULT_MAX_REQUEST_BYTES = 10_000_000  # 10 MB
DEFAULT_MAX_PIXELS = 50_000_000
# Bigger bodies are refused without reading them (the client may then see
# the connection close instead of the 413).
MAX_DRAIN_BYTES = 512 * 1024 * 1024
MAX_BATCH = 4096  # Elements per input of one predict request.
MAX_TOP_K = 100
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SHAPE_LABELS = ("circle", "square", "triangle", "star", "cross", "ring")
_MODEL_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+))?"
    r"(?P<verb>:predict|/metadata)?$"
)
_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def create_app(
    backend,
    search_index=None,
    max_request_bytes=DEFAULT_MAX_REQUEST_BYTES,
    max_pixels=DEFAULT_MAX_PIXELS,
    allowed_hosts=LOOPBACK_HOSTS,
):
    """The Flask app serving the page and the model.

    Args:
        backend: a `keras_lit.app.backends.LocalBackend` (runs the export
            in-process) or `RemoteBackend` (forwards to TF Serving).
        search_index: optional `keras_lit.app.search_index.SearchIndex` for
            the Search tab.
        max_request_bytes: int. Larger request bodies get a 413. Defaults to
            10 MB (an image of about 7.5 MB once base64-encoded).
        max_pixels: int. Images whose header claims more pixels are refused
            before any decoding. Defaults to 50 million.
        allowed_hosts: host names accepted in the `Host` header, or `None`
            to accept any (when serving beyond loopback).

    Returns:
        A `flask.Flask` WSGI app.
    """
    import flask
    from werkzeug.exceptions import HTTPException

    app = flask.Flask(
        "keras_lit.app", static_folder=STATIC_DIR, static_url_path="/static"
    )
    app.config["MAX_CONTENT_LENGTH"] = int(max_request_bytes)
    app.json.sort_keys = False
    app.wsgi_app = _BodyLimit(app.wsgi_app, int(max_request_bytes))
    metadata = dict(getattr(backend, "metadata", {}) or {})
    if metadata.get("max_pixels"):
        max_pixels = min(int(max_pixels), int(metadata["max_pixels"]))
    allowed = None if allowed_hosts is None else set(allowed_hosts)
    real_photos = real_photo_samples() if is_real_tower(metadata) else {}

    def error(status, message):
        response = flask.jsonify({"error": message})
        response.status_code = status
        return response

    @app.before_request
    def check_host():
        if allowed is None:
            return None
        host = flask.request.host
        name = host[1:].split("]")[0] if host.startswith("[") else host
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
        if name.lower() not in allowed:
            return error(
                403,
                f"Host {host!r} is not allowed: the app answers only on "
                f"{', '.join(sorted(allowed))}. To serve other hosts, start "
                "it with --host.",
            )
        return None

    @app.after_request
    def add_headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = _CONTENT_SECURITY_POLICY
        if not flask.request.path.startswith(
            ("/static/", "/api/images/", "/api/samples/")
        ):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exception):
        if exception.code == 413:
            return error(413, _too_large_message(None, max_request_bytes))
        return error(exception.code, exception.description)

    @app.errorhandler(Exception)
    def internal_error(exception):
        app.logger.exception("Request failed")
        return error(
            500, f"Internal error: {type(exception).__name__}: {exception}"
        )

    @app.get("/")
    def index():
        return flask.send_from_directory(STATIC_DIR, "index.html")

    @app.get("/favicon.ico")
    def favicon():
        return flask.Response(status=204)

    @app.get("/api/config")
    def config():
        samples = [
            {"name": name, "url": f"/static/samples/{name}"}
            for name in list_samples(SAMPLES_DIR)
        ] + [
            {"name": name, "url": f"/api/samples/real/{name}"}
            for name in real_photos
        ]
        class_names = metadata.get("class_names")
        default_labels = list(SHAPE_LABELS)
        if class_names and len(class_names) <= 12:
            default_labels = list(class_names)
        search = None
        if search_index is not None:
            search = {"folder": search_index.folder}
        return flask.jsonify(
            {
                "model_name": backend.model_name,
                "predict_url": f"/v1/models/{backend.model_name}:predict",
                "metadata_url": f"/v1/models/{backend.model_name}/metadata",
                "backend": {
                    "kind": backend.kind,
                    "description": backend.describe(),
                },
                "templates": metadata.get("templates"),
                "temperature": metadata.get("temperature"),
                "class_names": class_names,
                "default_labels": default_labels,
                "max_request_bytes": int(max_request_bytes),
                "max_pixels": int(max_pixels),
                "max_batch": MAX_BATCH,
                "max_text_bytes": metadata.get("max_text_bytes"),
                "image_formats": metadata.get(
                    "image_formats", ["JPEG", "PNG", "GIF", "BMP", "WebP"]
                ),
                "samples": samples,
                "search": search,
            }
        )

    @app.route("/v1/models/<path:subpath>", methods=["GET", "POST"])
    def tf_serving(subpath):
        request = flask.request
        match = _MODEL_PATH.match(subpath)
        verb = match and match["verb"]
        is_predict = request.method == "POST" and verb == ":predict"
        if match is None or not (is_predict or request.method == "GET"):
            return error(
                404, f"Malformed request: {request.method} /v1/models/{subpath}"
            )
        if request.method == "GET" and verb == ":predict":
            return error(405, "Use POST for :predict")
        try:
            if backend.kind == "tf-serving":
                return _forward(backend, request, subpath, max_pixels)
            version = match["version"] and int(match["version"])
            backend.check_model(match["name"], version)
            if verb == "/metadata":
                return flask.jsonify(backend.metadata_body())
            if verb is None:
                return flask.jsonify(backend.status_body())
            signature_name, inputs, format = rest_format.parse_predict_request(
                request.get_data(), backend.input_names
            )
            _check_batch(inputs)
            rest_format.check_image_headers(inputs, max_pixels)
            outputs = backend.predict(signature_name, inputs)
            return flask.jsonify(
                rest_format.encode_predict_response(outputs, format)
            )
        except RestError as refused:
            return error(refused.status, refused.message)

    @app.get("/api/search/status")
    def search_status():
        if search_index is None:
            return error(404, "Search is off: start the app with --images DIR")
        return flask.jsonify(_public_status(search_index.status()))

    @app.post("/api/search/refresh")
    def search_refresh():
        if search_index is None:
            return error(404, "Search is off: start the app with --images DIR")
        search_index.start()
        return flask.jsonify(_public_status(search_index.status()))

    @app.post("/api/search")
    def search():
        if search_index is None:
            return error(404, "Search is off: start the app with --images DIR")
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            return error(
                400,
                'The body must be JSON: {"embedding": [numbers], "top_k": k}',
            )
        embedding = body.get("embedding")
        if (
            not isinstance(embedding, list)
            or not embedding
            or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool)
                for x in embedding
            )
            or not all(math.isfinite(x) for x in embedding)
        ):
            return error(
                400, "'embedding' must be a non-empty list of finite numbers"
            )
        top_k = body.get("top_k", 8)
        if (
            isinstance(top_k, bool)
            or not isinstance(top_k, int)
            or not (1 <= top_k <= MAX_TOP_K)
        ):
            return error(
                400,
                f"'top_k' must be an int from 1 to {MAX_TOP_K}. "
                f"Received: {top_k!r}",
            )
        try:
            hits = search_index.search(embedding, top_k)
        except IndexNotReady as not_ready:
            return error(503, str(not_ready))
        except ValueError as bad:
            return error(400, str(bad))
        for hit in hits:
            hit["url"] = "/api/images/" + quote(hit["name"], safe="/")
        return flask.jsonify(
            {"results": hits, "status": _public_status(search_index.status())}
        )

    @app.get("/api/samples/real/<name>")
    def real_sample(name):
        if name not in real_photos:
            return error(404, f"There is no real sample photo named {name}")
        return flask.send_file(real_photos[name], max_age=300)

    @app.get("/api/images/<path:name>")
    def image(name):
        if search_index is None or not search_index.contains(name):
            return error(404, f"No indexed image named {name!r}")
        return flask.send_file(search_index.path(name), max_age=300)

    return app


def _check_batch(inputs):
    for name, values in inputs.items():
        if isinstance(values, list) and len(values) > MAX_BATCH:
            raise RestError(
                400,
                f"{name}: {len(values)} values in one request, over the "
                f"app's limit of {MAX_BATCH}; split the request",
            )


def _forward(backend, request, subpath, max_pixels):
    """Sends a REST call on to TF Serving after the app's own checks."""
    import flask

    body = None
    if request.method == "POST":
        body = request.get_data()
        try:
            _, inputs, _ = rest_format.parse_predict_request(body)
        except RestError:
            inputs = None  # Let TF Serving word its own answer.
        if inputs is not None:
            _check_batch(inputs)
            rest_format.check_image_headers(inputs, max_pixels)
    status, content_type, data = backend.forward(request.method, subpath, body)
    return flask.Response(
        data, status=status, content_type=content_type or "application/json"
    )


def _public_status(status):
    status = dict(status)
    status.pop("cache_path", None)
    skipped = status.get("skipped") or []
    status["skipped"] = skipped[:50]
    status["skipped_count"] = len(skipped)
    return status


def _too_large_message(length, max_bytes):
    size = "" if length is None else f" is {length / 1e6:.1f} MB;"
    return (
        f"Request too large: the body{size} this app accepts at most "
        f"{max_bytes / 1e6:.1f} MB per request (--max-request-mb). Images "
        "travel base64-encoded, so the largest image is about "
        f"{max_bytes * 3 / 4 / 1e6:.1f} MB."
    )


class _BodyLimit:
    """WSGI middleware: a 413 JSON answer for bodies over `max_bytes`.

    Checks `Content-Length` before the app reads anything. The body is
    then read and dropped (up to `MAX_DRAIN_BYTES`): a server that answers
    while the client is still uploading and closes the socket makes
    browsers report a reset connection instead of the answer.
    """

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= self.max_bytes:
            return self.app(environ, start_response)
        if length <= MAX_DRAIN_BYTES:
            stream = environ["wsgi.input"]
            remaining = length
            while remaining > 0:
                chunk = stream.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
        body = json.dumps(
            {"error": _too_large_message(length, self.max_bytes)}
        ).encode("utf-8")
        start_response(
            "413 Request Entity Too Large",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]


def bind_socket(host, port):
    """A listening TCP socket on `host:port`, or an `OSError` that says why.

    Bound here rather than by werkzeug, which prints and exits the process
    on a busy port.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise OSError(f"--host {host!r}: {error.strerror}") from None
    # IPv4 first, as werkzeug assumes for a name such as localhost.
    addresses.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, address = addresses[0]
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise OSError(
                error.errno,
                f"Port {port} on {host} is already in use; pass another "
                "--port, or --port 0 for any free port",
            ) from None
        raise
    return listener


class AppServer:
    """A threaded HTTP server for the app (werkzeug's, without its banner).

    Args:
        app: the WSGI app from `create_app`.
        host: str. Defaults to `"127.0.0.1"`.
        port: int. `0` picks a free port. Defaults to `8080`.
        log_requests: bool. Print one line per request. Defaults to `False`.
        listener: optional socket from `bind_socket(host, port)`, bound
            early so that a busy port fails before the model loads.
    """

    def __init__(
        self,
        app,
        host="127.0.0.1",
        port=8080,
        log_requests=False,
        listener=None,
    ):
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(
            logging.INFO if log_requests else logging.ERROR
        )
        if listener is None:
            listener = bind_socket(host, port)
        try:
            self.server = make_server(
                host, port, app, threaded=True, fd=listener.fileno()
            )
        finally:
            listener.close()  # The server holds its own duplicate.
        self.host = host
        self.port = self.server.port
        self._thread = None

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}/"

    def serve_forever(self):
        self.server.serve_forever()

    def start(self):
        """Serves in a daemon thread; returns `self`."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="keras-lit-app", daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
