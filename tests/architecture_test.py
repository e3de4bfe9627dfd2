"""The house rules of keras_lit, read from the source with `ast`.

Imports run one way, downwards (README "Architecture"): towers and maths at
the bottom, then the model, then data/evaluation/export, then the faces a
person runs. No import cycles; no private Keras attribute outside
`keras_lit/compat.py`; the model core stays small.
"""

import ast
import pathlib

import keras
import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "keras_lit"

# Rank of each top-level part of keras_lit: a module may import its own rank
# or lower ones, never a higher one. A new top-level module or package must
# be given a rank here.
RANKS = {
    # 0: towers, maths and what they stand on.
    "_quiet": 0,
    "version": 0,
    "distribute": 0,
    "compat": 0,
    "onednn": 0,
    "presets": 0,
    "losses": 0,
    "image_ops": 0,
    "layers": 0,
    "preprocessing": 0,
    "image_header": 0,
    "image_frames": 0,
    "image_structure": 0,
    "schedules": 0,
    "command_line": 0,
    "files": 0,
    # 1: the model.
    "models": 1,
    # 2: data, evaluation, export (and what builds on the model).
    "data": 2,
    "zero_shot": 2,
    "callbacks": 2,
    "export": 2,
    "precompute": 2,
    "serving": 2,
    "checkpoints": 2,
    "real": 2,
    # 3: the faces a person runs.
    "config": 3,
    "cli": 3,
    "demo": 3,
    "app": 3,
    "__main__": 3,
    "__init__": 3,
}
# Data readers know no model: `keras_lit.data` imports rank 0 only.
DATA_MAX_RANK = 0


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources():
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path, modules):
    """keras_lit modules that `path` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            # `from keras_lit.x import y`: `y` may be a submodule.
            names = [f"{module}.{alias.name}" for alias in node.names]
            names = [name if name in modules else module for name in names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "keras_lit")
    return found


@pytest.fixture(scope="module")
def graph():
    sources = _sources()
    return {module: _imports(path, sources) for module, path in sources.items()}


def _rank(module):
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in RANKS, (
        f"{module} has no rank: add {top!r} to RANKS in "
        "tests/architecture_test.py and to the README's Architecture section"
    )
    return RANKS[top]


def test_imports_run_one_way(graph):
    upward = []
    for module, imports in graph.items():
        for imported in imports:
            if _rank(imported) > _rank(module):
                upward.append(f"{module} -> {imported}")
            if module.startswith("keras_lit.data") and (
                _rank(imported) > DATA_MAX_RANK
                and not imported.startswith("keras_lit.data")
            ):
                upward.append(f"{module} -> {imported} (data knows no model)")
    assert not upward, "lower layers import higher ones:\n" + "\n".join(upward)


def test_no_import_cycle(graph):
    # Depth-first search; the package `__init__`s are left out (each one
    # re-exports its children, which is not a dependency of the children).
    edges = {
        module: {i for i in imports if i in graph and i != module}
        for module, imports in graph.items()
    }
    packages = {
        m for m in graph if (PACKAGE.parent / m.replace(".", "/")).is_dir()
    }
    done, path = set(), []

    def visit(module):
        if module in path:
            cycle = path[path.index(module) :] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for imported in sorted(edges[module] - packages):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(set(graph) - packages):
        visit(module)


def _private_names(objects):
    return {
        name
        for obj in objects
        for name in dir(obj)
        if name.startswith("_") and not name.startswith("__")
    }


def _own_private_names(trees):
    """`_names` that keras_lit itself defines (methods, `x._y = ...`)."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(
                node.ctx, ast.Store
            ):
                names.add(node.attr)
    return names


def _private_imports(node):
    names = [getattr(node, "module", None) or ""]
    names += [alias.name for alias in node.names]
    return [
        name
        for name in names
        if name.split(".")[:2]
        in (["keras", "src"], ["keras_hub", "src"], ["keras_cv", "src"])
    ]


def test_no_private_keras_attribute_outside_compat():
    # Methods keras_lit classes must not override, and attributes of Keras
    # objects it must not read (unless keras_lit defines them itself).
    subclassed = [
        keras.Model(),
        keras.layers.Dense(1),
        keras.losses.Loss(),
        keras.metrics.Mean(),
        keras.callbacks.Callback(),
    ]
    overridable = _private_names(subclassed)
    used = _private_names(
        subclassed
        + [
            keras.optimizers.AdamW(),
            keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
        ]
    )
    trees = {
        module: ast.parse(path.read_text(encoding="utf-8"))
        for module, path in _sources().items()
        if module != "keras_lit.compat"
    }
    used -= _own_private_names(trees.values())
    found = []
    for module, tree in trees.items():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Attribute) and node.attr in used:
                names = [node.attr]
            elif isinstance(node, ast.FunctionDef) and node.name in overridable:
                names = [f"def {node.name}"]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [f"import {n}" for n in _private_imports(node)]
            found += [f"{module}:{node.lineno}: {name}" for name in names]
    assert not found, "private Keras API outside compat.py:\n" + "\n".join(
        found
    )


def _lines(path):
    return path.read_text(encoding="utf-8").count("\n")


def test_model_core_stays_small():
    lit_model = PACKAGE / "models" / "lit_model.py"
    assert _lines(lit_model) < 300
    tree = ast.parse(lit_model.read_text(encoding="utf-8"))
    (train_step,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "train_step"
    ]
    assert train_step.end_lineno - train_step.lineno + 1 < 30
    # Files of the model core and the towers: under 500 lines, or a reason
    # on their first line.
    for path in [
        *PACKAGE.glob("models/*.py"),
        *PACKAGE.glob("layers/*.py"),
        PACKAGE / "compat.py",
    ]:
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        assert _lines(path) < 500 or "500 lines" in "".join(first), path


@pytest.mark.multiprocess
def test_import_leaves_the_tensorflow_runtime_unstarted():
    """Importing keras_lit creates no tensor: TF's runtime must still accept
    `MultiWorkerMirroredStrategy` and logical devices afterwards ("Collective
    ops must be configured at program startup")."""
    import subprocess
    import sys

    modules = sorted(
        _module_name(path)
        for path in PACKAGE.rglob("*.py")
        if path.name != "__main__.py"
    )
    script = (
        "import importlib, sys\n"
        "from tensorflow.python.eager import context\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "    if context.context()._context_handle is not None:\n"
        "        sys.exit('TF runtime started by importing ' + name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *modules],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
