"""Hides the C++ log lines TensorFlow prints while it starts.

TF 2.21 logs through absl before `TF_CPP_MIN_LOG_LEVEL` takes effect
("All log messages before absl::InitializeLog()...", oneDNN and CUDA
notices), so the stderr file descriptor itself is redirected while TF is
imported. Python exceptions still propagate. Set `KERAS_LIT_TF_LOGS=1` to
see everything.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_stderr():
    if os.environ.get("KERAS_LIT_TF_LOGS"):
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
