from keras_lit.models.lit_model import LiTModel
