"""
Title: Serving a LiT model with TensorFlow Serving
Author: keras_lit contributors
Date created: 2026/11/30
Last modified: 2026/11/30
Description: Export a LiT model as a SavedModel that takes image bytes and text, inspect it, query it.
Accelerator: None
"""

"""
## Introduction

A trained LiT model answers three kinds of requests: embed these images,
embed these texts, and classify these images into these class names. In
production, clients send what they have: the bytes of JPEG or PNG files and
plain strings. `keras_lit.export.export_for_serving` writes a TensorFlow
SavedModel whose signatures take exactly that and do everything else in the
graph (header checks, decoding, resizing, normalisation, tokenisation, both
towers, the zero-shot head), so no Python runs at serving time and clients
need no preprocessing code.

This example:

1. trains a small LiT model (as in `lit_quickstart.py`, on precomputed
   image embeddings to be quick),
2. exports it for TensorFlow Serving,
3. inspects the export with `saved_model_cli`,
4. calls the SavedModel from plain TensorFlow, the way the server does,
5. writes the REST and gRPC requests a client sends to TensorFlow Serving.

Running `tensorflow_model_server` itself needs Docker or Google's apt
repository; the commands are at the end. Set `TF_SERVING_REST_URL` (e.g.
`http://localhost:8501`) and/or `TF_SERVING_GRPC_TARGET` (e.g.
`localhost:8500`) and the request cells below send their requests to that
server; otherwise they only build them.
"""

"""
## Setup
"""

import json
import os
import shutil
import subprocess
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras_lit  # Imports TensorFlow quietly.
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from keras_lit import export
from keras_lit.demo import captions
from keras_lit.demo import pretrain
from keras_lit.demo import shapes
from keras_lit.serving import client as serving_client

tf.get_logger().setLevel("ERROR")  # No "INFO: Assets written" lines.

"""
## Hyperparameters
"""

SMOKE = os.environ.get("KERAS_LIT_SMOKE") == "1"
CACHE_DIR = os.environ.get(
    "KERAS_LIT_CACHE_DIR", os.path.expanduser("~/.keras/keras_lit")
)
EXPORT_DIR = os.path.abspath("lit_runs/serving/models/lit")  # Written here.
REST_URL = os.environ.get("TF_SERVING_REST_URL")  # e.g. http://localhost:8501
GRPC_TARGET = os.environ.get("TF_SERVING_GRPC_TARGET")  # e.g. localhost:8500
SEED = 0
NUM_PAIRS = 2000
BATCH_SIZE = 128
EPOCHS = 15  # Train for 15 epochs for real results.
if SMOKE:
    NUM_PAIRS, BATCH_SIZE, EPOCHS = 64, 32, 1

keras.utils.set_random_seed(SEED)

"""
## Train a small model

The locked image tower's embeddings are computed once with
`extract_features` and `fit` trains the text tower on them
(`"image_embeddings"` in place of `"images"`); see
`precomputed_embeddings.py` for why and for the on-disk version.
"""

images, labels = shapes.generate_images(SEED, "lit", NUM_PAIRS)
texts = captions.captions_for(SEED, "lit", labels)
backbone, _ = pretrain.pretrain_backbone(
    pretrain.pretrain_settings(seed=SEED, smoke=SMOKE), CACHE_DIR
)
image_encoder = keras_lit.LockedImageEncoder(backbone, pooling="avg")
text_encoder = keras_lit.TextEncoder.from_scratch(
    keras_lit.build_word_piece_vocabulary(texts, vocabulary_size=400),
    projection_dim=image_encoder.output_dim,
)
model = keras_lit.LiTModel(image_encoder, text_encoder)
model.compile()

features = np.concatenate(
    [
        image_encoder.extract_features(image_encoder.preprocess(batch))
        for batch in np.array_split(images, max(1, len(images) // 256))
    ]
)
history = model.fit(
    {"image_embeddings": features, "texts": texts},
    batch_size=BATCH_SIZE,
    epochs=EPOCHS,
    verbose=0,
)
print(f"final loss {history.history['loss'][-1]:.3f}")

"""
## Export

`export_for_serving(model, export_dir)` writes a new numbered version under
`export_dir`, TF Serving's `base_path` for the model: `1/` the first time,
`2/` the next, and so on (running this example again adds a version). A
server watching `export_dir` switches to the newest version by itself. The
version appears atomically (written to a hidden directory, then renamed),
so the server never loads half a model.

With `class_names`, the export also gets a `classify` signature whose
zero-shot class weights (prompt ensemble over `templates`) are computed now
and baked in, and `classify` becomes `serving_default`. The `zero_shot`
signature takes class names in each request instead.
"""

class_names = list(shapes.SHAPES)
path = export.export_for_serving(
    model,
    EXPORT_DIR,
    class_names=class_names,
    templates=list(captions.PROMPT_TEMPLATES["shape"]),
    top_k=3,
)
print("exported to", path)
for root, _, files in sorted(os.walk(path)):
    for name in sorted(files):
        file = os.path.join(root, name)
        print(
            f"  {os.path.relpath(file, path):<50} "
            f"{os.path.getsize(file) / 1024:8.1f} KiB"
        )

"""
`assets.extra/tf_serving_warmup_requests` holds one request per signature
that TF Serving replays when it loads the version, so the first real
request does not pay for graph initialisation. `keras_lit_export.json`
records the signatures, image size, templates, class names and the TF Text
ops the graph needs.
"""

with open(os.path.join(path, "assets.extra", "keras_lit_export.json")) as f:
    metadata = json.load(f)
print(json.dumps({k: metadata[k] for k in ("custom_ops",)}, indent=1))

"""
## Inspect with `saved_model_cli`

`saved_model_cli` ships with TensorFlow. `show --all` prints every
signature with its inputs and outputs: their names, dtypes and shapes
(`-1` is a free batch dimension). This is the contract a client codes
against.
"""

cli = shutil.which("saved_model_cli") or shutil.which(
    "saved_model_cli", path=os.path.dirname(sys.executable)
)
command = (
    [cli]
    if cli
    else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
)
shown = subprocess.run(
    command + ["show", "--dir", path, "--all"],
    capture_output=True,
    text=True,
    check=True,
)
# The SignatureDefs; the list of ops and traced functions after them is long.
print(shown.stdout.split("\nThe MetaGraph with tag set")[0])

"""
## Call the SavedModel from plain TensorFlow

TF Serving loads the same files with TensorFlow's C++ runtime and runs a
signature per request. From Python, `tf.saved_model.load` does the same;
the only requirement is that the TF Text ops used by the tokenizer are
registered, which `import tensorflow_text` does (TF Serving links them in).
Nothing from `keras_lit` or Keras runs here:
`keras_lit.export.load(path)` is a shortcut for these two lines.

The inputs are encoded image files. Let's make a few PNGs and a JPEG of
held-out images.
"""

import tensorflow_text  # noqa: F401  Registers the tokenizer ops.

loaded = tf.saved_model.load(path)
print("signatures:", sorted(loaded.signatures))

eval_images, eval_labels = shapes.generate_images(SEED, "eval", 8)
image_files = [tf.io.encode_png(image).numpy() for image in eval_images[:7]]
image_files.append(tf.io.encode_jpeg(eval_images[7], quality=90).numpy())
kinds = ["PNG" if f.startswith(b"\x89PNG") else "JPEG" for f in image_files]
print(", ".join(f"{k} ({len(f)} bytes)" for k, f in zip(kinds, image_files)))

classify = loaded.signatures["classify"]
outputs = classify(image_bytes=tf.constant(image_files))
print({name: value.shape for name, value in outputs.items()})

figure, axes = plt.subplots(1, 8, figsize=(16, 3))
for axis, image, top, scores, truth in zip(
    axes,
    eval_images,
    outputs["top_classes"].numpy(),
    outputs["top_scores"].numpy(),
    eval_labels["shape"],
):
    best = top[0].decode()
    axis.imshow(image)
    axis.axis("off")
    axis.set_title(
        "\n".join(f"{c.decode()} {s:.2f}" for c, s in zip(top, scores)),
        fontsize=8,
        color="green" if best == shapes.SHAPES[truth] else "red",
    )
plt.suptitle("`classify` signature: top 3 shapes per image")
plt.tight_layout()
plt.show()

"""
`zero_shot` takes the class names with the request, so one export answers
any question. `embed_image` and `embed_text` return L2-normalised
embeddings for search indexes; their dot products rank the same way as
`zero_shot` (which also averages its prompt templates).
"""

colours = list(shapes.COLOURS)
answer = loaded.signatures["zero_shot"](
    image_bytes=tf.constant(image_files), class_names=tf.constant(colours)
)
print("zero_shot colours:", [c.decode() for c in answer["top_class"].numpy()])
print("true colours:     ", [colours[i] for i in eval_labels["colour"]])

image_embeddings = loaded.signatures["embed_image"](
    image_bytes=tf.constant(image_files)
)["embeddings"]
text_embeddings = loaded.signatures["embed_text"](
    texts=tf.constant(["a photo of a red shape", "a photo of a star"])
)["embeddings"]
print("embeddings:", image_embeddings.shape, text_embeddings.shape)
print("cosine similarities [images, texts]:")
print(np.round(image_embeddings.numpy() @ text_embeddings.numpy().T, 2))

"""
Bad input fails the request with an error that names the input, the
element and the reason, and the server keeps serving:
"""

truncated = image_files[7][: len(image_files[7]) // 2]
try:
    classify(image_bytes=tf.constant([image_files[0], truncated]))
except tf.errors.InvalidArgumentError as error:
    print([line for line in error.message.splitlines() if "assertion" in line])

"""
## REST requests

TF Serving's REST API takes JSON. Binary inputs are sent as
`{"b64": "<base64>"}`. The **row** format (`"instances"`) lists examples
and needs the same number of rows in every input; the **columnar** format
(`"inputs"`) lists each input, so `zero_shot` with 8 images and 6 class
names must use it. `keras_lit.serving.client.predict_request_body` builds
both.
"""

body = serving_client.predict_request_body(
    "classify", {"image_bytes": image_files[:2]}, format="row"
)


def shorten(value):
    """Abbreviates base64 strings for printing."""
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten(v) for v in value]
    if isinstance(value, str) and len(value) > 40:
        return value[:24] + f"...({len(value)} chars)"
    return value


print("POST /v1/models/lit:predict")
print(json.dumps(shorten(body), indent=1))

zero_shot_body = serving_client.predict_request_body(
    "zero_shot",
    {"image_bytes": image_files[:1], "class_names": ["red", "blue"]},
    format="columnar",
)
print(json.dumps(shorten(zero_shot_body), indent=1))

"""
The same request with `curl`, from a shell:

```sh
IMG=$(base64 -w0 shape.png)
curl -s localhost:8501/v1/models/lit:predict -d "{
  \"signature_name\": \"classify\",
  \"instances\": [{\"image_bytes\": {\"b64\": \"$IMG\"}}]}"
```

`keras_lit.serving.RestClient` builds the body, posts it with the standard
library's `urllib`, and parses both answer formats into NumPy arrays.
"""

rest = serving_client.RestClient(REST_URL or "http://localhost:8501")
print("would POST to", f"{rest.model_url}:predict")
if REST_URL:
    print(rest.classify(image_files[:2])["top_classes"])
    print(rest.zero_shot(image_files[:2], ["red", "blue"])["top_class"])
else:
    print("TF_SERVING_REST_URL is not set: request built, not sent.")

"""
## gRPC requests

gRPC sends TensorProtos in a `PredictRequest` (from the
`tensorflow-serving-api` package) to `PredictionService/Predict` on port
8500: no base64, no JSON, and lower latency for large batches. Two details
matter in practice: name the `signature_name`, and raise gRPC's default
4 MiB limit on received messages (a batch of probabilities over many
classes exceeds it).
"""

from tensorflow_serving.apis import predict_pb2

request = predict_pb2.PredictRequest()
request.model_spec.name = "lit"
request.model_spec.signature_name = "classify"
request.inputs["image_bytes"].CopyFrom(
    tf.make_tensor_proto(image_files[:2], dtype=tf.string)
)
print(
    f"PredictRequest: {request.ByteSize()} bytes, inputs "
    f"{list(request.inputs)}, signature {request.model_spec.signature_name!r}"
)

"""
The stub call is three lines:

```python
import grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

channel = grpc.insecure_channel(
    "localhost:8500",
    options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)],
)
stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
response = stub.Predict(request, timeout=30.0)
top_classes = tf.make_ndarray(response.outputs["top_classes"])
```

`keras_lit.serving.GrpcClient` wraps this (message limits, version
pinning, errors as `ServingError` with the server's message).
"""

if GRPC_TARGET:
    with serving_client.GrpcClient(
        GRPC_TARGET, model_name="lit"
    ) as grpc_client:
        print(grpc_client.classify(image_files[:2])["top_classes"])
else:
    print("TF_SERVING_GRPC_TARGET is not set: request built, not sent.")

"""
## Run TensorFlow Serving

With Docker, serve the export directory (`EXPORT_DIR`, printed below: the
parent of the version directories) under the model name `lit`:

```sh
docker run --rm -p 8500:8500 -p 8501:8501 \
  -v "$EXPORT_DIR":/models/lit -e MODEL_NAME=lit \
  tensorflow/serving:latest
```

Then run this example again with `TF_SERVING_REST_URL=http://localhost:8501`
and `TF_SERVING_GRPC_TARGET=localhost:8500` in the environment: the request
cells send their requests, and the server picks up the new version the run
exports. Use a server at least as new as the TensorFlow that exported the
model. `serving/README.md` in the
repository covers batching (`classify`, `embed_*` batch; `zero_shot` does
not), the apt install, a multi-model config and every error message.
"""

print(f'EXPORT_DIR="{EXPORT_DIR}"')

"""
## Conclusion

The export is a self-contained SavedModel: bytes and strings in, embeddings
and labels out. `saved_model_cli` shows its contract, plain TensorFlow runs
it exactly as TF Serving will, and the REST and gRPC requests are a few
lines each.
"""
