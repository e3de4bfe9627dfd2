"""One rule, several languages: the shared vectors in `tests/data`.

Each wire-format rule has one Python home; the copies that must exist in
TensorFlow ops (inside `tf.data` and the SavedModel) and in JavaScript (the
app's page, run here under node) are checked against the same vectors:

- image header: `keras_lit.image_header.read_image_header`; TF
  `image_ops.image_format`/`image_header_size` (also through the export);
  JS `imageHeader`.
- canonical text: `zero_shot.weights.canonicalize_text`; TF
  `canonicalize_text_tf`; JS `canonicalize`.
- prompts: `format_prompts`; TF `format_prompts_tf`; JS `formatPrompts`.
- prompt averaging: `average_prompt_embeddings`; TF
  `average_prompt_embeddings_tf`; JS `averagePromptEmbeddings`.

`tests/data/make_wire_vectors.py` wrote the vectors.
"""

import base64
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from serving_fixtures import TEMPLATES
from serving_fixtures import loaded_signatures
from serving_fixtures import tiny_export

from keras_lit import image_header
from keras_lit import image_ops
from keras_lit.export.serving_graph import ServingGraph
from keras_lit.serving import protocol
from keras_lit.zero_shot import weights

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_HINT = (
    "The page's rules are tested under node (Node.js 18 or newer): "
    "apt-get install -y nodejs"
)


def read_vectors(name):
    with open(os.path.join(HERE, "data", name), encoding="utf-8") as file:
        return json.load(file)


IMAGES = read_vectors("image_header_vectors.json")["vectors"]
TEXT = read_vectors("text_vectors.json")
AVERAGING = read_vectors("prompt_averaging_vectors.json")["cases"]


def vector_bytes(vector):
    return base64.b64decode(vector["bytes_b64"])


def expected_header(vector):
    return (vector["format"], vector["width"], vector["height"])


# --- Python homes ---------------------------------------------------------


def test_python_header_reader_on_the_vectors():
    for vector in IMAGES:
        data = vector_bytes(vector)
        header = image_header.read_image_header(data)
        assert tuple(header) == expected_header(vector), vector["name"]
        assert image_header.image_format(data) == vector["format"]
        if not vector["format"]:
            with pytest.raises(image_header.ImageHeaderError, match="not a"):
                image_header.parse_image_header(data)
        elif vector["width"] < 0:
            with pytest.raises(
                image_header.ImageHeaderError, match="unreadable"
            ):
                image_header.parse_image_header(data)
        else:
            assert image_header.parse_image_header(data) == header
    with pytest.raises(TypeError, match="must be bytes"):
        image_header.read_image_header("a string")


def test_python_text_and_averaging_on_the_vectors():
    for vector in TEXT["canonical"]:
        assert weights.canonicalize_text(vector["text"]) == vector["canonical"]
    prompts = TEXT["prompts"]
    assert (
        weights.format_prompts(prompts["class_names"], prompts["templates"])
        == prompts["prompts"]
    )
    for case in AVERAGING:
        actual = weights.average_prompt_embeddings(
            np.asarray(case["prompt_embeddings"], "float32"),
            case["num_templates"],
        )
        np.testing.assert_allclose(actual, case["class_weights"], atol=1e-6)


# --- TensorFlow ops, as the SavedModel runs them --------------------------


def test_tf_header_ops_on_the_vectors():
    """`image_ops` traced in a graph, as in `tf.data` and the export."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def header(data):
        height, width = image_ops.image_header_size(data)
        return image_ops.image_format(data), width, height

    formats = image_ops.image_format(
        tf.constant([vector_bytes(v) for v in IMAGES])
    ).numpy()
    for vector, batch_format in zip(IMAGES, formats):
        data = tf.constant(vector_bytes(vector))
        if vector.get("tf_raises"):
            # TF reads JPEG sizes with libjpeg, which refuses the header.
            with pytest.raises(tf.errors.InvalidArgumentError):
                header(data)
            continue
        image_format, width, height = header(data)
        actual = (image_format.numpy().decode(), int(width), int(height))
        assert actual == expected_header(vector), vector["name"]
        assert batch_format.decode() == vector["format"], vector["name"]


def test_tf_text_and_averaging_on_the_vectors():
    texts = [vector["text"] for vector in TEXT["canonical"]]
    canonical = tf.function(weights.canonicalize_text_tf)(tf.constant(texts))
    assert [value.decode() for value in canonical.numpy()] == [
        vector["canonical"] for vector in TEXT["canonical"]
    ]
    prompts = TEXT["prompts"]
    formatted = weights.format_prompts_tf(
        tf.constant(prompts["class_names"]), prompts["templates"]
    )
    assert [value.decode() for value in formatted.numpy()] == prompts["prompts"]
    for case in AVERAGING:
        actual = weights.average_prompt_embeddings_tf(
            tf.constant(case["prompt_embeddings"], tf.float32),
            case["num_templates"],
        )
        np.testing.assert_allclose(actual, case["class_weights"], atol=1e-6)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, vocabulary):
    return tiny_export(tmp_path_factory, vocabulary)


@pytest.fixture(scope="module")
def signatures(exported):
    return loaded_signatures(exported)


def test_export_refuses_the_vectors_by_their_headers(signatures):
    """Through the SavedModel: the sizes and formats reach the messages."""
    max_pixels = signatures.metadata["max_pixels"]
    for vector in IMAGES:
        data = vector_bytes(vector)
        if (
            vector["format"]
            and vector["width"] * vector["height"] <= max_pixels
        ):
            continue  # Decodable or unreadable: not a header verdict.
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            signatures["embed_image"](image_bytes=tf.constant([data]))
        if vector["format"]:
            expected = (
                f"image_bytes[0]: header claims {vector['height']}x"
                f"{vector['width']} pixels, over the limit of "
                f"max_pixels={max_pixels}"
            )
        else:
            expected = (
                f"image_bytes[0]: not a {image_header.FORMAT_NAMES} image "
                f"({len(data)} bytes with no known image signature)"
            )
        assert expected in info.value.message, vector["name"]


def test_export_signatures_follow_the_protocol_table(signatures):
    """The SavedModel's signatures are exactly `protocol.SIGNATURES`."""
    metadata = signatures.metadata
    sizes = {
        "D": metadata["embedding_dim"],
        "C": len(metadata["class_names"]),
        "k": metadata["top_k"],
    }
    keys = [key for key in signatures if key != protocol.DEFAULT_SIGNATURE]
    assert sorted(keys) == sorted(protocol.SIGNATURES)
    expected = protocol.expected_signature_table(keys, sizes)
    assert metadata["signatures"] == expected
    for key, function in signatures.items():
        inputs = function.structured_input_signature[1]
        assert sorted(inputs) == sorted(protocol.signature(key).inputs)


def test_serving_graph_weights_match_build_zero_shot_weights(exported):
    """The TF prompt twins inside the graph agree with the Python home."""
    model = exported.model
    graph = ServingGraph(
        model,
        templates=TEMPLATES,
        max_pixels=10**6,
        max_text_bytes=100,
        resize="crop",
        class_names=None,
        class_weights=None,
        top_k=1,
    )
    names = ["Red circle", "a T-shirt!"]
    actual = graph._class_weights(tf.constant(names)).numpy()
    expected = weights.build_zero_shot_weights(
        model, names, TEMPLATES, verbose=0
    )
    np.testing.assert_allclose(actual, expected, atol=1e-5)


# --- JavaScript, under node -----------------------------------------------


@pytest.fixture(scope="module")
def javascript_results():
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail(NODE_HINT)
    result = subprocess.run(
        [node, os.path.join(HERE, "wire_vectors.js")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.multiprocess
def test_javascript_rules_on_the_vectors(javascript_results):
    for vector, header in zip(IMAGES, javascript_results["headers"]):
        actual = (header["format"], header["width"], header["height"])
        assert actual == expected_header(vector), vector["name"]
    assert javascript_results["canonical"] == [
        vector["canonical"] for vector in TEXT["canonical"]
    ]
    assert javascript_results["prompts"] == TEXT["prompts"]["prompts"]
    for case, actual in zip(AVERAGING, javascript_results["averages"]):
        np.testing.assert_allclose(actual, case["class_weights"], atol=1e-12)


def test_page_scripts_use_the_shared_rules():
    """app.js calls wire.js, and has no header or canonical rule of its own."""
    static = os.path.join(HERE, "..", "keras_lit", "app", "static")
    with open(os.path.join(static, "app.js"), encoding="utf-8") as file:
        app_js = file.read()
    with open(os.path.join(static, "index.html"), encoding="utf-8") as file:
        html = file.read()
    assert html.index("/static/wire.js") < html.index("/static/app.js")
    for rule in (r"0x89", r"\\p\{P", r"function canonicalize", "0xd8"):
        assert not re.search(rule, app_js), rule
