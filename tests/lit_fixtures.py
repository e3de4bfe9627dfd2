"""Where the shared LiT checkpoint fixtures live (`../shared/lit_checkpoints`).

CI copies the project's `shared/` folder next to the clone. In a git worktree
the folder is next to the main checkout instead, so that is tried too. A
missing folder fails the tests that need it (never a silent skip).
"""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ENVIRONMENT_VARIABLE = "KERAS_LIT_CHECKPOINT_FIXTURES"


def candidates():
    paths = [REPO.parent / "shared" / "lit_checkpoints"]
    git = REPO / ".git"
    if git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        gitdir = pathlib.Path(git.read_text().split(":", 1)[1].strip())
        main = gitdir.parent.parent.parent
        paths.append(main.parent / "shared" / "lit_checkpoints")
    return paths


def fixture_directory():
    """The fixture folder; fails the calling test when it is missing."""
    for candidate in candidates():
        if (candidate / "real_key_shapes.json").exists():
            return candidate
    pytest.fail(
        "The LiT checkpoint fixtures are missing: expected "
        f"{candidates()[0]} (copy the project's shared/ folder next to the "
        "repository)."
    )
