"""A separate git worktree at a recorded commit, set up for a tracked rerun.

The worktree lives in `.aeromancy/worktrees/<run id>/<project name>`: the last
part keeps the project's name, which records and trackers take from the folder.
DVC in it uses the project's remote (from the recorded commit's `.dvc/config`)
and, when the project has one, the same local cache (`.dvc/config.local`).
Aeromancy's local state in it (run index, package lists, tracker files) is
linked to the project's, so a record made there is in the project's index.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

from aeromancy import gitstate
from aeromancy.errors import UserError

__all__ = ["WORKTREES", "WorktreeError", "create", "has_commit", "remove"]

log = logging.getLogger(__name__)

WORKTREES = Path(".aeromancy") / "worktrees"
# What of `.aeromancy/` a tracked run writes to: run records, package lists,
# W&B offline runs, the MLflow store. Linked, so nothing is lost with the worktree.
_SHARED_DIRS = ("runs", "manifests", "wandb", "mlflow-artifacts")
_SHARED_FILES = ("mlflow.db",)


class WorktreeError(UserError):
    """A worktree for a rerun cannot be made."""


def has_commit(root: Path, commit: str) -> bool:
    """Whether the repository at `root` has `commit`."""
    try:
        gitstate.git(root, "cat-file", "-e", f"{commit}^{{commit}}")
    except gitstate.GitError:
        return False
    return True


def path_for(root: Path, run_id: str) -> Path:
    """Where the worktree for rerunning `run_id` goes."""
    return root / WORKTREES / run_id / root.resolve().name


def create(root: Path, run_id: str, commit: str) -> Path:
    """A detached worktree of `root` at `commit`, with DVC and state shared.

    Raises:
        WorktreeError: the worktree's folder already exists.
    """
    where = path_for(root, run_id)
    if where.parent.exists():
        shown = os.path.relpath(where.parent, root)
        raise WorktreeError(
            f"worktree {shown} already exists (kept by an earlier `aero rerun "
            f"--keep`?); remove it with `git worktree remove --force {shown}`"
        )
    where.parent.mkdir(parents=True)
    gitstate.git(root, "worktree", "add", "--quiet", "--detach", str(where), commit)
    local = root / ".dvc" / "config.local"
    if local.is_file():
        shutil.copyfile(local, where / ".dvc" / "config.local")
    _share_state(root, where)
    return where


def remove(root: Path, where: Path) -> None:
    """Remove the worktree at `where` and its folder; git forgets it."""
    try:
        gitstate.git(root, "worktree", "remove", "--force", str(where))
    except gitstate.GitError as exc:
        log.debug("git worktree remove failed, removing the folder: %s", exc)
    shutil.rmtree(where.parent, onerror=_writable)
    gitstate.git(root, "worktree", "prune")


def _share_state(root: Path, where: Path) -> None:
    state = root / ".aeromancy"
    mine = where / ".aeromancy"
    mine.mkdir(exist_ok=True)
    for name in _SHARED_DIRS:
        (state / name).mkdir(parents=True, exist_ok=True)
        (mine / name).symlink_to(state / name, target_is_directory=True)
    for name in _SHARED_FILES:
        (mine / name).symlink_to(state / name)


def _writable(function: object, path: str, error: object) -> None:
    """Make a read-only file (DVC protects cached data) removable, then remove."""
    os.chmod(os.path.dirname(path), stat.S_IRWXU)
    os.chmod(path, stat.S_IRWXU)
    os.unlink(path)
