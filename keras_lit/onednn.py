"""Turns on TensorFlow's oneDNN CPU kernels where TF would leave them off.

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, while it is imported. Left
unset, TF 2.21's Linux x86 wheels use oneDNN only on CPUs with one of
AVX512_VNNI, AVX512_BF16, AVX_VNNI, AMX_TILE, AMX_INT8 or AMX_BF16
(`DefaultOneDnnPolicy` in `tensorflow/core/util/port.cc`); on other CPUs
they fall back to Eigen. On a 2-core AVX2-only AMD EPYC, TF's float32
4096 x 4096 matmul ran at 61 GFLOP/s with that default and at 131 GFLOP/s
with oneDNN (issue 19), and LiT training at 1.5x the pairs/s. So
`import keras_lit` sets `TF_ENABLE_ONEDNN_OPTS=1` before it imports
TensorFlow on such CPUs (Linux x86-64 with AVX2 and FMA) and says so in one
line. A value the user set (`0`, `1`, `true`, `false`) always wins. If
TensorFlow was imported before keras_lit, the choice is already made: it
says so instead.
"""

import os
import platform
import sys

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
# TF's own rule: any of these (as /proc/cpuinfo spells them) and TF turns
# oneDNN on by itself.
TF_DEFAULT_ON_FLAGS = (
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
# What the measured speed-up needs (oneDNN's AVX2 kernels).
REQUIRED_FLAGS = ("avx2", "fma")


def onednn_choice(
    environ_value, cpu_flags, system, machine, tensorflow_imported
):
    """What keras_lit does about oneDNN: a pure function of its inputs.

    Args:
        environ_value: the user's `TF_ENABLE_ONEDNN_OPTS`, or `None`.
        cpu_flags: set of CPU feature flags, `/proc/cpuinfo` spelling.
        system: `platform.system()`, e.g. `"Linux"`.
        machine: `platform.machine()`, e.g. `"x86_64"`.
        tensorflow_imported: bool. TF is already in `sys.modules`.

    Returns:
        `(action, message)`. `action` is `"set"` (turn oneDNN on),
        `"too_late"` (it would, but TF already decided) or `"keep"`
        (leave it to TF or the user); `message` is the line to print, or
        `None`.
    """
    if environ_value is not None:
        return "keep", None  # the user's choice
    if system != "Linux" or machine not in ("x86_64", "AMD64", "amd64"):
        return "keep", None  # only measured on Linux x86-64
    flags = {flag.lower() for flag in cpu_flags}
    if any(flag in flags for flag in TF_DEFAULT_ON_FLAGS):
        return "keep", None  # TF turns oneDNN on by itself
    if not all(flag in flags for flag in REQUIRED_FLAGS):
        return "keep", None  # no AVX2/FMA: no measured speed-up
    if tensorflow_imported:
        return "too_late", (
            "keras_lit: TensorFlow was imported before keras_lit, so its "
            "faster oneDNN CPU kernels stay off on this CPU (no AVX-512 "
            "VNNI/BF16, AVX-VNNI or AMX). Import keras_lit first, or set "
            f"{VARIABLE}=1 before starting Python."
        )
    return "set", (
        f"keras_lit: set {VARIABLE}=1: TensorFlow leaves its oneDNN CPU "
        "kernels off on CPUs without AVX-512 VNNI/BF16, AVX-VNNI or AMX, "
        f"where they train about 1.5x faster. Set {VARIABLE}=0 to keep "
        "TensorFlow's default."
    )


def read_cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (Linux `/proc/cpuinfo`); empty elsewhere."""
    try:
        with open(path) as file:
            for line in file:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def onednn_environment():
    """`{"TF_ENABLE_ONEDNN_OPTS": "1"}` where keras_lit turns oneDNN on.

    `onednn_choice` for this process; prints its message, if any, to
    stderr. `import keras_lit` applies the result before importing
    TensorFlow. Returns `{}` when there is nothing to set.
    """
    action, message = onednn_choice(
        os.environ.get(VARIABLE),
        read_cpu_flags(),
        platform.system(),
        platform.machine(),
        "tensorflow" in sys.modules,
    )
    if message:
        print(message, file=sys.stderr, flush=True)
    return {VARIABLE: "1"} if action == "set" else {}
