"""A local web app to try a LiT SavedModel: zero-shot and search.

`keras-lit app --model <export_dir>` (or `python -m keras_lit.app`) loads
an export in-process and serves one page on http://127.0.0.1:8080/ with a
Zero-shot tab (an image, your labels and prompt templates, probabilities
as bars, a shareable link) and a Search tab (a text query against a folder
of images whose embeddings are cached on disk). The page calls the model
through TF Serving's REST predict API, which the app implements; with
`--serving-url` the same calls go to a real TF Serving server instead.

`build_parser` and `run` are what the main `keras-lit` CLI registers;
importing them adds nothing to `import keras_lit` (Flask loads in `run`).
"""

from keras_lit.app.command import build_parser
from keras_lit.app.command import main
from keras_lit.app.command import make_server
from keras_lit.app.command import run
