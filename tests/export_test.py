"""`export_for_serving` and `load`: the SavedModel contract TF Serving sees.

No TF Serving binary exists on this machine, so the contract is tested the
way the server uses it: a fresh process with only TensorFlow and TF Text
loads the export and calls every signature by key and keyword;
`saved_model_cli` lists the signatures; the warmup file is parsed and
replayed; bad inputs fail with `InvalidArgument` errors naming the input.
"""

import base64
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_lit_model
from conftest import random_images
from serving_fixtures import BATCHING_PARAMETERS
from serving_fixtures import CLASS_NAMES
from serving_fixtures import FAKE_OLD_VERSION
from serving_fixtures import TEMPLATES
from serving_fixtures import TOP_K
from serving_fixtures import decode_like_serving
from serving_fixtures import encode
from serving_fixtures import jpeg_claiming
from serving_fixtures import loaded_signatures
from serving_fixtures import png_claiming
from serving_fixtures import sample_images
from serving_fixtures import tiny_export
from serving_fixtures import webp_claiming

from keras_lit import export as export_lib
from keras_lit.export.serving_graph import ServingGraph
from keras_lit.zero_shot.weights import build_zero_shot_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
SIGNATURES = ["classify", "embed_image", "embed_text", "zero_shot"]
TEXTS = [
    "a red circle",
    "",
    "Ünïcödé café, a BLUE square!",
    "a small green star " * 100,  # 1.9 kB: under the limit, truncated.
]
QUERY_CLASSES = ["green star", "red circle", "a yellow triangle", "blue"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, vocabulary):
    return tiny_export(tmp_path_factory, vocabulary)


@pytest.fixture(scope="module")
def signatures(exported):
    return loaded_signatures(exported)


def good_png():
    return encode(random_images(1, 32, seed=5)[0], "PNG")


def reference_embeddings(model, images):
    """`model.encode_images` on the pixels the export feeds the tower."""
    return model.encode_images(
        np.stack([decode_like_serving(b) for b in images])
    )


def reference_probabilities(model, image_embeddings, class_names):
    weights = build_zero_shot_weights(model, class_names, TEMPLATES)
    logits = float(model.temperature) * image_embeddings @ weights.T
    logits = logits - logits.max(axis=-1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)


def call(signatures, key, **inputs):
    tensors = {k: tf.constant(v, tf.string) for k, v in inputs.items()}
    return {k: v.numpy() for k, v in signatures[key](**tensors).items()}


def error_message(signatures, key, **inputs):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        call(signatures, key, **inputs)
    return info.value.message


# --- Layout -----------------------------------------------------------------


def test_version_directory_is_published_atomically(exported):
    # A fake version 7 existed: auto-increment chose 8.
    assert exported.version == FAKE_OLD_VERSION + 1
    assert exported.path == os.path.join(exported.base_dir, "8")
    # No temporary directory is left behind.
    assert sorted(os.listdir(exported.base_dir)) == ["7", "8", "notes"]
    files = set(os.listdir(exported.path))
    assert {"saved_model.pb", "variables", "assets.extra"} <= files
    with open(os.path.join(exported.path, "batching_params.pbtxt")) as file:
        assert file.read() == BATCHING_PARAMETERS + "\n"


def test_failed_export_leaves_no_version(tmp_path, vocabulary, monkeypatch):
    archive_class = type(keras.export.ExportArchive())

    def write_half_then_fail(self, filepath, **kwargs):
        os.makedirs(filepath)
        with open(os.path.join(filepath, "saved_model.pb"), "wb") as file:
            file.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(archive_class, "write_out", write_half_then_fail)
    (tmp_path / "3").mkdir()
    with pytest.raises(OSError, match="disk full"):
        export_lib.export_for_serving(make_lit_model(vocabulary), tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["3"]


def test_existing_version_is_never_overwritten(exported):
    with pytest.raises(ValueError, match="Version 8 already exists"):
        export_lib.export_for_serving(
            exported.model, exported.base_dir, version=8
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "model"}, "must be a keras_lit.models.LiTModel"),
        ({"version": 0}, "`version` must be a positive int"),
        ({"version": "3"}, "`version` must be a positive int"),
        ({"top_k": 0}, "`top_k` must be a positive int"),
        ({"max_pixels": -1}, "`max_pixels` must be a positive int"),
        ({"max_text_bytes": 0}, "`max_text_bytes` must be a positive int"),
        ({"max_class_names": 0}, "`max_class_names` must be a positive int"),
        (
            {"max_class_names_bytes": "1k"},
            "`max_class_names_bytes` must be a positive int",
        ),
        ({"resize": "squash"}, "`resize` must be one of 'stretch', 'crop'"),
        ({"class_names": []}, "non-empty list"),
        ({"class_names": "cat"}, "not a single string"),
        ({"templates": ["a photo"]}, "must contain '{}'"),
        ({"export_dir": "gs://bucket/lit"}, "must be a local directory"),
        ({"batching_parameters": {"a": 1}}, "text-format BatchingParameters"),
    ],
)
def test_bad_export_arguments(exported, tmp_path, kwargs, message):
    arguments = {"model": exported.model, "export_dir": str(tmp_path)}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        export_lib.export_for_serving(**arguments)
    assert not [name for name in os.listdir(tmp_path) if name.isdigit()]


def test_load_finds_latest_version_and_explains_bad_paths(exported, tmp_path):
    signatures = export_lib.load(exported.base_dir)  # 7 is empty: picks 8
    assert signatures.path == exported.path
    assert sorted(signatures) == sorted(SIGNATURES + ["serving_default"])
    assert signatures.metadata["class_names"] == CLASS_NAMES
    with pytest.raises(ValueError, match="does not exist"):
        export_lib.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="numbered version directories"):
        export_lib.load(tmp_path)


# --- The contract, in a fresh process ---------------------------------------

FRESH_PROCESS = r"""
import base64
import glob
import json
import os
import sys

path, inputs_file, outputs_file, repo, mode = sys.argv[1:6]
# `None` in sys.modules makes `import x` fail as if x were not installed.
# keras_lit and the Keras libraries it builds on must not be importable.
BLOCKED = ["keras_lit", "keras_hub", "keras_cv", "keras_nlp"]
if mode == "ops_only":
    # Closer to TF Serving, which runs no Python: no Keras, no TF Text
    # Python package; only TF Text's kernels (shared libraries) are loaded.
    BLOCKED += ["keras", "tf_keras", "tensorflow_text"]
for name in BLOCKED:
    sys.modules[name] = None
sys.path[:] = [
    p for p in sys.path
    if p not in ("", ".", repo)
    and not os.path.isdir(os.path.join(p, "keras_lit"))
]
try:
    import keras_lit  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("keras_lit must not be importable here")

import tensorflow as tf

if mode == "ops_only":
    site = os.path.dirname(os.path.dirname(tf.__file__))
    pattern = os.path.join(site, "tensorflow_text", "python", "ops", "*.so")
    for library in sorted(glob.glob(pattern)):
        tf.load_op_library(library)
else:
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

with open(inputs_file) as file:
    inputs = json.load(file)
images = [base64.b64decode(b) for b in inputs["image_bytes"]]
loaded = tf.saved_model.load(path)
calls = {
    "embed_image": dict(image_bytes=images),
    "embed_text": dict(texts=inputs["texts"]),
    "zero_shot": dict(image_bytes=images, class_names=inputs["class_names"]),
    "classify": dict(image_bytes=images),
    "serving_default": dict(image_bytes=images),
}
results = {}
for key, arguments in calls.items():
    tensors = {k: tf.constant(v, tf.string) for k, v in arguments.items()}
    outputs = loaded.signatures[key](**tensors)
    results[key] = {
        name: (
            [
                [v.decode() for v in row] if isinstance(row, list)
                else row.decode()
                for row in value.numpy().tolist()
            ]
            if value.dtype == tf.string
            else value.numpy().tolist()
        )
        for name, value in outputs.items()
    }
results["modules"] = sorted(
    name
    for name, module in sys.modules.items()
    if module is not None and name.partition(".")[0] in BLOCKED
)
with open(outputs_file, "w") as file:
    json.dump(results, file)
"""


def start_fresh_process(exported, workdir, mode):
    """Starts `python -I` on FRESH_PROCESS; returns (process, outputs file)."""
    images = list(sample_images().values())
    inputs = {
        "image_bytes": [base64.b64encode(b).decode() for b in images],
        "texts": TEXTS,
        "class_names": QUERY_CLASSES,
    }
    inputs_file = workdir / f"{mode}_inputs.json"
    outputs_file = workdir / f"{mode}_outputs.json"
    inputs_file.write_text(json.dumps(inputs))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHON")
    }
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    arguments = [exported.path, inputs_file, outputs_file, REPO, mode]
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", FRESH_PROCESS, *map(str, arguments)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, outputs_file


@pytest.fixture(scope="module")
def fresh_processes(exported, tmp_path_factory):
    """Outputs of two fresh processes, run side by side.

    `"tensorflow_text"`: imports only tensorflow and tensorflow_text, with
    keras_lit, keras_hub and keras_cv unimportable. `"ops_only"`: not even
    Keras or TF Text's Python package; only TF Text's op libraries.
    """
    workdir = tmp_path_factory.mktemp("fresh_processes")
    started = {
        mode: start_fresh_process(exported, workdir, mode)
        for mode in ("tensorflow_text", "ops_only")
    }
    outputs = {}
    for mode, (process, outputs_file) in started.items():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{mode}: {stderr[-3000:]}"
        outputs[mode] = json.loads(outputs_file.read_text())
    return list(sample_images().values()), outputs


@pytest.fixture(scope="module")
def fresh_process_outputs(fresh_processes):
    images, outputs = fresh_processes
    return images, outputs["tensorflow_text"]


def test_fresh_process_cannot_import_keras_lit(fresh_process_outputs):
    _, outputs = fresh_process_outputs
    # Blocked: keras_lit, keras_hub, keras_cv. (TF Text itself imports
    # Keras, for its own Keras layers; the export does not need it, which
    # the ops-only process shows.)
    assert outputs["modules"] == []


def test_ops_only_process_without_keras_gives_the_same_outputs(
    fresh_processes,
):
    _, outputs = fresh_processes
    ops_only, expected = outputs["ops_only"], outputs["tensorflow_text"]
    assert ops_only["modules"] == []
    for key in ["embed_image", "embed_text", "zero_shot", "classify"]:
        assert sorted(ops_only[key]) == sorted(expected[key])
        for name, value in expected[key].items():
            np.testing.assert_array_equal(
                np.array(ops_only[key][name]), np.array(value)
            )


def test_fresh_process_embed_image_matches_model(
    exported, fresh_process_outputs
):
    images, outputs = fresh_process_outputs
    expected = reference_embeddings(exported.model, images)
    actual = np.array(outputs["embed_image"]["embeddings"])
    assert actual.shape == (len(images), exported.model.embedding_dim)
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)


def test_fresh_process_embed_text_matches_model(
    exported, fresh_process_outputs
):
    _, outputs = fresh_process_outputs
    expected = exported.model.encode_texts(TEXTS)
    actual = np.array(outputs["embed_text"]["embeddings"])
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)


def test_fresh_process_zero_shot_matches_model(exported, fresh_process_outputs):
    images, outputs = fresh_process_outputs
    embeddings = reference_embeddings(exported.model, images)
    expected = reference_probabilities(
        exported.model, embeddings, QUERY_CLASSES
    )
    zero_shot = outputs["zero_shot"]
    np.testing.assert_allclose(
        zero_shot["probabilities"], expected, atol=1e-5, rtol=0
    )
    top = np.argmax(expected, axis=-1)
    assert zero_shot["top_index"] == top.tolist()
    assert zero_shot["top_class"] == [QUERY_CLASSES[i] for i in top]


def test_fresh_process_classify_matches_model(exported, fresh_process_outputs):
    images, outputs = fresh_process_outputs
    embeddings = reference_embeddings(exported.model, images)
    expected = reference_probabilities(exported.model, embeddings, CLASS_NAMES)
    classify = outputs["classify"]
    np.testing.assert_allclose(
        classify["probabilities"], expected, atol=1e-5, rtol=0
    )
    top = np.argsort(-expected, axis=-1)[:, :TOP_K]
    assert classify["top_indices"] == top.tolist()
    assert classify["top_classes"] == [
        [CLASS_NAMES[i] for i in row] for row in top
    ]
    np.testing.assert_allclose(
        classify["top_scores"],
        np.take_along_axis(expected, top, axis=-1),
        atol=1e-5,
        rtol=0,
    )
    assert outputs["serving_default"] == classify


def test_zero_shot_with_baked_names_equals_classify(signatures):
    images = list(sample_images().values())[:3]
    classify = call(signatures, "classify", image_bytes=images)
    zero_shot = call(
        signatures, "zero_shot", image_bytes=images, class_names=CLASS_NAMES
    )
    np.testing.assert_allclose(
        zero_shot["probabilities"], classify["probabilities"], atol=1e-6
    )


def test_stretch_resize_matches_encode_images(exported):
    graph = ServingGraph(
        exported.model,
        templates=TEMPLATES,
        max_pixels=10**6,
        max_text_bytes=100,
        resize="stretch",
        class_names=None,
        class_weights=None,
        top_k=1,
    )
    images = [random_images(1, 64, seed=9)[0][:40], random_images(1, 32)[0]]
    data = [encode(image, "PNG") for image in images]
    actual = graph.embed_image(tf.constant(data))["embeddings"].numpy()
    # Raw images of any size: `encode_images` resizes them itself.
    expected = np.concatenate(
        [exported.model.encode_images(i[None]) for i in images]
    )
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)


# --- What the server reads --------------------------------------------------


def parse_saved_model_cli(text):
    """`saved_model_cli show --all` -> {key: {(io, name): (dtype, shape)}}."""
    signatures = {}
    for block in re.split(r"\nsignature_def\['", text)[1:]:
        key = block[: block.index("'")]
        tensors = {}
        pattern = (
            r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+"
            r"shape: \(([-\d, ]*)\)"
        )
        for direction, name, dtype, shape in re.findall(pattern, block):
            dims = tuple(int(d) for d in shape.replace(" ", "").split(",") if d)
            tensors[(direction[:-1], name)] = (dtype, dims)
        method = re.search(r"Method name is: (\S*)", block).group(1)
        signatures[key] = {"method": method, "tensors": tensors}
    return signatures


def parse_readme_table():
    """The signature table of serving/README.md, in the same form."""
    with open(os.path.join(REPO, "serving", "README.md")) as file:
        text = file.read()
    rows = re.findall(
        r"^\| `(\w+)` \| (input|output) \| `(\w+)` \| `(\w+)` \| "
        r"`\(([-\w, ]*)\)` \|",
        text,
        flags=re.M,
    )
    assert rows, "serving/README.md lost its signature table"
    table = {}
    for key, direction, name, dtype, shape in rows:
        dims = tuple(d.strip() for d in shape.split(","))
        table.setdefault(key, {})[(direction, name)] = (dtype, dims)
    return table


def test_saved_model_cli_lists_the_documented_signatures(exported):
    result = subprocess.run(
        [
            os.path.join(VENV_BIN, "saved_model_cli"),
            "show",
            "--dir",
            exported.path,
            "--all",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    listed = parse_saved_model_cli(result.stdout)
    sizes = {
        "-1": -1,
        "D": exported.model.embedding_dim,
        "C": len(CLASS_NAMES),
        "k": TOP_K,
    }
    documented = parse_readme_table()
    assert sorted(documented) == sorted(SIGNATURES)
    for key, tensors in documented.items():
        expected = {
            io_name: (dtype, tuple(sizes[d] for d in dims))
            for io_name, (dtype, dims) in tensors.items()
        }
        assert listed[key]["tensors"] == expected, key
        assert listed[key]["method"] == "tensorflow/serving/predict"
    assert listed["serving_default"] == listed["classify"]


def test_warmup_file_matches_the_signatures(exported, signatures):
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(
        exported.path, "assets.extra", "tf_serving_warmup_requests"
    )
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    assert 0 < len(records) <= 1000
    seen = set()
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        key = request.model_spec.signature_name
        seen.add(key)
        function = signatures[key]
        expected = function.structured_input_signature[1]
        assert sorted(request.inputs) == sorted(expected)
        tensors = {}
        for name, proto in request.inputs.items():
            assert proto.dtype == expected[name].dtype.as_datatype_enum
            assert len(proto.tensor_shape.dim) == expected[name].shape.rank
            tensors[name] = tf.constant(tf.make_ndarray(proto))
        # TF Serving replays these when loading; they must succeed.
        outputs = function(**tensors)
        assert all(
            np.all(np.isfinite(v))
            for v in outputs.values()
            if v.dtype.is_floating
        )
    assert seen == set(signatures)


def test_metadata_describes_the_export(signatures, exported):
    metadata = signatures.metadata
    assert metadata["templates"] == TEMPLATES
    assert metadata["image_size"] == [32, 32]
    assert metadata["embedding_dim"] == exported.model.embedding_dim
    backbone = type(exported.model.image_encoder.backbone)
    assert metadata["image_backbone"] == (
        backbone.__module__.split(".")[0] + "." + backbone.__name__
    )
    assert metadata["top_k"] == TOP_K
    assert metadata["signatures"]["embed_text"]["inputs"] == {
        "texts": {"dtype": "string", "shape": [None]}
    }


# --- Bad input: InvalidArgument naming the input, never a crash -------------


def test_garbage_bytes(signatures):
    message = error_message(
        signatures,
        "embed_image",
        image_bytes=[good_png(), b"this is not an image at all"],
    )
    assert "image_bytes[1]: not a JPEG, PNG, GIF, BMP or WebP image" in message
    assert "27 bytes" in message


def test_base64_text_instead_of_bytes(signatures):
    text = base64.b64encode(good_png())
    message = error_message(signatures, "classify", image_bytes=[text])
    assert "image_bytes[0]: not a JPEG" in message
    assert "base64 in a b64 object" in message


def test_empty_string(signatures):
    message = error_message(
        signatures, "classify", image_bytes=[good_png(), b""]
    )
    assert "image_bytes[1]: empty string" in message


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_truncated_image(signatures, image_format):
    data = encode(random_images(1, 40, seed=2)[0], image_format)
    message = error_message(
        signatures,
        "embed_image",
        image_bytes=[good_png(), good_png(), data[: len(data) // 2]],
    )
    name = "WebP" if image_format == "WEBP" else image_format
    assert f"image_bytes[2]: truncated {name}" in message


def test_truncated_jpeg_header(signatures):
    data = encode(random_images(1, 40, seed=2)[0], "JPEG")
    message = error_message(
        signatures, "zero_shot", image_bytes=[data[:20]], class_names=["cat"]
    )
    assert "image_bytes[0]: truncated JPEG" in message


@pytest.mark.parametrize(
    "make, size",
    [
        (png_claiming, (100_000, 100_000)),
        (jpeg_claiming, (60_000, 60_000)),
        (webp_claiming, (16_000, 16_000)),
    ],
)
def test_header_claiming_a_huge_image(signatures, make, size):
    message = error_message(
        signatures, "embed_image", image_bytes=[good_png(), make(*size)]
    )
    assert f"image_bytes[1]: header claims {size[0]}x{size[1]} pixels" in (
        message
    )
    assert "max_pixels=50000000" in message
    assert "decompression bomb" in message


@pytest.mark.parametrize(
    "key, inputs, expected",
    [
        ("embed_image", {"image_bytes": []}, "image_bytes: empty batch"),
        ("classify", {"image_bytes": []}, "image_bytes: empty batch"),
        ("embed_text", {"texts": []}, "texts: empty batch"),
    ],
)
def test_empty_batch(signatures, key, inputs, expected):
    assert expected in error_message(signatures, key, **inputs)


def test_empty_class_list(signatures):
    message = error_message(
        signatures, "zero_shot", image_bytes=[good_png()], class_names=[]
    )
    assert "class_names: empty list" in message


def test_class_name_without_words(signatures):
    message = error_message(
        signatures,
        "zero_shot",
        image_bytes=[good_png()],
        class_names=["cat", " ?! "],
    )
    assert "class_names[1]: no words left" in message


def test_100_kb_text_is_refused_with_the_limit(signatures):
    long_text = "a red circle " * 7700  # 100,100 bytes
    message = error_message(
        signatures, "embed_text", texts=["a red circle", long_text]
    )
    assert (
        f"texts[1]: {len(long_text)} bytes, over the limit of "
        "max_text_bytes=4096"
    ) in message
    message = error_message(
        signatures,
        "zero_shot",
        image_bytes=[good_png()],
        class_names=["cat", "dog", long_text],
    )
    assert "class_names[2]: 100100 bytes" in message


def test_invalid_utf8_text(signatures):
    message = error_message(
        signatures, "embed_text", texts=["ok", b"caf\xe9 au lait"]
    )
    assert "texts[1]: not valid UTF-8" in message


def test_signatures_still_serve_after_errors(signatures, exported):
    # After every failure above, the same loaded model keeps answering.
    data = good_png()
    outputs = call(signatures, "embed_image", image_bytes=[data])
    expected = reference_embeddings(exported.model, [data])
    np.testing.assert_allclose(outputs["embeddings"], expected, atol=1e-5)


def test_serving_config_files_parse():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(REPO, "serving", "models.config")) as file:
        config = text_format.Parse(
            file.read(), model_server_config_pb2.ModelServerConfig()
        )
    (model,) = config.model_config_list.config
    assert (model.name, model.model_platform) == ("lit", "tensorflow")
    # BatchingParameters' proto is not in tensorflow-serving-api: check the
    # fields against its definition (session_bundle_config.proto).
    fields = {
        "max_batch_size",
        "batch_timeout_micros",
        "max_enqueued_batches",
        "num_batch_threads",
        "thread_pool_name",
        "allowed_batch_sizes",
        "pad_variable_length_inputs",
        "enable_large_batch_splitting",
        "max_execution_batch_size",
    }
    with open(os.path.join(REPO, "serving", "batching_parameters.txt")) as f:
        lines = [
            line.strip()
            for line in f
            if line.strip() and not line.startswith("#")
        ]
    assert lines
    for line in lines:
        match = re.fullmatch(r"(\w+) \{ value: (\d+) \}", line)
        assert match and match.group(1) in fields, line
