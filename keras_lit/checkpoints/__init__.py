"""Import Google's published LiT checkpoints (JAX/Flax `.npz`) into Keras.

`LiTModel.from_preset("lit_b16b_2")` (or a `.npz` path) goes through
`load_lit_checkpoint`, which this package registers with
`keras_lit.presets.register_model_loader` (`import keras_lit` imports it);
`keras-lit import` goes through `import_checkpoint`.
"""

from keras_lit import presets as _presets
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

_presets.register_model_loader(is_lit_checkpoint, load_lit_checkpoint)
