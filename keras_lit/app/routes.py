"""The app's routes, one plain function each.

`keras_lit.app.server.create_app` registers them; each reads what it needs
from `AppState` (`flask.current_app.extensions["keras_lit"]`) and answers
JSON, errors included (`{"error": "<readable message>"}`). See
`keras_lit.app.server` for the table of routes.
"""

import math
import re
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import quote

from keras_lit.app import rest_format
from keras_lit.app.rest_format import RestError
from keras_lit.app.samples import SAMPLES_DIR
from keras_lit.app.samples import list_samples
from keras_lit.app.search_index import IndexNotReady
from keras_lit.image_header import IMAGE_FORMATS

MAX_TOP_K = 100
SHAPE_LABELS = ("circle", "square", "triangle", "star", "cross", "ring")
_MODEL_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+))?"
    r"(?P<verb>:predict|/metadata)?$"
)
_SEARCH_OFF = "Search is off: start the app with --images DIR"


@dataclass
class AppState:
    """What the routes share: set once by `create_app`."""

    backend: object
    search_index: object
    max_request_bytes: int
    max_pixels: int
    metadata: dict
    # `{filename: path}` of real photos offered as samples (real towers).
    real_photos: dict = field(default_factory=dict)


def _state():
    import flask

    return flask.current_app.extensions["keras_lit"]


def error(status, message):
    """A JSON error answer."""
    import flask

    response = flask.jsonify({"error": message})
    response.status_code = status
    return response


def index():
    import flask

    return flask.send_from_directory(
        flask.current_app.static_folder, "index.html"
    )


def favicon():
    import flask

    return flask.Response(status=204)


def config():
    """The page's settings: model, exported templates, limits, samples."""
    import flask

    state = _state()
    backend, metadata = state.backend, state.metadata
    samples = [
        {"name": name, "url": f"/static/samples/{name}"}
        for name in list_samples(SAMPLES_DIR)
    ] + [
        {"name": name, "url": f"/api/samples/real/{name}"}
        for name in state.real_photos
    ]
    class_names = metadata.get("class_names")
    default_labels = list(SHAPE_LABELS)
    if class_names and len(class_names) <= 12:
        default_labels = list(class_names)
    search = None
    if state.search_index is not None:
        search = {"folder": state.search_index.folder}
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
            "max_request_bytes": int(state.max_request_bytes),
            "max_pixels": int(state.max_pixels),
            "max_batch": rest_format.MAX_BATCH,
            "max_text_bytes": metadata.get("max_text_bytes"),
            "max_class_names": rest_format.class_name_limits(metadata)[0],
            "image_formats": metadata.get("image_formats", list(IMAGE_FORMATS)),
            "samples": samples,
            "search": search,
        }
    )


def tf_serving(subpath):
    """TF Serving's REST API: predict, model status and metadata."""
    import flask

    request = flask.request
    state = _state()
    backend = state.backend
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
            return _forward(state, request, subpath)
        version = match["version"] and int(match["version"])
        backend.check_model(match["name"], version)
        if verb == "/metadata":
            return flask.jsonify(backend.metadata_body())
        if verb is None:
            return flask.jsonify(backend.status_body())
        signature_name, inputs, format = rest_format.parse_predict_request(
            request.get_data(), backend.input_names
        )
        rest_format.check_batch(inputs)
        rest_format.check_class_names(inputs, state.metadata)
        rest_format.check_image_headers(inputs, state.max_pixels)
        outputs = backend.predict(signature_name, inputs)
        return flask.jsonify(
            rest_format.encode_predict_response(outputs, format)
        )
    except RestError as refused:
        return error(refused.status, refused.message)


def _forward(state, request, subpath):
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
            rest_format.check_batch(inputs)
            rest_format.check_class_names(inputs, state.metadata)
            rest_format.check_image_headers(inputs, state.max_pixels)
    status, content_type, data = state.backend.forward(
        request.method, subpath, body
    )
    return flask.Response(
        data, status=status, content_type=content_type or "application/json"
    )


def search_status():
    import flask

    index = _state().search_index
    if index is None:
        return error(404, _SEARCH_OFF)
    return flask.jsonify(public_status(index.status()))


def search_refresh():
    import flask

    index = _state().search_index
    if index is None:
        return error(404, _SEARCH_OFF)
    index.start()
    return flask.jsonify(public_status(index.status()))


def search():
    """`{"embedding": [...], "top_k": k}` -> the nearest indexed images."""
    import flask

    index = _state().search_index
    if index is None:
        return error(404, _SEARCH_OFF)
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(
            400, 'The body must be JSON: {"embedding": [numbers], "top_k": k}'
        )
    embedding = body.get("embedding")
    if not _finite_numbers(embedding):
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
        hits = index.search(embedding, top_k)
    except IndexNotReady as not_ready:
        return error(503, str(not_ready))
    except ValueError as bad:
        return error(400, str(bad))
    for hit in hits:
        hit["url"] = "/api/images/" + quote(hit["name"], safe="/")
    return flask.jsonify(
        {"results": hits, "status": public_status(index.status())}
    )


def _finite_numbers(values):
    return (
        isinstance(values, list)
        and bool(values)
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool)
            for x in values
        )
        and all(math.isfinite(x) for x in values)
    )


def image(name):
    """An indexed image file, by its name in the search folder."""
    import flask

    index = _state().search_index
    if index is None or not index.contains(name):
        return error(404, f"No indexed image named {name!r}")
    return flask.send_file(index.path(name), max_age=300)


def real_sample(name):
    """A shipped real photo, offered when the model's tower is real."""
    import flask

    path = _state().real_photos.get(name)
    if path is None:
        return error(404, f"There is no real sample photo named {name!r}")
    return flask.send_file(path, max_age=300)


def public_status(status):
    """The index status without local paths, and at most 50 skipped files."""
    status = dict(status)
    status.pop("cache_path", None)
    skipped = status.get("skipped") or []
    status["skipped"] = skipped[:50]
    status["skipped_count"] = len(skipped)
    return status


# (rule, methods, view): what `create_app` registers.
ROUTES = (
    ("/", ["GET"], index),
    ("/favicon.ico", ["GET"], favicon),
    ("/api/config", ["GET"], config),
    ("/v1/models/<path:subpath>", ["GET", "POST"], tf_serving),
    ("/api/search/status", ["GET"], search_status),
    ("/api/search/refresh", ["POST"], search_refresh),
    ("/api/search", ["POST"], search),
    ("/api/images/<path:name>", ["GET"], image),
    ("/api/samples/real/<name>", ["GET"], real_sample),
)
