"""`keras_lit.serving` clients against an in-process TF Serving stand-in.

`serving_stand_in.StandInServer` is a TEST STAND-IN for TensorFlow Serving
(the binary cannot be installed here): a real gRPC `PredictionService` and
a real HTTP server that run the exported SavedModel. The request bodies are
also checked against TF Serving's documented JSON formats directly.
"""

import base64
import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images
from serving_fixtures import CLASS_NAMES
from serving_fixtures import encode
from serving_fixtures import loaded_signatures
from serving_fixtures import tiny_export
from serving_stand_in import StandInServer
from serving_stand_in import save_echo_model

from keras_lit.serving import client as client_lib
from keras_lit.serving.client import GrpcClient
from keras_lit.serving.client import RestClient
from keras_lit.serving.client import ServingError

QUERY_CLASSES = ["green star", "red circle", "yellow triangle", "blue"]
TEXTS = ["a red circle", "Ünïcödé café"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, vocabulary):
    return tiny_export(tmp_path_factory, vocabulary)


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    echo_path = save_echo_model(str(tmp_path_factory.mktemp("echo")))
    models = {"lit": (exported.version, exported.path), "echo": (1, echo_path)}
    with StandInServer(models) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def grpc_client(server):
    with GrpcClient(server.grpc_target, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def images():
    pixels = random_images(3, 40, seed=11)
    return [
        encode(pixels[0], "JPEG", quality=90),
        encode(pixels[1], "PNG"),
        encode(pixels[2][:32, :32], "PNG"),
    ]


_DIRECT = {}


def direct(exported, key, **inputs):
    """The signature called in this process: what the server must return."""
    cache_key = (key, tuple((k, tuple(v)) for k, v in sorted(inputs.items())))
    if cache_key not in _DIRECT:
        _DIRECT[cache_key] = _direct(exported, key, **inputs)
    return _DIRECT[cache_key]


def _direct(exported, key, **inputs):
    signatures = loaded_signatures(exported)
    tensors = {k: tf.constant(v, tf.string) for k, v in inputs.items()}
    outputs = {}
    for name, value in signatures[key](**tensors).items():
        value = value.numpy()
        if value.dtype == object:
            value = np.vectorize(bytes.decode, otypes=[object])(value)
        outputs[name] = value
    return outputs


def assert_same_outputs(actual, expected, exact=True):
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        if value.dtype == object:
            assert actual[name].tolist() == value.tolist(), name
        else:
            assert actual[name].dtype == value.dtype, name
            if exact:
                np.testing.assert_array_equal(actual[name], value)
            else:
                np.testing.assert_allclose(actual[name], value, atol=1e-7)


def signature_calls(images):
    return {
        "embed_image": {"image_bytes": images},
        "embed_text": {"texts": TEXTS},
        "zero_shot": {"image_bytes": images, "class_names": QUERY_CLASSES},
        "classify": {"image_bytes": images},
        "serving_default": {"image_bytes": images},
    }


# --- gRPC -------------------------------------------------------------------


def test_grpc_request_proto(images):
    client = GrpcClient("127.0.0.1:1", model_name="lit", version=8)
    request = client.make_request(
        "zero_shot",
        {"image_bytes": images[:2], "class_names": ["cat", "dog", "bird"]},
        output_filter=["top_class"],
    )
    client.close()
    parsed = type(request).FromString(request.SerializeToString())
    assert parsed == request
    assert parsed.model_spec.name == "lit"
    assert parsed.model_spec.signature_name == "zero_shot"
    assert parsed.model_spec.version.value == 8
    assert list(parsed.output_filter) == ["top_class"]
    image_proto = parsed.inputs["image_bytes"]
    assert image_proto.dtype == tf.string.as_datatype_enum
    assert [d.size for d in image_proto.tensor_shape.dim] == [2]
    assert list(image_proto.string_val) == images[:2]
    names = parsed.inputs["class_names"]
    assert [d.size for d in names.tensor_shape.dim] == [3]
    assert list(names.string_val) == [b"cat", b"dog", b"bird"]


def test_grpc_every_signature_round_trips(exported, grpc_client, images):
    for key, inputs in signature_calls(images).items():
        actual = grpc_client.predict(key, inputs)
        assert_same_outputs(actual, direct(exported, key, **inputs))


def test_grpc_convenience_methods(exported, grpc_client, images):
    result = grpc_client.classify(images)
    assert result["top_classes"].shape == (3, 2)
    assert set(result["top_classes"].ravel()) <= set(CLASS_NAMES)
    result = grpc_client.zero_shot(images[:1], QUERY_CLASSES)
    assert result["top_class"][0] in QUERY_CLASSES
    embeddings = grpc_client.embed_text(TEXTS)["embeddings"]
    np.testing.assert_allclose(
        embeddings, exported.model.encode_texts(TEXTS), atol=1e-5
    )
    embeddings = grpc_client.embed_image(images)["embeddings"]
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1, 1e-5)


def test_grpc_response_names_model_version_and_signature(
    exported, grpc_client, images
):
    request = grpc_client.make_request("embed_image", {"image_bytes": images})
    response = grpc_client.stub.Predict(request, timeout=60)
    assert response.model_spec.name == "lit"
    assert response.model_spec.version.value == exported.version
    assert response.model_spec.signature_name == "embed_image"
    proto = response.outputs["embeddings"]
    assert proto.dtype == tf.float32.as_datatype_enum
    assert [d.size for d in proto.tensor_shape.dim] == [3, 64]


def test_grpc_output_filter(grpc_client, images):
    result = grpc_client.predict(
        "classify", {"image_bytes": images}, output_filter=["top_classes"]
    )
    assert sorted(result) == ["top_classes"]


def test_grpc_bad_input_is_invalid_argument(grpc_client, images):
    truncated = images[0][: len(images[0]) // 2]
    with pytest.raises(ServingError) as info:
        grpc_client.classify([images[1], truncated])
    assert info.value.code == "INVALID_ARGUMENT"
    assert "image_bytes[1]: truncated JPEG" in info.value.message
    with pytest.raises(ServingError) as info:
        grpc_client.zero_shot(images, [])
    assert info.value.code == "INVALID_ARGUMENT"
    assert "class_names: empty list" in info.value.message
    # The server keeps serving.
    assert grpc_client.classify(images[:1])["probabilities"].shape == (1, 3)


def test_grpc_unknown_model_or_version(server, images):
    with GrpcClient(server.grpc_target, model_name="nope") as client:
        with pytest.raises(ServingError) as info:
            client.classify(images)
    assert info.value.code == "NOT_FOUND"
    with GrpcClient(server.grpc_target, version=1) as client:
        with pytest.raises(ServingError) as info:
            client.classify(images)
    assert info.value.code == "NOT_FOUND"


def test_grpc_metadata_lists_the_signatures(grpc_client, exported):
    metadata = grpc_client.metadata()
    expected = loaded_signatures(exported).metadata["signatures"]
    assert sorted(metadata) == sorted(expected)
    for key, signature in expected.items():
        assert metadata[key]["inputs"] == signature["inputs"]
        assert metadata[key]["outputs"] == signature["outputs"]


def test_grpc_messages_over_4_mib(server):
    payload = bytes(range(256)) * (5 * 4096)  # 5 MiB
    with GrpcClient(server.grpc_target, model_name="echo") as client:
        echoed = client.predict("echo", {"payload_bytes": [payload]})
    assert echoed["echo_bytes"][0] == payload
    # gRPC's default 4 MiB limit would refuse the same answer.
    small = 4 * 1024 * 1024
    with GrpcClient(
        server.grpc_target, model_name="echo", max_message_bytes=small
    ) as client:
        with pytest.raises(ServingError) as info:
            client.predict("echo", {"payload_bytes": [payload]})
    assert info.value.code == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize(
    "key, inputs, message",
    [
        ("classify", {"image_bytes": ["cat.jpg"]}, "must be bytes"),
        ("classify", {"image_bytes": b"\xff\xd8"}, "must be a list"),
        ("embed_text", {"texts": [3]}, "`texts[0]` must be a string"),
        ("embed_text", {"text": ["a"]}, "takes inputs ['texts']"),
    ],
)
def test_client_checks_inputs_before_sending(key, inputs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        client_lib.check_inputs(key, inputs)


# --- REST -------------------------------------------------------------------


def b64(data):
    return base64.b64encode(data).decode("ascii")


def test_rest_row_body_is_the_documented_format(images):
    body = client_lib.predict_request_body(
        "classify", {"image_bytes": images[:2]}, format="row"
    )
    # TF Serving REST API: "instances" is a list of per-example objects,
    # and binary values are {"b64": <base64>}.
    assert body == {
        "signature_name": "classify",
        "instances": [
            {"image_bytes": {"b64": b64(images[0])}},
            {"image_bytes": {"b64": b64(images[1])}},
        ],
    }
    body = client_lib.predict_request_body(
        "embed_text", {"texts": ["a cat", "café"]}, format="row"
    )
    assert json.loads(json.dumps(body)) == {
        "signature_name": "embed_text",
        "instances": [{"texts": "a cat"}, {"texts": "café"}],
    }


def test_rest_columnar_body_is_the_documented_format(images):
    body = client_lib.predict_request_body(
        "zero_shot",
        {"image_bytes": images[:1], "class_names": ["cat", "dog"]},
        format="columnar",
    )
    # "inputs" maps each input name to its whole (batched) value; inputs may
    # have different 0-th dimensions.
    assert body == {
        "signature_name": "zero_shot",
        "inputs": {
            "image_bytes": [{"b64": b64(images[0])}],
            "class_names": ["cat", "dog"],
        },
    }


def test_rest_row_format_needs_equal_rows(images):
    with pytest.raises(ValueError, match="format='columnar'"):
        client_lib.predict_request_body(
            "zero_shot",
            {"image_bytes": images[:1], "class_names": ["cat", "dog"]},
            format="row",
        )


@pytest.mark.parametrize(
    "body, key, expected",
    [
        # One output: its name is omitted.
        (
            {"predictions": [[0.5, 1.0]]},
            "embed_text",
            {"embeddings": [[0.5, 1]]},
        ),
        ({"outputs": [[0.5, 1.0]]}, "embed_image", {"embeddings": [[0.5, 1]]}),
        # Several outputs: a list of objects (row) or one object (columnar).
        (
            {"predictions": [{"top_class": "cat", "top_index": 1}]},
            "zero_shot",
            {"top_class": ["cat"], "top_index": [1]},
        ),
        (
            {"outputs": {"top_class": ["cat"], "top_index": [1]}},
            "zero_shot",
            {"top_class": ["cat"], "top_index": [1]},
        ),
    ],
)
def test_rest_parses_documented_responses(body, key, expected):
    parsed = client_lib.parse_predict_body(body, key)
    assert sorted(parsed) == sorted(expected)
    for name, value in expected.items():
        assert parsed[name].tolist() == value
    if "top_index" in parsed:
        assert parsed["top_index"].dtype == np.int32
        assert parsed["top_class"].dtype == object


@pytest.mark.parametrize("format", ["row", "columnar"])
def test_rest_every_signature_matches_grpc(exported, server, images, format):
    client = RestClient(server.rest_url, timeout=120, format=format)
    calls = signature_calls(images)
    del calls["serving_default"]  # The same function as classify.
    for key, inputs in calls.items():
        if format == "row" and key == "zero_shot":
            # Rows need as many class names as images.
            inputs = dict(inputs, class_names=QUERY_CLASSES[:3])
        actual = client.predict(key, inputs)
        # JSON floats printed by Python round-trip float32 exactly.
        assert_same_outputs(actual, direct(exported, key, **inputs))


def test_rest_errors_carry_the_message(server, images):
    client = RestClient(server.rest_url, timeout=120)
    with pytest.raises(ServingError) as info:
        client.embed_image([images[0], b""])
    assert info.value.code == "HTTP 400"
    assert "image_bytes[1]: empty string" in info.value.message
    with pytest.raises(ServingError) as info:
        RestClient(server.rest_url, model_name="nope").embed_text(["a"])
    assert info.value.code == "HTTP 404"


def test_rest_metadata_matches_grpc(server, grpc_client):
    assert RestClient(server.rest_url).metadata() == grpc_client.metadata()


def test_command_line_client(server, images, tmp_path, capsys):
    path = tmp_path / "image.png"
    path.write_bytes(images[1])
    code = client_lib.main(
        ["--server", server.grpc_target, "--signature", "classify", str(path)]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["top_classes"][0]) == 2
    code = client_lib.main(
        [
            "--rest",
            server.rest_url,
            "--signature",
            "embed_text",
            "--texts",
            "a red circle",
        ]
    )
    assert code == 0
    assert len(json.loads(capsys.readouterr().out)["embeddings"][0]) == 64
    code = client_lib.main(
        ["--server", server.grpc_target, "--signature", "embed_image"]
    )
    assert code == 1
    assert "image_bytes: empty batch" in capsys.readouterr().err
