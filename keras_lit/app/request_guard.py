"""What the app accepts before a request reaches a route (WSGI middleware).

A browser sends some requests to any site without asking it first (a
"simple" cross-site request: `text/plain`, form-encoded or multipart
bodies, no custom headers). If the app took JSON in such a body, any web
page open in the same browser could make a local app run the model. So:

- **JSON endpoints take only `application/json`** (`415` otherwise): a
  cross-site page can send that type only after a CORS preflight, which
  the app never grants.
- **`Origin` is checked** on every request that is not `GET`/`HEAD`: when a
  browser names an origin, its host must be the one the request was sent
  to (`403` otherwise). Clients that send no `Origin` (curl, Python, TF
  Serving clients) are not affected.
- **Bodies count against the size limit however they arrive**: a chunked
  body (no `Content-Length`) is read up to the limit and refused with
  `413` past it, and the connection is then closed (`Connection: close`),
  because the rest of the body is still on the wire.
- **A JSON body is checked before a route parses it**: invalid JSON, JSON
  nested deeper than `MAX_JSON_DEPTH`, and strings that are not valid
  Unicode (a lone surrogate such as `"\\ud800"`) get `400` with a plain
  message, never a `500`.

Every refusal is `{"error": "<message>"}` with the status.
"""

import io
import json
from urllib.parse import urlsplit

MAX_JSON_DEPTH = 64
JSON_PATH_PREFIXES = ("/v1/models/", "/api/search")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class RequestGuard:
    """WSGI middleware enforcing the rules above for `app`.

    Args:
        app: the WSGI app to guard.
        max_bytes: int. The body size limit, in bytes.
        too_large_message: callable `(length or None, max_bytes) -> str`
            for the 413's message.
    """

    def __init__(self, app, max_bytes, too_large_message=None):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.too_large_message = too_large_message or _default_too_large

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method in _SAFE_METHODS:
            return self.app(environ, start_response)
        refusal = check_origin(environ)
        if refusal is not None:
            return _answer(start_response, 403, refusal)
        path = environ.get("PATH_INFO", "")
        is_json_route = path.startswith(JSON_PATH_PREFIXES) and not (
            path.endswith("/refresh")
        )
        if is_json_route:
            refusal = check_content_type(environ.get("CONTENT_TYPE", ""))
            if refusal is not None:
                return _answer(start_response, 415, refusal)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked or (
            environ.get("wsgi.input_terminated")
            and not environ.get("CONTENT_LENGTH")
        ):
            # A chunked body has no length up front: read it here, counting.
            stream = environ["wsgi.input"]
            body = _read_at_most(stream, self.max_bytes + 1)
            if len(body) > self.max_bytes:
                return _answer(
                    start_response,
                    413,
                    self.too_large_message(None, self.max_bytes),
                    close=True,
                )
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["wsgi.input_terminated"] = False
            if is_json_route and body:
                refusal = check_json(body)
                if refusal is not None:
                    return _answer(start_response, 400, refusal)
        elif is_json_route:
            try:
                length = int(environ["CONTENT_LENGTH"])
            except ValueError:
                return _answer(start_response, 400, "Bad Content-Length")
            if 0 < length <= self.max_bytes:
                body = _read_at_most(environ["wsgi.input"], length)
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
                refusal = check_json(body)
                if refusal is not None:
                    return _answer(start_response, 400, refusal)
        return self.app(environ, start_response)


def check_content_type(content_type):
    """`None` for `application/json` (any parameters), else a message."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return None
    received = media_type or "none"
    return (
        "Content-Type must be application/json. Received: "
        f"{received}. (Browsers send other types across sites without "
        "asking, so the app refuses them.)"
    )


def check_origin(environ):
    """`None` when `Origin` is absent or names the requested host."""
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return None
    host = (environ.get("HTTP_HOST") or "").lower()
    parts = urlsplit(origin)
    if origin != "null" and parts.netloc.lower() == host and host:
        return None
    return (
        f"Cross-origin request refused: Origin {origin!r} is not this app "
        f"({host or 'unknown host'}). Open the app's own page, or call the "
        "API from a program (which sends no Origin)."
    )


def check_json(body):
    """`None` for acceptable JSON, else a one-line message (no internals)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as failure:
        return f"Request body is not UTF-8 (byte {failure.start})."
    try:
        value = json.loads(text)
    except RecursionError:
        return f"Request JSON is nested too deeply (over {MAX_JSON_DEPTH})."
    except ValueError as failure:
        return f"JSON Parse error: {failure}"
    depth = json_depth(value, MAX_JSON_DEPTH + 1)
    if depth > MAX_JSON_DEPTH:
        return f"Request JSON is nested too deeply (over {MAX_JSON_DEPTH})."
    if not _valid_unicode(value):
        return (
            "Request JSON holds a string that is not valid Unicode (a lone "
            "surrogate such as \\ud800)."
        )
    return None


def json_depth(value, limit):
    """Nesting depth of a parsed JSON value, counting up to `limit`."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest >= limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _valid_unicode(value):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _read_at_most(stream, count):
    parts, remaining = [], count
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _default_too_large(length, max_bytes):
    return f"Request too large: at most {max_bytes / 1e6:.1f} MB per request."


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
}


def _answer(start_response, status, message, close=False):
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if close:
        headers.append(("Connection", "close"))
    start_response(f"{status} {_REASONS[status]}", headers)
    return [body]
