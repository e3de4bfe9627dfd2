"""SavedModels for TensorFlow Serving that take image bytes and raw strings.

`export_for_serving` writes `<export_dir>/<version>/`, a SavedModel whose
signatures take what a client has, encoded image files and text, and do all
the work in the graph: header checks, decoding, resizing, the backbone's
normalisation, tokenisation, both towers, L2 normalisation and the zero-shot
head. No Python runs at serving time.

Signatures (`N` images, `K` texts or class names, `C` baked classes):

- `embed_image`: `image_bytes` string[N] -> `embeddings` float32[N, D].
- `embed_text`: `texts` string[K] -> `embeddings` float32[K, D].
- `zero_shot`: `image_bytes` string[N], `class_names` string[K] ->
  `probabilities` float32[N, K], `top_class` string[N], `top_index` int32[N].
- `classify`: `image_bytes` string[N] -> `probabilities` float32[N, C],
  `top_classes` string[N, k], `top_scores` float32[N, k], `top_indices`
  int32[N, k].

`classify` exists only when `class_names` are given at export (their
prompt-ensembled weights are baked in); `serving_default` is `classify` then,
`embed_image` otherwise. Bad input fails the request with an
`InvalidArgument` error that names the input, the element and the reason,
e.g. `image_bytes[1]: truncated JPEG ...`.

The export loads in any TensorFlow that has the TF Text ops registered:
stock TF Serving, or Python after `import tensorflow_text` (see `load`).

Modules: `exporter` (`export_for_serving` and its arguments),
`serving_graph` (the signature bodies), `image_checks` and `text_checks`
(request checks as TF ops), `publishing` (versions, metadata, warmup) and
`loading` (`load`). The signature table and file names are
`keras_lit.serving.protocol`'s.
"""

from keras_lit.export.exporter import DEFAULT_MAX_CLASS_NAMES
from keras_lit.export.exporter import DEFAULT_MAX_CLASS_NAMES_BYTES
from keras_lit.export.exporter import DEFAULT_MAX_TEXT_BYTES
from keras_lit.export.exporter import RESIZE_MODES
from keras_lit.export.exporter import export_for_serving
from keras_lit.export.loading import ServingSignatures
from keras_lit.export.loading import load
from keras_lit.serving.protocol import BATCHING_FILENAME
from keras_lit.serving.protocol import MAX_WARMUP_RECORDS
from keras_lit.serving.protocol import METADATA_FILENAME
from keras_lit.serving.protocol import SIGNATURES
from keras_lit.serving.protocol import WARMUP_FILENAME

SIGNATURE_KEYS = tuple(SIGNATURES)
