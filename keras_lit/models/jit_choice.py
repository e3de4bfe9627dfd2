"""`LiTModel.compile(jit_compile="auto")`: XLA where it compiles and helps.

Keras' own `"auto"` leaves XLA off on every CPU-only machine and under any
`tf.distribute` strategy. For LiT's steps on one replica XLA is correct
(tested on each tower family against the non-XLA step) and faster on CPU:
1.45x the pairs/s of a locked ViT step and 1.7x of a text-only
(precomputed) step on 2 cores (`benchmarks/RESULTS.md`). So keras_lit turns
it on for one replica when every layer supports it. It stays off:
- on several replicas: XLA on CPU has no kernel for their all-gather
  (`CollectiveGatherV2`), and Keras leaves XLA off under `tf.distribute`;
- on CPU, when the step trains convolutions (an unlocked convolutional
  image tower, the paper's Uu/uu): XLA's CPU convolution gradients are much
  slower than TF's oneDNN kernels (the demo's Uu step: 5.3 s with XLA
  against 1.8-2.1 s without, side by side in one process).
"""

import sys

from keras_lit.compat import all_layers


def choose_jit_compile(
    replicas,
    device_types,
    unsupported_layers=(),
    run_eagerly=False,
    op_determinism=False,
    trains_convolutions=False,
):
    """Whether `jit_compile="auto"` compiles LiT's step with XLA.

    Args:
        replicas: int. Replicas in sync of the model's strategy.
        device_types: the strategy's device types, e.g. `["CPU"]`.
        unsupported_layers: names of layers with `supports_jit=False`.
        run_eagerly: bool. The step runs eagerly (no XLA possible).
        op_determinism: bool. `tf.config.experimental.
            enable_op_determinism()` is on (not every op has a
            deterministic XLA kernel; Keras then leaves XLA off too).
        trains_convolutions: bool. The step computes gradients of
            convolution kernels (an unlocked convolutional image tower).

    Returns:
        `(jit_compile, reason)`: a bool and a few words saying why.
    """
    if run_eagerly:
        return False, "run_eagerly=True"
    if replicas > 1:
        if all(kind == "CPU" for kind in device_types):
            return False, (
                f"{replicas} CPU replicas: XLA on CPU has no kernel for "
                "their all-gather"
            )
        return False, f"{replicas} replicas: Keras leaves XLA off there"
    if unsupported_layers:
        names = ", ".join(sorted(unsupported_layers)[:5])
        return False, f"layers without XLA support: {names}"
    if op_determinism:
        return False, "op determinism is on"
    if trains_convolutions and all(kind == "CPU" for kind in device_types):
        return False, (
            "the step trains convolutions, whose XLA gradients are slower "
            "than TF's on CPU"
        )
    return True, "one replica, every layer supports XLA"


def auto_jit_compile(model, jit_compile="auto", run_eagerly=False, **_):
    """`jit_compile` for `LiTModel.compile`: `"auto"` resolved here.

    `choose_jit_compile` for the model's strategy and layers; prints one
    line saying which. The layers that run in `tf.data`
    (`model.preprocessing_layers()`: tokenizer, packer) do not count.
    """
    if jit_compile != "auto":
        return jit_compile
    import tensorflow as tf
    from tensorflow.python.framework.config import is_op_determinism_enabled

    strategy = model.distribute_strategy
    replicas = strategy.num_replicas_in_sync
    # The default strategy has no worker_devices: one device, a GPU if any.
    device_types = ["GPU" if tf.config.list_logical_devices("GPU") else "CPU"]
    if replicas > 1:
        device_types = [
            tf.DeviceSpec.from_string(device).device_type or "CPU"
            for device in strategy.extended.worker_devices
        ]
    preprocessing = {
        id(layer)
        for owner in model.preprocessing_layers()
        for layer in all_layers(owner)
    }
    unsupported = [
        layer.name
        for layer in all_layers(model)
        if not layer.supports_jit and id(layer) not in preprocessing
    ]
    jit_compile, reason = choose_jit_compile(
        replicas,
        device_types,
        unsupported,
        run_eagerly=bool(run_eagerly),
        op_determinism=is_op_determinism_enabled(),
        trains_convolutions=_trains_convolutions(model.image_encoder),
    )
    print(
        f"keras_lit: LiTModel.compile(jit_compile='auto'): XLA "
        f"{'on' if jit_compile else 'off'} ({reason})",
        file=sys.stderr,
        flush=True,
    )
    return jit_compile


def _trains_convolutions(image_encoder):
    if image_encoder.locked:
        return False
    return any(
        "Conv" in type(layer).__name__  # Conv2D, DepthwiseConv2D, ...
        for layer in all_layers(image_encoder)
        if layer.trainable and layer.weights
    )
