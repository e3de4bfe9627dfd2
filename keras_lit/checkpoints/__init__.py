"""Import Google's published LiT checkpoints (JAX/Flax `.npz`) into Keras.

`LiTModel.from_preset("lit_b16b_2")` (or a `.npz` path) goes through
`load_lit_checkpoint`; `keras-lit import` through `import_checkpoint`.
"""

from keras_lit.checkpoints.architecture import infer_architecture
from keras_lit.checkpoints.builder import build_lit_model
from keras_lit.checkpoints.importer import import_checkpoint
from keras_lit.checkpoints.importer import is_lit_checkpoint
from keras_lit.checkpoints.importer import load_lit_checkpoint
from keras_lit.checkpoints.published import PUBLISHED_MODELS
from keras_lit.checkpoints.published import list_published_models
from keras_lit.checkpoints.reader import convert_pre_linen
from keras_lit.checkpoints.reader import read_checkpoint
from keras_lit.checkpoints.tokenizers import load_tokenizer
from keras_lit.checkpoints.weight_map import check_keys
from keras_lit.checkpoints.weight_map import weight_map
