"""Code state: every dirty state is named, the commit and remote are recorded."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from aeromancy import gitstate
from aeromancy.errors import DirtyTreeError, UserError
from aeromancy.gitstate import DirtyPath, PathState
from tests.conftest import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clean git repository with a few committed files."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "--quiet")
    for name in ("a.txt", "b.txt", "params.yaml", "dvc.yaml"):
        (root / name).write_text(f"{name}\n")
    (root / ".gitignore").write_text("ignored/\n")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "first")
    return root


def states(root: Path) -> list[tuple[str, PathState]]:
    return [(d.path, d.state) for d in gitstate.dirty_paths(root)]


def test_clean_tree_passes(repo: Path) -> None:
    (repo / "ignored").mkdir()
    (repo / "ignored" / "x").write_text("ignored files do not count")
    assert gitstate.dirty_paths(repo) == []
    gitstate.require_clean(repo)


def test_modified(repo: Path) -> None:
    (repo / "a.txt").write_text("changed\n")
    assert states(repo) == [("a.txt", PathState.MODIFIED)]


def test_staged(repo: Path) -> None:
    (repo / "a.txt").write_text("changed\n")
    (repo / "new.txt").write_text("new\n")
    git(repo, "add", "a.txt", "new.txt")
    assert states(repo) == [("a.txt", PathState.STAGED), ("new.txt", PathState.STAGED)]


def test_deleted(repo: Path) -> None:
    (repo / "a.txt").unlink()
    git(repo, "rm", "--quiet", "b.txt")
    assert states(repo) == [("a.txt", PathState.DELETED), ("b.txt", PathState.DELETED)]


def test_untracked_not_ignored(repo: Path) -> None:
    (repo / "notes.txt").write_text("draft\n")
    (repo / "folder").mkdir()
    (repo / "folder" / "x").write_text("x\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "y").write_text("y\n")
    assert states(repo) == [
        ("folder/", PathState.UNTRACKED),
        ("notes.txt", PathState.UNTRACKED),
    ]


def test_renamed(repo: Path) -> None:
    git(repo, "mv", "a.txt", "c.txt")
    assert gitstate.dirty_paths(repo) == [
        DirtyPath("c.txt", PathState.RENAMED, "from a.txt")
    ]


def test_dirty_submodule(repo: Path, tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    git(library, "init", "--quiet")
    (library / "lib.py").write_text("x = 1\n")
    git(library, "add", "-A")
    git(library, "commit", "--quiet", "-m", "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q",
        str(library), "lib")  # fmt: skip
    git(repo, "commit", "--quiet", "-m", "add lib")
    assert gitstate.dirty_paths(repo) == []

    (repo / "lib" / "lib.py").write_text("x = 2\n")
    (repo / "lib" / "scratch.py").write_text("")
    assert gitstate.dirty_paths(repo) == [
        DirtyPath("lib", PathState.SUBMODULE, "modified content, untracked content")
    ]


def test_pipeline_files_are_named_with_their_role(repo: Path) -> None:
    (repo / "params.yaml").write_text("lr: 0.2\n")
    (repo / "dvc.yaml").write_text("stages: {}\n")
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    assert [str(d) for d in gitstate.dirty_paths(repo)] == [
        "dvc.lock (untracked, DVC lock)",
        "dvc.yaml (modified, pipeline)",
        "params.yaml (modified, params)",
    ]


def test_require_clean_names_each_path_and_the_fix(repo: Path) -> None:
    (repo / "params.yaml").write_text("lr: 0.2\n")
    (repo / "notes.txt").write_text("draft\n")
    with pytest.raises(DirtyTreeError) as caught:
        gitstate.require_clean(repo)
    assert isinstance(caught.value, UserError)
    assert caught.value.message == (
        "the tree has uncommitted changes: notes.txt (untracked), "
        "params.yaml (modified, params); commit or stash them (`git stash -u`), "
        "then rerun"
    )


def replace_file(path: Path, text: str) -> None:
    """Write a new file in place of `path` without touching what it may be
    linked to (DVC's cache)."""
    os.chmod(path.parent, os.stat(path.parent).st_mode | stat.S_IWUSR)
    path.unlink()
    path.write_text(text)


def test_changed_dataset(project: Path) -> None:
    csv = project / "data" / "measurements" / "measurements.csv"
    replace_file(csv, csv.read_text() + "9.9,9.9,9.9,9.9,other\n")
    assert gitstate.dirty_paths(project) == [
        DirtyPath(
            "data/measurements", PathState.DATASET_MODIFIED, "data/measurements.dvc"
        )
    ]
    with pytest.raises(DirtyTreeError, match="dvc checkout PATH"):
        gitstate.require_clean(project)


def test_missing_dataset(project: Path) -> None:
    folder = project / "data" / "measurements"
    os.chmod(folder, os.stat(folder).st_mode | stat.S_IWUSR)
    shutil.rmtree(folder)
    assert states(project) == [("data/measurements", PathState.DATASET_MISSING)]


def test_unchanged_dataset_and_reused_repo(project: Path) -> None:
    from aeromancy._dvc import open_repo

    with open_repo(project) as repo:
        assert gitstate.dirty_paths(project, repo=repo) == []


def test_code_state_without_remote(repo: Path) -> None:
    state = gitstate.code_state(repo)
    assert state.commit == git(repo, "rev-parse", "HEAD").strip()
    assert state.branch == "main"
    assert state.remote_url is None
    assert state.on_remote is False
    assert state.node() == {"commit": state.commit, "remote": None}


def test_code_state_on_remote_without_credentials(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "--quiet", "-u", "origin", "main")
    assert gitstate.code_state(repo).on_remote is True

    git(
        repo,
        "remote",
        "set-url",
        "origin",
        "https://bob:hunter2secret@git.example/x.git",
    )
    (repo / "a.txt").write_text("unpushed\n")
    git(repo, "commit", "--quiet", "-am", "local only")
    state = gitstate.code_state(repo)
    assert state.remote_url == "https://git.example/x.git"
    assert state.on_remote is False


def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "--quiet", "--detach")
    assert gitstate.code_state(repo).branch is None


def test_repository_without_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")
    with pytest.raises(gitstate.GitError, match="no commit yet"):
        gitstate.code_state(tmp_path)


def test_untracked_stage_outputs_are_dvcs_but_other_files_beside_them_are_named(
    project: Path,
) -> None:
    from aeromancy.gitstate import dirty_paths

    # What a stage that failed leaves: its output, not yet git-ignored by DVC.
    (project / "build").mkdir()
    (project / "build" / "model.json").write_text("{}")
    assert dirty_paths(project) == []

    (project / "build" / "notes.txt").write_text("mine\n")
    assert [str(d) for d in dirty_paths(project)] == ["build/notes.txt (untracked)"]
