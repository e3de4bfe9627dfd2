"""The demo web app (`keras-lit app`): REST contract, limits, search cache,
and the page itself driven in headless Chromium.

The browser tests need Debian's Chromium (`/usr/bin/chromium`, or the path
in `KERAS_LIT_CHROMIUM`) and the `playwright` Python package, which drives
it (Playwright's own browser download is not needed). Without them the
tests fail and say how to install them: they are not skipped.

Screenshots go to `test_artifacts/` at the repository root (git-ignored).
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from serving_fixtures import encode
from serving_fixtures import jpeg_claiming
from serving_fixtures import loaded_signatures
from serving_fixtures import png_claiming
from serving_fixtures import sample_images
from serving_fixtures import tiny_export
from serving_fixtures import webp_claiming

from keras_lit import image_ops
from keras_lit.app.backends import LocalBackend
from keras_lit.app.backends import RemoteBackend
from keras_lit.app.samples import JPEG_QUALITY
from keras_lit.app.samples import SAMPLES_DIR
from keras_lit.app.samples import list_samples
from keras_lit.app.samples import render_samples
from keras_lit.app.search_index import SearchIndex
from keras_lit.app.server import AppServer
from keras_lit.app.server import create_app
from keras_lit.demo import shapes
from keras_lit.image_header import read_image_header
from keras_lit.serving.client import RestClient
from keras_lit.zero_shot.weights import canonicalize_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(REPO, "test_artifacts")
CHROMIUM = os.environ.get("KERAS_LIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
INSTALL_HINT = (
    "The app's browser tests drive Debian's Chromium with Playwright. "
    "Install them with:\n"
    "    apt-get update && apt-get install -y chromium chromium-driver\n"
    "    .venv/bin/pip install playwright   # no `playwright install` needed\n"
    "or point KERAS_LIT_CHROMIUM at another Chromium binary."
)
LABELS = ["red circle", "blue square", "green star", "yellow triangle"]
QUERY = "a red circle"
TIMEOUT_MS = 60_000


# --- Fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory, vocabulary):
    return tiny_export(tmp_path_factory, vocabulary)


@pytest.fixture(scope="module")
def signatures(exported):
    return loaded_signatures(exported)


def _shape_png(index, size=64):
    image, _ = shapes.render_image(1, "eval", index, image_size=size)
    return encode(image, "PNG")


@pytest.fixture(scope="module")
def search_folder(tmp_path_factory):
    """Six shape images (two in a subfolder) plus two files that fail."""
    folder = tmp_path_factory.mktemp("search_images")
    (folder / "more").mkdir()
    (folder / ".hidden").mkdir()
    for index in range(6):
        target = folder / ("more" if index >= 4 else ".") / f"shape{index}.png"
        target.write_bytes(_shape_png(index))
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    (folder / "bomb.png").write_bytes(png_claiming(20000, 20000))
    (folder / ".hidden" / "skipped.png").write_bytes(_shape_png(9))
    (folder / "notes.txt").write_text("not an image suffix")
    return str(folder)


@pytest.fixture(scope="module")
def app_server(signatures, search_folder, tmp_path_factory):
    backend = LocalBackend(signatures)
    index = SearchIndex(
        search_folder,
        backend.embed_images,
        backend.model_key(),
        cache_dir=str(tmp_path_factory.mktemp("app_cache")),
    )
    app = create_app(backend, search_index=index)
    with AppServer(app, "127.0.0.1", 0) as server:
        index.start()
        assert index.wait(120)["state"] == "ready"
        server.index = index
        yield server


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}.\n{INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"The playwright package is missing.\n{INSTALL_HINT}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; fails the test on any uncaught JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def _open(page, url):
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def _wait_for_results(page, image_name, labels, path=None):
    """Waits until the bars show `labels` for `image_name`; returns them."""
    page.wait_for_function(
        """([image, labels, path]) => {
            const list = document.getElementById("zs-results");
            return list.dataset.state === "done" &&
                list.dataset.image === image &&
                list.dataset.labels === JSON.stringify(labels) &&
                (path === null || list.dataset.path === path);
        }""",
        arg=[image_name, labels, path],
    )
    bars = page.eval_on_selector_all(
        "#zs-results li",
        "items => items.map(i => [i.dataset.label, "
        "Number(i.dataset.probability), i.querySelector('.value')"
        ".textContent])",
    )
    return {
        "top": page.inner_text("#zs-top-label"),
        "probabilities": {label: p for label, p, _ in bars},
        "shown": {label: text for label, _, text in bars},
        "order": [label for label, _, _ in bars],
        "path": page.get_attribute("#zs-results", "data-path"),
    }


def _wait_for_error(page, element_id, pattern):
    page.wait_for_function(
        "([id, pattern]) => new RegExp(pattern).test("
        "document.getElementById(id).textContent)",
        arg=[element_id, pattern],
    )
    assert page.is_visible(f"#{element_id}")
    return page.inner_text(f"#{element_id}")


def _zero_shot(signatures, image_bytes, labels):
    outputs = signatures["zero_shot"](
        image_bytes=tf.constant([image_bytes]), class_names=tf.constant(labels)
    )
    return (
        outputs["top_class"].numpy()[0].decode("utf-8"),
        outputs["probabilities"].numpy()[0],
    )


def _screenshot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path, full_page=True)
    return path


def _http(url, body=None, headers=None, method=None):
    """`(status, parsed JSON)` for a request; never raises on HTTP errors."""
    data = (
        body
        if body is None or isinstance(body, bytes)
        else (json.dumps(body).encode("utf-8"))
    )
    headers = dict(headers or {})
    if data is not None:
        # The app takes only JSON on its JSON endpoints (issue 18).
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(
        url, data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


# --- The REST API, without a browser -----------------------------------------


def test_rest_api_answers_like_the_signatures(app_server, signatures, exported):
    client = RestClient(app_server.url)
    image = _shape_png(40)
    top, probabilities = _zero_shot(signatures, image, LABELS)
    result = client.zero_shot([image], LABELS)
    assert result["top_class"][0] == top
    np.testing.assert_allclose(
        result["probabilities"][0], probabilities, atol=1e-6
    )

    texts = ["a red circle", "Ünïcödé café"]
    expected = signatures["embed_text"](texts=tf.constant(texts))["embeddings"]
    np.testing.assert_allclose(
        client.embed_text(texts)["embeddings"], expected.numpy(), atol=1e-6
    )
    # The row format ("instances") and a pinned version answer too.
    row_client = RestClient(
        app_server.url, version=exported.version, format="row"
    )
    expected = signatures["embed_image"](image_bytes=tf.constant([image]))
    np.testing.assert_allclose(
        row_client.embed_image([image])["embeddings"],
        expected["embeddings"].numpy(),
        atol=1e-6,
    )
    classified = client.classify([image])
    reference = signatures["classify"](image_bytes=tf.constant([image]))
    assert list(classified["top_classes"][0]) == [
        name.decode() for name in reference["top_classes"].numpy()[0]
    ]
    assert set(client.metadata()) == {
        "classify",
        "embed_image",
        "embed_text",
        "serving_default",
        "zero_shot",
    }
    status, body = _http(app_server.url + "v1/models/lit")
    assert status == 200
    assert body["model_version_status"][0]["state"] == "AVAILABLE"
    assert body["model_version_status"][0]["version"] == str(exported.version)


def test_rest_api_refuses_bad_requests_and_keeps_serving(app_server):
    predict = app_server.url + "v1/models/lit:predict"
    image = _shape_png(41)
    cases = [
        # (body, status, part of the message)
        (b"{not json", 400, "JSON Parse error"),
        ({"signature_name": "zero_shot"}, 400, "Missing 'inputs'"),
        (
            {"signature_name": "nope", "inputs": {"texts": ["a"]}},
            404,
            'signature key "nope" not found',
        ),
        (
            {
                "signature_name": "zero_shot",
                "inputs": {
                    "image_bytes": [{"b64": "!!"}],
                    "class_names": ["a"],
                },
            },
            400,
            "base64",
        ),
        (
            {
                "signature_name": "zero_shot",
                "inputs": {
                    "image_bytes": [_b64(b"hello")],
                    "class_names": ["a"],
                },
            },
            400,
            "not a JPEG, PNG, GIF, BMP or WebP image",
        ),
        (
            {
                "signature_name": "zero_shot",
                "inputs": {"image_bytes": [_b64(image)], "class_names": []},
            },
            400,
            "class_names: empty list",
        ),
        (
            {
                "signature_name": "embed_image",
                "inputs": {"image_bytes": [_b64(png_claiming(20000, 20000))]},
            },
            400,
            "header claims 20000x20000 pixels.*decompression bomb",
        ),
        (
            {
                "signature_name": "embed_image",
                "inputs": [_b64(jpeg_claiming(30000, 30000))],
            },
            400,
            "header claims 30000x30000",
        ),
    ]
    for body, status, message in cases:
        answer_status, answer = _http(predict, body)
        assert answer_status == status, (body, answer)
        assert re.search(message, answer["error"]), answer
    # 50 MB: refused with a JSON 413 before parsing; the body is drained so
    # the client reads the answer instead of a reset connection.
    status, answer = _http(predict, b"x" * 50_000_000)
    assert status == 413
    assert "Request too large" in answer["error"], answer
    assert "10.0 MB" in answer["error"]
    status, answer = _http(
        app_server.url + "v1/models/other:predict",
        {"inputs": {"texts": ["a"]}, "signature_name": "embed_text"},
    )
    assert (status, answer["error"]) == (
        404,
        "Servable not found for request: Latest(other)",
    )
    # DNS rebinding: another site's name in the Host header is refused.
    status, answer = _http(
        app_server.url + "api/config", headers={"Host": "evil.example:80"}
    )
    assert status == 403 and "not allowed" in answer["error"]
    # Still serving.
    result = RestClient(app_server.url).zero_shot([image], LABELS)
    assert result["probabilities"].shape == (1, len(LABELS))


def test_header_reader_matches_image_ops():
    """The app's pure-Python header check reads what the graph reads."""
    images = dict(sample_images())
    images.update(
        png_bomb=png_claiming(20000, 20000),
        jpeg_bomb=jpeg_claiming(30000, 20000),
        webp_bomb=webp_claiming(16000, 9000),
        garbage=b"garbage bytes",
        short_png=b"\x89PNG\r\n\x1a\n",
    )
    for name, data in images.items():
        expected = tuple(int(x) for x in image_ops.image_header_size(data))
        header = read_image_header(data)
        assert (header.height, header.width) == expected, name


# --- The search index --------------------------------------------------------


def test_search_index_caches_by_path_mtime_and_model(
    signatures, search_folder, tmp_path
):
    backend = LocalBackend(signatures)
    folder = tmp_path / "images"
    shutil.copytree(search_folder, folder)
    cache = tmp_path / "cache"

    def build(model_key=backend.model_key()):
        index = SearchIndex(folder, backend.embed_images, model_key, cache)
        return index, index.build()

    index, status = build()
    assert status["state"] == "ready"
    assert (status["images"], status["embedded"], status["from_cache"]) == (
        6,
        8,
        0,
    )
    reasons = {item["name"]: item["reason"] for item in status["skipped"]}
    assert set(reasons) == {"bomb.png", "broken.jpg"}
    assert "20000x20000" in reasons["bomb.png"]
    assert reasons["broken.jpg"].startswith("not a JPEG, PNG, GIF, BMP or")
    assert reasons["broken.jpg"].endswith(
        "(REST clients: base64 in a b64 object)"
    )
    assert "more/shape5.png" in [name for name, _, _ in index.scan()]
    assert os.path.isfile(index.cache_path)
    query = signatures["embed_text"](texts=tf.constant([QUERY]))["embeddings"]
    first = index.search(query.numpy()[0], top_k=3)

    # A restart reuses everything, failures included.
    index, status = build()
    assert (status["embedded"], status["from_cache"]) == (0, 8)
    assert index.search(query.numpy()[0], top_k=3) == first

    # A changed file (new mtime) and a new file are embedded; nothing else.
    changed = folder / "shape0.png"
    changed.write_bytes(_shape_png(30))
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    (folder / "shape6.jpg").write_bytes(
        encode(shapes.render_image(1, "eval", 31)[0], "JPEG")
    )
    (folder / "more" / "shape4.png").unlink()
    index, status = build()
    assert (status["images"], status["embedded"], status["from_cache"]) == (
        6,
        2,
        6,
    )
    # Another model never reads this model's cache.
    index, status = build(model_key="another-model")
    assert (status["embedded"], status["from_cache"]) == (8, 0)


def test_shipped_samples_are_the_generated_ones():
    rendered = render_samples()
    assert sorted(name for name, _, _ in rendered) == list_samples()
    assert len(rendered) == 12
    for name, image, attributes in rendered:
        assert name == f"{attributes['colour']}-{attributes['shape']}.jpg"
        with open(os.path.join(SAMPLES_DIR, name), "rb") as file:
            shipped = tf.io.decode_jpeg(file.read()).numpy().astype("float32")
        # Compared after the same JPEG round trip: JPEG smooths the noise.
        redrawn = tf.io.decode_jpeg(
            tf.io.encode_jpeg(image, quality=JPEG_QUALITY)
        ).numpy()
        difference = float(np.abs(shipped - redrawn).mean())
        assert difference < 0.5, (name, difference)


# --- The page in Chromium ----------------------------------------------------


def test_page_zero_shot_matches_the_signature(
    page, app_server, signatures, tmp_path
):
    _open(page, app_server.url)
    image = _shape_png(57, size=96)
    upload = tmp_path / "my shape.png"
    upload.write_bytes(image)
    page.set_input_files("#zs-file", str(upload))
    page.fill("#zs-labels", "\n".join(LABELS))
    page.click("#zs-run")
    shown = _wait_for_results(page, "my shape.png", LABELS, "zero_shot")

    top, probabilities = _zero_shot(signatures, image, LABELS)
    assert shown["top"] == top
    assert shown["order"][0] == top
    for label, probability in zip(LABELS, probabilities):
        assert shown["probabilities"][label] == pytest.approx(
            float(probability), abs=1e-6
        )
        assert shown["shown"][label] in (
            f"{100 * probability:.1f}%",
            "<0.1%",
            "100%",
        )
    assert page.is_hidden("#zs-error")
    _screenshot(page, "app_zero_shot.png")

    # Edited templates take the embed_text + embed_image path. With the
    # exported templates (reordered: the average is the same) it must give
    # the zero_shot signature's probabilities.
    exported_templates = page.evaluate("litApp.config.templates")
    page.click("#zs-templates-box summary")
    page.fill("#zs-templates", "\n".join(reversed(exported_templates)))
    shown = _wait_for_results(page, "my shape.png", LABELS, "embeddings")
    assert shown["top"] == top
    for label, probability in zip(LABELS, probabilities):
        assert shown["probabilities"][label] == pytest.approx(
            float(probability), abs=1e-5
        )
    assert page.is_visible("#zs-templates-edited")

    # A new template: compare with the same arithmetic done in numpy.
    custom = ["an image of a {}", "a {} drawn on paper!"]
    page.fill("#zs-templates", "\n".join(custom))
    page.fill("#zs-labels", "\n".join(LABELS[:3]))
    shown = _wait_for_results(page, "my shape.png", LABELS[:3], "embeddings")
    prompts = [
        canonicalize_text(t.replace("{}", label))
        for label in LABELS[:3]
        for t in custom
    ]
    text = signatures["embed_text"](texts=tf.constant(prompts))["embeddings"]
    weights = text.numpy().reshape(3, len(custom), -1).mean(axis=1)
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    image_embedding = signatures["embed_image"](
        image_bytes=tf.constant([image])
    )["embeddings"].numpy()[0]
    temperature = page.evaluate("litApp.config.temperature")
    logits = temperature * weights @ image_embedding
    expected = (
        np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    )
    assert shown["top"] == LABELS[int(np.argmax(expected))]
    for label, probability in zip(LABELS, expected):
        assert shown["probabilities"][label] == pytest.approx(
            float(probability), abs=1e-5
        )

    # The share link carries labels and templates; opened, it shows them.
    page.click("#zs-share")
    link = page.input_value("#zs-share-url")
    assert link.startswith(app_server.url + "?")
    assert (
        "label=red+circle" in link and "template=an+image+of+a+%7B%7D" in link
    )
    assert page.url == link  # The address bar is always shareable.
    shared = page.context.new_page()
    _open(shared, link + "&sample=red-ring.jpg")
    assert shared.input_value("#zs-labels").split("\n") == LABELS[:3]
    assert shared.input_value("#zs-templates").split("\n") == custom
    shown = _wait_for_results(shared, "red-ring.jpg", LABELS[:3], "embeddings")
    with open(os.path.join(SAMPLES_DIR, "red-ring.jpg"), "rb") as file:
        sample = file.read()
    # Back to the exported templates: the sample through zero_shot.
    shared.click("#zs-templates-reset")
    shown = _wait_for_results(shared, "red-ring.jpg", LABELS[:3], "zero_shot")
    assert shown["top"] == _zero_shot(signatures, sample, LABELS[:3])[0]
    assert "sample=red-ring.jpg" in shared.url and "template=" not in shared.url


def test_page_search_finds_the_best_image(
    page, app_server, signatures, search_folder
):
    _open(page, app_server.url + "?tab=search")
    assert page.is_visible("#panel-search") and page.is_hidden(
        "#panel-zero-shot"
    )
    page.wait_for_selector("#search-status[data-state=ready]")
    page.fill("#search-query", QUERY)
    page.click("#search-run")
    page.wait_for_function(
        "q => document.getElementById('search-results').dataset.state === "
        "'done' && document.getElementById('search-results').dataset.query "
        "=== q",
        arg=QUERY,
    )
    hits = page.eval_on_selector_all(
        "#search-results figure",
        "items => items.map(i => [i.dataset.name, Number(i.dataset.score)])",
    )
    assert app_server.index.status()["images"] == 6
    # The reference: every indexed file through the signatures.
    files = [name for name, _, _ in app_server.index.scan()]
    files = [f for f in files if f not in ("bomb.png", "broken.jpg")]
    images = []
    for name in files:
        with open(os.path.join(search_folder, name), "rb") as file:
            images.append(file.read())
    image_embeddings = signatures["embed_image"](
        image_bytes=tf.constant(images)
    )["embeddings"].numpy()
    text = signatures["embed_text"](
        texts=tf.constant([canonicalize_text(QUERY)])
    )
    scores = image_embeddings @ text["embeddings"].numpy()[0]
    assert hits[0][0] == files[int(np.argmax(scores))]
    assert len(hits) == len(files)
    for name, score in hits:
        assert score == pytest.approx(
            float(scores[files.index(name)]), abs=1e-5
        )
    assert [score for _, score in hits] == sorted(
        (score for _, score in hits), reverse=True
    )
    # The images load, and the files that failed are listed with reasons.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#search-results img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    page.click("#search-skipped-box summary")
    skipped = page.inner_text("#search-skipped")
    assert "bomb.png" in skipped and "20000x20000" in skipped
    assert "broken.jpg" in skipped
    _screenshot(page, "app_search.png")
    # "Classify this" hands the hit to the Zero-shot tab.
    page.click("#search-results figure >> nth=0 >> button")
    labels = page.input_value("#zs-labels").split("\n")
    _wait_for_results(page, hits[0][0].split("/")[-1], labels)
    assert "tab=search" not in page.url


def test_page_shows_bad_input_errors_and_keeps_serving(
    page, app_server, tmp_path
):
    _open(page, app_server.url + "?label=circle&label=square")
    expected_labels = ["circle", "square"]
    first_sample = list_samples()[0]
    _wait_for_results(page, first_sample, expected_labels)

    def still_serving(sample):
        page.click(f"#zs-samples button[data-sample='{sample}']")
        _wait_for_results(page, sample, expected_labels)
        assert page.is_hidden("#zs-error")

    # A text file: the model itself refuses it.
    notes = tmp_path / "notes.png"
    notes.write_text("Shopping list: eggs, milk.")
    page.set_input_files("#zs-file", str(notes))
    message = _wait_for_error(page, "zs-error", "not a JPEG")
    assert "The input was refused" in message
    assert "no known image signature" in message
    assert page.is_hidden("#zs-preview")
    still_serving("red-ring.jpg")

    # No labels at all.
    page.fill("#zs-labels", "\n  \n")
    page.click("#zs-run")
    _wait_for_error(page, "zs-error", "Enter at least one label")
    page.fill("#zs-labels", "\n".join(expected_labels))
    page.click("#zs-run")
    _wait_for_results(page, "red-ring.jpg", expected_labels)
    # A label that has no words left once canonicalised.
    page.fill("#zs-labels", "circle\n?!")
    page.click("#zs-run")
    _wait_for_error(page, "zs-error", "no words left")
    page.fill("#zs-labels", "\n".join(expected_labels))

    # 50 MB: the page refuses it before sending ...
    big = tmp_path / "big.png"
    big.write_bytes(png_claiming(64, 64)[:33] + os.urandom(50_000_000))
    page.set_input_files("#zs-file", str(big))
    _wait_for_error(page, "zs-error", "50.0 MB: too large")
    still_serving("blue-ring.jpg")
    # ... and so does the server, with a 413 the page shows.
    page.evaluate("litApp.clientChecks = false")
    page.set_input_files("#zs-file", str(big))
    message = _wait_for_error(page, "zs-error", "Request too large")
    assert "at most 10.0 MB" in message
    page.evaluate("litApp.clientChecks = true")
    still_serving("green-circle.jpg")

    # A decompression bomb: a 1x1 PNG whose header claims 20000x20000.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 20000))
    page.set_input_files("#zs-file", str(bomb))
    message = _wait_for_error(page, "zs-error", "20000 × 20000")
    assert "decompression bomb" in message
    assert page.is_hidden("#zs-preview")  # The browser never decodes it.
    page.evaluate("litApp.clientChecks = false")
    page.set_input_files("#zs-file", str(bomb))
    message = _wait_for_error(page, "zs-error", "header claims 20000x20000")
    assert "decompression bomb" in message
    assert page.is_hidden("#zs-preview")
    page.evaluate("litApp.clientChecks = true")
    _screenshot(page, "app_error.png")
    still_serving("black-star.jpg")

    # An empty search.
    page.click("#tab-search")
    page.click("#search-run")
    _wait_for_error(page, "search-error", "Type what you are looking for")
    status, body = _http(app_server.url + "v1/models/lit")
    assert status == 200


def test_page_text_and_header_rules_match_python(page, app_server):
    _open(page, app_server.url)
    texts = [
        "  A photo of a Jack-o'-lantern. ",
        "Grevy's  Zebra!",
        "t-shirt/blouse",
        "a\u00a0b\u2003c\td\ne",
        "Ünïcödé CAFÉ — “quoted” [x] {y} <z> $5 + 1 = 6 ^ ` | ~",
        "snake_case_name",
        "?!",
    ]
    shown = page.evaluate("texts => texts.map(litApp.canonicalize)", texts)
    assert shown == [canonicalize_text(text) for text in texts]

    images = dict(sample_images())
    images.update(
        png_bomb=png_claiming(20000, 20000),
        jpeg_bomb=jpeg_claiming(30000, 20000),
        webp_bomb=webp_claiming(16000, 9000),
        garbage=b"garbage bytes",
    )
    for name, data in images.items():
        header = page.evaluate(
            "b64 => litApp.imageHeader(Uint8Array.from(atob(b64), "
            "c => c.charCodeAt(0)))",
            base64.b64encode(data).decode("ascii"),
        )
        expected = read_image_header(data)
        assert (header["height"], header["width"]) == (
            expected.height,
            expected.width,
        ), name


def test_serving_url_sends_the_page_to_tf_serving(
    browser, signatures, exported, search_folder, tmp_path
):
    """`--serving-url`: the same page and requests, answered by a server.

    TF Serving itself cannot be installed here; the test stand-in
    (`tests/serving_stand_in.py`) serves the same SavedModel over TF
    Serving's REST API.
    """
    from serving_stand_in import StandInServer

    with StandInServer({"lit": (exported.version, exported.path)}) as served:
        backend = RemoteBackend(served.rest_url, export_path=exported.path)
        index = SearchIndex(
            search_folder,
            backend.embed_images,
            backend.model_key(),
            cache_dir=str(tmp_path),
        )
        with AppServer(create_app(backend, index), "127.0.0.1", 0) as server:
            index.start()
            client = RestClient(server.url)
            image = _shape_png(70)
            result = client.zero_shot([image], LABELS)
            top, probabilities = _zero_shot(signatures, image, LABELS)
            assert result["top_class"][0] == top
            np.testing.assert_allclose(
                result["probabilities"][0], probabilities, atol=1e-6
            )
            # The app's own checks still apply before forwarding.
            status, answer = _http(
                server.url + "v1/models/lit:predict",
                {
                    "signature_name": "embed_image",
                    "inputs": {"image_bytes": [_b64(png_claiming(9000, 9000))]},
                },
            )
            assert status == 400 and "app's limit" in answer["error"]
            # The server's own errors come back as it words them.
            status, answer = _http(
                server.url + "v1/models/lit:predict",
                {
                    "signature_name": "zero_shot",
                    "inputs": {"image_bytes": [_b64(image)], "class_names": []},
                },
            )
            assert (
                status == 400 and "class_names: empty list" in answer["error"]
            )

            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            _open(page, server.url + "?label=red+ring&label=blue+square")
            sample = list_samples()[0]
            shown = _wait_for_results(
                page, sample, ["red ring", "blue square"], "zero_shot"
            )
            with open(os.path.join(SAMPLES_DIR, sample), "rb") as file:
                expected = _zero_shot(
                    signatures, file.read(), ["red ring", "blue square"]
                )
            assert shown["top"] == expected[0]
            assert "TF Serving at" in page.inner_text("#model-line")
            assert index.wait(60)["images"] == 6
            context.close()

        # A server that is gone: a readable 502, not a crash.
        gone = RemoteBackend("http://127.0.0.1:9", export_path=exported.path)
        with AppServer(create_app(gone), "127.0.0.1", 0) as server:
            status, answer = _http(server.url + "v1/models/lit")
            assert (
                status == 502 and "Cannot reach TF Serving" in answer["error"]
            )


# --- The command line --------------------------------------------------------


def test_command_line_serves_on_loopback(
    exported, search_folder, tmp_path, capsys
):
    from keras_lit.app import main

    assert main(["--model", str(tmp_path / "x")]) == 2
    assert "keras-lit app: error: --model: no such directory" in (
        capsys.readouterr().err
    )
    assert main(["--serving-url", "localhost:8501"]) == 2
    assert "--serving-url must be TF Serving's REST address" in (
        capsys.readouterr().err
    )

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main(["--model", exported.base_dir, "--port", port]) == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in (
        capsys.readouterr().err
    )

    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_lit.app",
            "--model",
            exported.base_dir,
            "--port",
            "0",
            "--images",
            search_folder,
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"Open (http://127\.0\.0\.1:\d+/)", line)
            if match:
                break
        assert match, "".join(lines) + process.stderr.read()
        url = match.group(1)
        status, config = _http(url + "api/config")
        assert status == 200
        assert config["model_name"] == "lit"
        assert exported.path in config["backend"]["description"]
        status, _ = _http(url + f"v1/models/lit/versions/{exported.version}")
        assert status == 200
        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors
        assert "Stopped." in output
        assert "Traceback" not in errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_build_parser_registers_as_a_subcommand():
    import argparse

    from keras_lit.app import build_parser
    from keras_lit.app import run

    parser = argparse.ArgumentParser(prog="keras-lit")
    commands = parser.add_subparsers(dest="command")
    build_parser(commands.add_parser("app"))
    args = parser.parse_args(["app", "--model", "m"])
    assert (args.model, args.host, args.port, args.serving_url) == (
        "m",
        "127.0.0.1",
        8080,
        None,
    )
    assert callable(run)
