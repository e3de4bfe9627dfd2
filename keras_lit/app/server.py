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
sites from reaching the app through DNS rebinding. Before any route,
`RequestGuard` (`keras_lit.app.request_guard`) takes only
`application/json` on the JSON endpoints (415), checks `Origin` (403),
counts chunked bodies against the limit (413, connection closed) and
refuses JSON nested too deeply or holding invalid Unicode (400).
"""

import errno
import json
import logging
import os
import socket
import threading

from keras_lit.app import routes
from keras_lit.app.request_guard import RequestGuard
from keras_lit.app.routes import AppState
from keras_lit.app.routes import error
from keras_lit.app.samples import is_real_tower
from keras_lit.app.samples import real_photo_samples

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
DEFAULT_MAX_REQUEST_BYTES = 10_000_000  # 10 MB
DEFAULT_MAX_PIXELS = 50_000_000
# Bigger bodies are refused without reading them (the client may then see
# the connection close instead of the 413).
MAX_DRAIN_BYTES = 512 * 1024 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
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
    app.config["KERAS_LIT_ALLOWED_HOSTS"] = (
        None if allowed_hosts is None else set(allowed_hosts)
    )
    app.json.sort_keys = False
    app.wsgi_app = RequestGuard(
        _BodyLimit(app.wsgi_app, int(max_request_bytes)),
        int(max_request_bytes),
        _too_large_message,
    )
    metadata = dict(getattr(backend, "metadata", {}) or {})
    if metadata.get("max_pixels"):
        max_pixels = min(int(max_pixels), int(metadata["max_pixels"]))
    app.extensions["keras_lit"] = AppState(
        backend,
        search_index,
        int(max_request_bytes),
        max_pixels,
        metadata,
        real_photo_samples() if is_real_tower(metadata) else {},
    )
    app.before_request(_check_host)
    app.after_request(_add_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    for rule, methods, view in routes.ROUTES:
        app.add_url_rule(rule, view_func=view, methods=methods)
    return app


def _check_host():
    """Refuses `Host` headers outside the allowed names (DNS rebinding)."""
    import flask

    allowed = flask.current_app.config["KERAS_LIT_ALLOWED_HOSTS"]
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


def _add_headers(response):
    import flask

    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = _CONTENT_SECURITY_POLICY
    if not flask.request.path.startswith(
        ("/static/", "/api/images/", "/api/samples/")
    ):
        response.headers["Cache-Control"] = "no-store"
    return response


def _http_error(exception):
    import flask

    if exception.code == 413:
        limit = flask.current_app.extensions["keras_lit"].max_request_bytes
        return error(413, _too_large_message(None, limit))
    return error(exception.code, exception.description)


def _internal_error(exception):
    import flask

    flask.current_app.logger.exception("Request failed")
    # The details stay in the server's log: exception text can hold paths
    # and internals a client should not see.
    return error(500, "Internal error; the app's log has the details.")


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
