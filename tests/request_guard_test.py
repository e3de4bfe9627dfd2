"""The app's request guard, around a stand-in app (no model needed)."""

import io
import json

import pytest
from werkzeug.test import Client

from keras_lit.app.request_guard import MAX_JSON_DEPTH
from keras_lit.app.request_guard import RequestGuard
from keras_lit.app.request_guard import check_json


def echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"received": len(body)}).encode()]


@pytest.fixture(scope="module")
def client():
    return Client(RequestGuard(echo, max_bytes=1000))


PREDICT = "/v1/models/lit:predict"


def post(client, path=PREDICT, body=b"{}", **headers):
    headers.setdefault("Content-Type", "application/json")
    return client.post(path, data=body, headers=headers)


def test_only_json_reaches_json_routes(client):
    assert post(client).status_code == 200
    assert post(client, **{"Content-Type": "application/json; charset=utf-8"})
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]:
        response = post(client, **{"Content-Type": content_type})
        assert response.status_code == 415, content_type
        assert "application/json" in response.get_json()["error"]
    response = post(client, "/api/search", **{"Content-Type": "text/plain"})
    assert response.status_code == 415
    # Other POSTs (no JSON body) are not concerned.
    assert post(client, "/api/search/refresh", b"", **{"Content-Type": ""})


def test_origin_must_be_the_app_itself(client):
    own = {"Origin": "http://localhost", "Host": "localhost"}
    assert post(client, **own).status_code == 200
    for origin in ["http://evil.example", "null", "http://localhost:1"]:
        response = post(client, Origin=origin, Host="localhost")
        assert response.status_code == 403, origin
        assert "Cross-origin" in response.get_json()["error"]
    # GET is never refused for its origin.
    assert client.get("/", headers={"Origin": "http://x"}).status_code == 200


def test_chunked_bodies_count_against_the_limit(client):
    environ_overrides = {"HTTP_TRANSFER_ENCODING": "chunked"}
    for size, status in [(999, 200), (1001, 413)]:
        body = b"[" + b" " * (size - 2) + b"]"
        response = client.post(
            PREDICT,
            input_stream=io.BytesIO(body),
            headers={"Content-Type": "application/json"},
            environ_overrides=environ_overrides,
        )
        assert response.status_code == status, size
        if status == 413:
            assert response.headers["Connection"] == "close"
        else:
            assert response.get_json() == {"received": size}


def test_bad_json_is_400_never_500(client):
    deep = b"[" * 100_000 + b"]" * 100_000
    cases = {
        b"[" * 5000 + b"]" * 5000: "nested too deeply",
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1): "nested",
        b'{"instances": ["\\ud800"]}': "not valid Unicode",
        b'{"\\udfff": 1}': "not valid Unicode",
        b"{nope": "JSON Parse error",
        b"\xff\xfe": "not UTF-8",
    }
    for body, message in cases.items():
        response = post(Client(RequestGuard(echo, max_bytes=10**6)), body=body)
        assert response.status_code == 400, body[:20]
        assert message in response.get_json()["error"]
    assert check_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is None
    assert check_json(deep) is not None
