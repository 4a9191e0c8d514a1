"""Transfers: push the project's data to its remote, pull it back, say what is where.

DVC says which objects the workspace uses and where each lives, in the cache
and in the remote (`_dvc_transfer.py`). Pulls and pushes to a local store go
through DVC's own transfer, with its parallel jobs and its index of what the
remote holds; pushes to S3 go through boto3's transfer manager (`_s3.py`), to
the same keys, about twice as fast on one large file, and a push of the whole
workspace reads the objects from the DVC files without opening DVC at all
(`_objects.py`). Either way nothing is recorded as pushed before the remote
has it. Aeromancy adds progress in bytes, a count of what moved, a stall watch
(`_stall.py`) and one-line errors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aeromancy import _dvc_transfer as dt
from aeromancy import data
from aeromancy._dvc import open_repo
from aeromancy.errors import RemoteError

__all__ = [
    "Moved",
    "OutputStatus",
    "Progress",
    "default_jobs",
    "pull",
    "push",
    "status",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Moved:
    """What a push or pull moved: file objects, bytes, and where."""

    verb: str
    files: int
    nbytes: int
    remote: str
    missing: int = 0

    def summary(self) -> str:
        """One line: "pushed 3 files, 12.4 MB to s3://..."."""
        if not self.files:
            if self.verb == "pushed":
                return f"nothing to push: everything is already in {self.remote}"
            return "nothing to pull: everything is already in the cache"
        direction = "to" if self.verb == "pushed" else "from"
        noun = "file" if self.files == 1 else "files"
        return (
            f"{self.verb} {self.files} {noun}, {human_size(self.nbytes)} "
            f"{direction} {self.remote}"
        )


@dataclass(frozen=True)
class OutputStatus:
    """Where one tracked output (a dataset or a stage output) is."""

    path: str
    hash: str
    size: int | None
    files: int | None
    workspace: str
    cache: str
    remote: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "hash": self.hash,
            "size": self.size,
            "files": self.files,
            "workspace": self.workspace,
            "cache": self.cache,
            "remote": self.remote,
        }


class Progress(Protocol):
    """Told how much a transfer will move, then as bytes move."""

    def start(self, files: int, nbytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


def default_jobs() -> int:
    """Parallel transfers: enough to hide latency, few enough for small machines."""
    return max(8, 4 * (os.cpu_count() or 1))


def push(
    root: Path,
    targets: Sequence[str] = (),
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Moved:
    """Push what the workspace uses (or `targets`) from the cache to the remote."""
    remote = data.project_remote(root)
    data.check_reachable(remote)
    jobs = jobs or default_jobs()
    if remote.is_s3 and not targets:
        from aeromancy import _s3

        quick = _s3.push_workspace(root, remote, jobs, progress)
        if quick is not None:
            return Moved("pushed", quick.files, quick.nbytes, remote.url, quick.missing)
    with open_repo(root) as repo, dt.dvc_errors(remote):
        cache = repo.cache.local
        odb = dt.remote_odb(repo)
        objs = dt.expand(cache, dt.used_objects(repo, targets))
        if remote.is_s3:
            from aeromancy import _s3

            sent = _s3.push_objects(remote, cache, odb, objs, jobs, progress)
            return Moved("pushed", sent.files, sent.nbytes, remote.url, sent.missing)

        state = dt.compare(cache, odb, objs, jobs)
        new = [h for h in state.new if not h.isdir]
        sizes = {h.value: dt.size(cache, h) for h in new}
        moved = Moved("pushed", len(new), sum(sizes.values()), remote.url)
        moved = _with_missing(moved, state.missing)
        if progress:
            progress.start(moved.files, moved.nbytes)
        failed = dt.transfer(remote, cache, odb, objs, jobs, progress, push=True)
    if failed:
        raise RemoteError(
            f"{failed} of {moved.files} files could not be pushed to {remote.url}; "
            "nothing is recorded as pushed that is not there: rerun `aero data push`"
        )
    return moved


def pull(
    root: Path,
    targets: Sequence[str] = (),
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Moved:
    """Fetch what the workspace uses into the cache and link it into place.

    Everything already in the cache means no request to the remote at all.
    """
    remote = data.project_remote(root)
    jobs = jobs or default_jobs()
    with (
        open_repo(root, data.dvc_remote_overrides(remote)) as repo,
        dt.dvc_errors(remote),
    ):
        from dvc_data.hashfile.status import status as local_status

        cache = repo.cache.local
        objs = dt.expand(cache, dt.used_objects(repo, targets))
        _, absent = local_status(cache, objs, jobs=jobs)
        moved = Moved("pulled", 0, 0, remote.url)
        if absent:
            moved = _fetch(repo, remote, objs, jobs, progress)
        dt.checkout(repo, targets)
    return moved


def status(root: Path, *, jobs: int | None = None) -> list[OutputStatus]:
    """Each tracked output: changed in the workspace, in the cache, in the remote."""
    remote = data.project_remote(root)
    data.check_reachable(remote)
    jobs = jobs or default_jobs()
    with open_repo(root) as repo, dt.dvc_errors(remote):
        from dvc_data.hashfile.status import status as odb_status

        cache = repo.cache.local
        odb = dt.remote_odb(repo)
        outs = [o for o in repo.index.outs if o.use_cache and o.hash_info]
        owned = {str(o): dt.expand(cache, {o.hash_info}) for o in outs}
        every = set().union(*owned.values()) if owned else set()
        _, not_cached = odb_status(cache, every, jobs=jobs)
        _, not_pushed = odb_status(odb, every, jobs=jobs)
        found = []
        for out in sorted(outs, key=str):
            objs = owned[str(out)]
            change = out.workspace_status().get(str(out), "ok")
            found.append(
                OutputStatus(
                    path=str(out),
                    hash=str(out.hash_info.value),
                    size=out.meta.size,
                    files=out.meta.nfiles,
                    workspace=change,
                    cache="missing" if objs & not_cached else "ok",
                    remote="missing" if objs & not_pushed else "ok",
                )
            )
    return found


def human_size(nbytes: int) -> str:
    """Bytes in decimal units, as transfer tools print them: "12.4 MB"."""
    size = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _fetch(
    repo: Any, remote: data.Remote, objs: set[Any], jobs: int, progress: Progress | None
) -> Moved:
    from dvc_data.hashfile.status import status as local_status

    data.check_reachable(remote)
    cache = repo.cache.local
    odb = dt.remote_odb(repo)
    # A directory's listing comes first: it says which files the directory holds.
    _, listings = local_status(cache, {h for h in objs if h.isdir}, jobs=jobs)
    if listings:
        dt.transfer(remote, odb, cache, listings, jobs, None, push=False)
        objs = dt.expand(cache, objs)
    state = dt.compare(odb, cache, objs, jobs)
    new = [h for h in state.new if not h.isdir]
    nbytes = sum(dt.remote_size(odb, h) for h in new)
    moved = _with_missing(Moved("pulled", len(new), nbytes, remote.url), state.missing)
    if progress:
        progress.start(moved.files, moved.nbytes)
    failed = dt.transfer(remote, odb, cache, objs, jobs, progress, push=False)
    if failed:
        raise RemoteError(
            f"{failed} of {moved.files} files could not be pulled from "
            f"{remote.url}; rerun `aero data pull`"
        )
    return moved


def _with_missing(moved: Moved, missing: set[Any]) -> Moved:
    files = [h for h in missing if not h.isdir]
    if not files:
        return moved
    return Moved(moved.verb, moved.files, moved.nbytes, moved.remote, len(files))
