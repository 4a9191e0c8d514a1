"""A separate git worktree at a recorded commit, set up for a tracked rerun.

The worktree lives in `.aeromancy/worktrees/<run id>/<project name>`: the last
part keeps the project's name, which records and trackers take from the folder.
DVC in it uses the project's remote (from the recorded commit's `.dvc/config`)
and, when the project has one, the same local cache (`.dvc/config.local`).
Aeromancy's local state in it (run index, package lists, tracker files) is
linked to the project's, so a record made there is in the project's index.
`pull_inputs` brings the datasets a recorded run read into it.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aeromancy import gitstate
from aeromancy.errors import UserError

if TYPE_CHECKING:
    from aeromancy.runs import RunRecord
    from aeromancy.transfer import Moved

__all__ = [
    "WORKTREES",
    "RerunError",
    "create",
    "has_commit",
    "path_for",
    "pull_inputs",
    "remove",
]

log = logging.getLogger(__name__)

WORKTREES = Path(".aeromancy") / "worktrees"
# What of `.aeromancy/` a tracked run writes to: run records, package lists,
# W&B offline runs, the MLflow store. Linked, so nothing is lost with the worktree.
_SHARED_DIRS = ("runs", "manifests", "wandb", "mlflow-artifacts")
_SHARED_FILES = ("mlflow.db",)


class RerunError(UserError):
    """A run cannot be rerun as asked: its commit, data or runtime is gone, or
    its worktree exists already."""


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
        RerunError: the worktree's folder already exists.
    """
    where = path_for(root, run_id)
    if where.exists():
        shown = os.path.relpath(where, root)
        raise RerunError(
            f"worktree {shown} already exists (kept by an earlier `aero rerun "
            f"--keep`?); remove it with `git worktree remove --force {shown}`"
        )
    where.parent.mkdir(parents=True, exist_ok=True)
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


def pull_inputs(where: Path, record: RunRecord, target: str) -> Moved | None:
    """Pull the datasets the chain of the stage `target` reads, each checked to
    be the version `record` names; one the pull cannot find is named.

    Returns:
        What was pulled, None when the chain reads no dataset.
    """
    from aeromancy import transfer
    from aeromancy._dvc import open_repo

    recorded = record.fingerprint.get("data", {})
    with open_repo(where) as repo:
        versions = {
            _relative(repo, out): f"{out.hash_info.name}:{out.hash_info.value}"
            for out in _dataset_outs(repo, target)
        }
    for path, version in versions.items():
        if recorded.get(path, version) != version:
            raise RerunError(
                f"commit {record.commit[:12]} names {version} for {path} but "
                f"run {record.run_id} read {recorded[path]}; the record and "
                "its commit disagree"
            )
    if not versions:
        return None
    try:
        return transfer.pull(where, list(versions))
    except UserError:
        _name_missing(where, record, target)
        raise


def _name_missing(where: Path, record: RunRecord, target: str) -> None:
    """Raise naming the first input in neither the local cache nor the remote."""
    from aeromancy._dvc import open_repo

    with open_repo(where) as repo:
        for out in _dataset_outs(repo, target):
            if not _available(repo, out):
                version = f"{out.hash_info.name}:{out.hash_info.value}"
                raise RerunError(
                    f"data version {version} of {_relative(repo, out)} (read by "
                    f"run {record.run_id}) is missing from the remote and the "
                    "local cache; push it from a machine that has it with "
                    "`aero data push`"
                ) from None


def _dataset_outs(repo: Any, target: str) -> list[Any]:
    """The cached outputs of the `.dvc` files the chain of `target` reads."""
    path = (
        target
        if ":" in target or "/" in target
        else f"{repo.root_dir}/dvc.yaml:{target}"
    )
    stages = repo.stage.collect(path, with_deps=True)
    return [
        out
        for stage in stages
        if not getattr(stage, "cmd", None) and not stage.is_import
        for out in stage.outs
        if out.use_cache and out.hash_info and out.hash_info.value
    ]


def _available(repo: Any, out: Any) -> bool:
    """Whether `out`'s object is in the local cache or the remote."""
    from dvc.config import NoRemoteError

    value = out.hash_info.value
    if repo.cache.local.exists(value):
        return True
    try:
        return bool(repo.cloud.get_remote_odb(None, "pull").exists(value))
    except NoRemoteError:
        return False


def _relative(repo: Any, out: Any) -> str:
    return Path(os.path.relpath(out.fs_path, repo.root_dir)).as_posix()


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
