"""The offline embedded demo: LiT on procedurally drawn shapes.

`run_demo()` draws the data, pretrains (and caches) a KerasCV image tower,
LiT-tunes a text tower against it, evaluates zero-shot classification,
retrieval and the paper's Lu/Uu/uu setups, exports a SavedModel and writes a
report. `keras-lit demo` and `make demo` call it.
"""

from keras_lit.demo.captions import LABEL_SETS
from keras_lit.demo.captions import PROMPT_TEMPLATES
from keras_lit.demo.pipeline import demo_settings
from keras_lit.demo.pipeline import run_demo
from keras_lit.demo.report import format_results
from keras_lit.demo.shapes import ATTRIBUTES
from keras_lit.demo.shapes import generate_images
