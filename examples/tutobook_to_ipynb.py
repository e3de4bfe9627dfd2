"""Generates `examples/ipynb/*.ipynb` from the tutobook sources in `examples/`.

A tutobook (keras-io's format) is a Python script that is also a notebook:

- It starts with a header docstring whose lines are, in this order,
  `Title:`, `Author:` (or `Authors:`), `Date created:` and `Last modified:`
  (`yyyy/mm/dd`), `Description:` (one capitalised sentence ending with a
  period, under 100 characters) and `Accelerator:` (`GPU`, `TPU` or
  `None`).
- Every other module-level triple-quoted string, opened and closed by a
  line of its own at column 0, is a markdown cell.
- The code between two markdown cells is one code cell.

The `.py` is the source of truth: edit it, then run this script. Never edit
a notebook by hand; `--check` (run by the test suite) fails when a notebook
differs from what its `.py` generates, or when a notebook has no `.py`.

Typical usage:

    python examples/tutobook_to_ipynb.py            # regenerate every notebook
    python examples/tutobook_to_ipynb.py --check    # exit 1 if any is stale
    python examples/tutobook_to_ipynb.py examples/lit_quickstart.py
"""

import argparse
import json
import pathlib
import re
import sys

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parent
NOTEBOOK_DIR = EXAMPLES_DIR / "ipynb"
FENCE = '"""'
HEADER_FIELDS = (
    ("Title", "title"),
    ("Author", "author"),
    ("Date created", "date_created"),
    ("Last modified", "last_modified"),
    ("Description", "description"),
    ("Accelerator", "accelerator"),
)
ACCELERATORS = ("GPU", "TPU", "None")
DATE = re.compile(r"^\d{4}/\d{2}/\d{2}$")
MAX_DESCRIPTION_CHARS = 100


class TutobookError(ValueError):
    """A tutobook source does not follow the format."""

    def __init__(self, path, line, message):
        super().__init__(f"{path}:{line}: {message}")


def tutobook_sources(directory=EXAMPLES_DIR):
    """Every tutobook in `directory`: `*.py` files other than this script."""
    this_script = pathlib.Path(__file__).name
    return sorted(
        path
        for path in pathlib.Path(directory).glob("*.py")
        if path.name != this_script and not path.name.startswith("_")
    )


def notebook_path(source, notebook_dir=NOTEBOOK_DIR):
    """`examples/name.py` -> `examples/ipynb/name.ipynb`."""
    return pathlib.Path(notebook_dir) / (pathlib.Path(source).stem + ".ipynb")


def parse_tutobook(text, path="<tutobook>"):
    """Splits a tutobook into its header and cells.

    Args:
        text: the source of a tutobook `.py` file.
        path: the file name, for error messages.

    Returns:
        `(header, cells)`: a dict of the header fields (keys as in
        `HEADER_FIELDS`, plus `"author_field"`, `"Author"` or `"Authors"`),
        and a list of `(cell_type, source)` with `cell_type` `"markdown"` or
        `"code"`.

    Raises:
        TutobookError: the header is missing or malformed, a markdown block
            is never closed, or a line has trailing whitespace.
    """
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if line != line.rstrip():
            raise TutobookError(path, number, "trailing whitespace")
        if line.startswith(FENCE) and line.strip() != FENCE:
            raise TutobookError(
                path,
                number,
                f"a markdown fence must be {FENCE} alone on its line "
                f"(single-line or tagged blocks are not supported). "
                f"Received: {line!r}",
            )
    blocks = _blocks(lines, path)
    if not blocks or blocks[0][0] != "markdown" or blocks[0][2] != 1:
        raise TutobookError(
            path, 1, f"a tutobook starts with a {FENCE}-fenced header"
        )
    header = _parse_header(blocks[0][1], path)
    cells = []
    for cell_type, source, _ in blocks[1:]:
        source = source.strip("\n")
        if source.strip():
            cells.append((cell_type, source))
    return header, cells


def _blocks(lines, path):
    """`[(cell_type, source, first_line_number)]`, in file order."""
    blocks = []
    code = []
    code_start = 1
    index = 0
    while index < len(lines):
        line = lines[index]
        if line == FENCE:
            if code:
                blocks.append(("code", "\n".join(code), code_start))
                code = []
            start = index
            index += 1
            markdown = []
            while index < len(lines) and lines[index] != FENCE:
                markdown.append(lines[index])
                index += 1
            if index == len(lines):
                raise TutobookError(
                    path, start + 1, f"markdown block never closed by {FENCE}"
                )
            blocks.append(("markdown", "\n".join(markdown), start + 1))
            index += 1
            code_start = index + 1
            continue
        if not code:
            code_start = index + 1
        code.append(line)
        index += 1
    if code:
        blocks.append(("code", "\n".join(code), code_start))
    return blocks


def _parse_header(text, path):
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) != len(HEADER_FIELDS):
        expected = ", ".join(f"`{name}:`" for name, _ in HEADER_FIELDS)
        raise TutobookError(
            path,
            2,
            f"the header has {len(HEADER_FIELDS)} lines: {expected}. "
            f"Received {len(lines)} lines",
        )
    header = {}
    for number, (line, (name, key)) in enumerate(
        zip(lines, HEADER_FIELDS), start=2
    ):
        names = ("Author", "Authors") if name == "Author" else (name,)
        found = [n for n in names if line.startswith(n + ": ")]
        if not found:
            raise TutobookError(
                path, number, f"expected `{name}: ...`. Received: {line!r}"
            )
        value = line[len(found[0]) + 2 :].strip()
        if not value:
            raise TutobookError(path, number, f"`{name}:` is empty")
        if name == "Author":
            header["author_field"] = found[0]
        header[key] = value
    for key in ("date_created", "last_modified"):
        if not DATE.match(header[key]):
            raise TutobookError(
                path,
                2,
                f"dates are yyyy/mm/dd. Received: {key}={header[key]!r}",
            )
    description = header["description"]
    if not (
        description[0].isupper()
        and description.endswith(".")
        and len(description) < MAX_DESCRIPTION_CHARS
    ):
        raise TutobookError(
            path,
            6,
            "the description is one capitalised sentence ending with a "
            f"period, under {MAX_DESCRIPTION_CHARS} characters. Received: "
            f"{description!r}",
        )
    if header["accelerator"] not in ACCELERATORS:
        raise TutobookError(
            path,
            7,
            f"`Accelerator:` must be one of {', '.join(ACCELERATORS)}. "
            f"Received: {header['accelerator']!r}",
        )
    return header


def _source_lines(text):
    """Notebook JSON source: a list of lines, each but the last with `\\n`."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def to_notebook(text, name, path="<tutobook>"):
    """The notebook (a JSON-ready dict, no outputs) for a tutobook source.

    The output is deterministic: the same source always gives the same
    bytes (`notebook_json`), which is what `--check` relies on.
    """
    header, cells = parse_tutobook(text, path)
    title_cell = "\n".join(
        [
            f"# {header['title']}",
            "",
            f"**{header['author_field']}:** {header['author']}<br>",
            f"**Date created:** {header['date_created']}<br>",
            f"**Last modified:** {header['last_modified']}<br>",
            f"**Description:** {header['description']}",
        ]
    )
    notebook_cells = [_cell("markdown", title_cell, 0)]
    for index, (cell_type, source) in enumerate(cells, start=1):
        notebook_cells.append(_cell(cell_type, source, index))
    metadata = {
        "colab": {"name": name, "provenance": [], "toc_visible": True},
        "kernelspec": {
            "display_name": "Python 3",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
    }
    if header["accelerator"] != "None":
        metadata["accelerator"] = header["accelerator"]
    return {
        "cells": notebook_cells,
        "metadata": metadata,
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _cell(cell_type, source, index):
    cell = {
        "cell_type": cell_type,
        "id": f"cell-{index:03d}",
        "metadata": {},
        "source": _source_lines(source),
    }
    if cell_type == "code":
        cell["execution_count"] = None
        cell["outputs"] = []
    return cell


def notebook_json(notebook):
    """The bytes written to disk for a notebook dict (as text)."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False)


def render(source):
    """The notebook text that a tutobook source file generates."""
    source = pathlib.Path(source)
    text = source.read_text(encoding="utf-8")
    return notebook_json(to_notebook(text, source.stem, str(source))) + "\n"


def stale_notebooks(sources, notebook_dir=NOTEBOOK_DIR):
    """Problems that `--check` reports, as human-readable strings."""
    problems = []
    expected = set()
    for source in sources:
        target = notebook_path(source, notebook_dir)
        expected.add(target.name)
        if not target.exists():
            problems.append(f"{target}: missing (generate it from {source})")
        elif target.read_text(encoding="utf-8") != render(source):
            problems.append(f"{target}: out of sync with {source}")
    if pathlib.Path(notebook_dir).is_dir():
        for target in sorted(pathlib.Path(notebook_dir).glob("*.ipynb")):
            if target.name not in expected:
                problems.append(
                    f"{target}: no tutobook source "
                    f"examples/{target.stem}.py (delete the notebook)"
                )
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Generate examples/ipynb/*.ipynb from tutobook sources."
    )
    parser.add_argument(
        "sources",
        nargs="*",
        type=pathlib.Path,
        help="tutobook .py files (default: every example)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a notebook is missing or stale",
    )
    parser.add_argument(
        "--output-dir",
        type=pathlib.Path,
        default=NOTEBOOK_DIR,
        help="where notebooks go (default: examples/ipynb)",
    )
    args = parser.parse_args(argv)
    sources = args.sources or tutobook_sources()
    try:
        if args.check:
            problems = stale_notebooks(sources, args.output_dir)
            if args.sources:
                # Only the named sources: ignore other notebooks.
                problems = [p for p in problems if "no tutobook" not in p]
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print(
                    "Regenerate with: python examples/tutobook_to_ipynb.py",
                    file=sys.stderr,
                )
                return 1
            print(f"{len(sources)} notebook(s) in sync.")
            return 0
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for source in sources:
            target = notebook_path(source, args.output_dir)
            text = render(source)
            if not target.exists() or target.read_text("utf-8") != text:
                target.write_text(text, encoding="utf-8")
                print(f"wrote {target}")
    except TutobookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
