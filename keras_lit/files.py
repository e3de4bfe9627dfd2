"""Writing a directory so that readers never see it half-written."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def staged_directory(path, prefix):
    """Yields an empty staging directory that replaces `path` on success.

    The staging directory is a sibling of `path` (same file system, so the
    final rename is atomic) named `prefix` + a random suffix. When the
    `with` body raises, it is removed and `path` is left as it was.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield staging
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
