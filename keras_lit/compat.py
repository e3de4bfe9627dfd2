"""Every workaround for a Keras 3.15 (or KerasHub/KerasCV) behaviour.

The one module of `keras_lit` allowed to touch private Keras attributes or
modules. Each workaround names the upstream issue (or describes the
behaviour exactly where there is none) and has a canary test in
`tests/compat_test.py` (or `tests/multi_worker_test.py`) that FAILS once
Keras no longer needs it: then delete the workaround and its canary.

This module imports nothing else from `keras_lit` except `distribute`, so
every layer of the package may use it.
"""

import functools

import keras
import tensorflow as tf
from keras import ops

from keras_lit.distribute import is_multi_worker
from keras_lit.distribute import replica_context


def set_trainable(layer, value):
    """`layer.trainable = value` that also reaches the sublayers.

    Keras 3.15 (on TensorFlow): `layer.trainable = value` is a no-op when
    the flag already equals `value` (TF's attribute tracking short-circuits
    `x.a = x.a`), even if the sublayers disagree. A backbone deserialised
    with `trainable=False` keeps trainable variables in its sublayers, so
    "locking" it again would do nothing. Calling the property setter
    recurses into every sublayer. No upstream issue; canary:
    `test_keras_still_skips_an_unchanged_trainable_flag`.
    """
    type(layer).trainable.fset(layer, value)


def clip_global_gradients(optimizer, gradients, replicas):
    """Makes the optimizer clip the dense, global gradient.

    Three Keras 3.15 behaviours would otherwise break "N replicas equal one
    device" (the first two under the default `global_clipnorm`); canaries in
    `tests/compat_test.py`:
    - Its norm of an `IndexedSlices` gradient (the token embeddings) adds up
      the squares of repeated rows before summing them, so it is wrong
      whenever a token repeats in a batch. Dense gradients have the true
      norm.
    - It clips before summing gradients over replicas (keras-team/keras
      behaviour of `BaseOptimizer.apply` under `tf.distribute`: clipping
      runs in replica context, the sum happens in the variable update), so
      it would bound each replica's partial gradient. Sum here instead,
      clip with the optimizer's own settings, and hand each replica
      `1 / replicas` of the result: the optimizer's sum rebuilds the clipped
      global gradient, and its own clipping is then a no-op. This costs one
      more gradient all-reduce per step, only when clipping is on.
    - Its `LossScaleOptimizer` checks only the first replica's gradients for
      inf/NaN (it assumes they were all-reduced already), so one replica's
      overflow would slip into the update. Loss-scaled steps on several
      replicas take the summed path too, clipping or not.

    Args:
        optimizer: the model's optimizer (possibly a `LossScaleOptimizer`).
        gradients: list of gradients (or `None`), one per variable.
        replicas: number of replicas in sync.
    """
    scale = 1.0
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    if loss_scaled:
        scale = optimizer.dynamic_scale
        optimizer = optimizer.inner_optimizer
    if optimizer.loss_scale_factor is not None:
        scale = scale * optimizer.loss_scale_factor
    clips = (optimizer.clipnorm, optimizer.global_clipnorm)
    context = replica_context()
    several = replicas > 1 and context is not None
    if not (any(clips) or optimizer.clipvalue or (loss_scaled and several)):
        return gradients
    present = [i for i, g in enumerate(gradients) if g is not None]
    dense = [tf.convert_to_tensor(gradients[i]) for i in present]
    gradients = list(gradients)
    if not several:
        for i, gradient in zip(present, dense):
            gradients[i] = gradient
        return gradients
    summed = context.all_reduce("SUM", dense)
    clipped = optimizer._clip_gradients([g / scale for g in summed])
    for i, gradient in zip(present, clipped):
        gradients[i] = gradient * (scale / replicas)
    return gradients


def multi_worker_logs(logs, strategy):
    """Step logs shaped `[1]` under `MultiWorkerMirroredStrategy`.

    Keras 3.15 reduces logs over workers with `axis=0`, which fails for
    scalars ("Invalid reduction dimension 0 for input with 0 dimensions",
    keras-team/keras#20329). Canary:
    `multi_worker_test.py::test_keras_still_needs_the_multi_worker_workaround`.
    """
    if not is_multi_worker(strategy):
        return logs
    return {name: ops.reshape(value, [1]) for name, value in logs.items()}


class TrainerWorkarounds:
    """Mixin for a `keras.Model` that builds all its layers in `__init__`.

    Overrides Keras's private `_maybe_symbolic_build`, which `fit` and
    `evaluate` call to build state from a first batch:
    - Under `MultiWorkerMirroredStrategy` Keras 3.15 fails there ("Attempt
      to convert a value (PerReplica...)", keras-team/keras#20585). A model
      whose layers are built in `__init__` only needs its optimizer, which
      needs no data. Canary:
      `multi_worker_test.py::test_keras_still_needs_the_multi_worker_workaround`.
    - Without a strategy Keras defers building the optimizer to its first
      `apply`, inside the trace of the first step. In an XLA-compiled step
      (`jit_compile=True`) TensorFlow must lift those slot variables out of
      the function, which fails ("We failed to lift variable creations out
      of this tf.function") when `apply` runs under
      `tf.control_dependencies`, as `LiTModel.train_step`'s does (no
      upstream issue found). The optimizer is built here, before the trace.
      Canary:
      `compat_test.py::test_keras_still_builds_the_optimizer_inside_xla`.

    The model may define `preprocessing_layers()` (layers that own no state
    and are built on their first call, e.g. in `tf.data`) and
    `check_first_iterator(iterator)` (validation before the first step).
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and hasattr(self, "check_first_iterator"):
            self.check_first_iterator(iterator)
        preprocessing = {
            id(layer)
            for sublayer in getattr(self, "preprocessing_layers", list)()
            for layer in sublayer._flatten_layers()
        }
        unbuilt = [
            layer
            for layer in self._flatten_layers()
            if not layer.built and id(layer) not in preprocessing
        ]
        compile_metrics = getattr(self, "_compile_metrics", None)
        if unbuilt or (
            compile_metrics is not None and not compile_metrics.built
        ):
            super()._maybe_symbolic_build(
                iterator=iterator, data_batch=data_batch
            )
            unbuilt = [layer for layer in unbuilt if not layer.built]
        # Unbuilt layers of a locked tower add no trainable variable (e.g.
        # KerasHub EfficientNet's unused squeeze-excite convolutions when
        # `squeeze_and_excitation=0`): they must not hold the optimizer back.
        unbuilt = [layer for layer in unbuilt if layer.trainable]
        if (
            not unbuilt
            and self.optimizer is not None
            and not self.optimizer.built
        ):
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)


def get_preset_file(handle, path):
    """One file of a KerasHub preset (Kaggle, Hugging Face, GCS, local).

    KerasHub exports no public function for this, so this reaches into
    `keras_hub.src.utils.preset_utils.get_file` (with KerasHub's caching).
    """
    from keras_hub.src.utils.preset_utils import get_file

    return get_file(handle, path)


@functools.lru_cache(maxsize=None)
def keras_cv_backbone_presets():
    """KerasCV's backbone preset table (private module), `{}` if absent."""
    try:
        from keras_cv.src.models.backbones.backbone_presets import (
            backbone_presets,
        )
    except ImportError:
        return {}
    return backbone_presets


def all_layers(layer):
    """`layer` and every layer nested in it, depth first.

    Keras 3 has no public recursive listing (`Model.layers` is one level
    deep); its own `_flatten_layers` is what `Layer.weights` walks.
    """
    return list(layer._flatten_layers())


def fuse_batch_normalization(layer):
    """Trains every `BatchNormalization` in `layer` with TF's fused kernel.

    Keras 3.15's `BatchNormalization` on TensorFlow computes a training
    call's moments and normalisation, and their gradients, as a dozen
    separate ops per layer (`moments`, then arithmetic) where Keras 2 ran
    one `FusedBatchNormV3`, whose oneDNN kernels make a single pass. In the
    demo's Uu/uu step (KerasCV ResNetV2, 19 of them, batch 128 at 64 px)
    those ops took ~45% of the step's CPU time. This swaps `call` on each
    instance (not the class: other models, configs and saved files are
    untouched; idempotent). A training call on a 4-D channels-last input,
    without mask, renorm or `synchronized`, takes the fused kernel and
    updates the moving statistics exactly as Keras does (momentum, biased
    batch variance); every other call runs Keras' own code. No upstream
    issue; canary: `test_keras_batch_norm_still_trains_unfused`.

    Returns:
        The number of layers swapped now.
    """
    swapped = 0
    for sublayer in all_layers(layer):
        if isinstance(sublayer, keras.layers.BatchNormalization) and (
            "call" not in vars(sublayer)
        ):
            sublayer.call = functools.partial(_fused_call, sublayer)
            swapped += 1
    return swapped


def _fused_call(layer, inputs, training=None, mask=None):
    fusable = (
        training
        and layer.trainable
        and mask is None
        and not layer.renorm
        and not getattr(layer, "synchronized", False)
        and len(inputs.shape) == 4
        and layer.axis in (-1, 3)
    )
    if not fusable:
        return type(layer).call(layer, inputs, training=training, mask=mask)
    # As Keras: float32 statistics whatever the compute dtype.
    x = tf.cast(inputs, "float32")
    channels = x.shape[-1]
    scale = layer.gamma if layer.scale else tf.ones([channels])
    offset = layer.beta if layer.center else tf.zeros([channels])
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x,
        tf.cast(scale, "float32"),
        tf.cast(offset, "float32"),
        epsilon=layer.epsilon,
        data_format="NHWC",
        is_training=True,
    )[:3]
    # The fused kernel returns the Bessel-corrected variance (0 for one
    # value per channel); Keras' moving average uses the biased one.
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
    variance = variance * (count - 1.0) / count
    momentum = layer.momentum
    for variable, value in (
        (layer.moving_mean, mean),
        (layer.moving_variance, variance),
    ):
        value = ops.cast(value, variable.dtype)
        variable.assign(variable * momentum + value * (1.0 - momentum))
    return ops.cast(outputs, layer.compute_dtype)
