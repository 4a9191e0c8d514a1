"""Transfers: push the project's data to its remote, pull it back, say what is where.

DVC says which objects the workspace uses and where each lives, in the cache
and in the remote. Pulls and pushes to a local store go through DVC's own
transfer, with its parallel jobs and its index of what the remote holds;
pushes to S3 go through boto3's transfer manager (`aeromancy._s3`), to the same
keys, about twice as fast on one large file. Either way nothing is recorded as
pushed before the remote has it. Aeromancy adds progress in bytes, a count of
what moved and one-line errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aeromancy import data
from aeromancy._dvc import open_repo
from aeromancy._stall import Watch, watched
from aeromancy.errors import RemoteError, UserError

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
    with open_repo(root) as repo, _dvc_errors(remote):
        cache = repo.cache.local
        odb = _remote_odb(repo)
        objs = _expand(cache, _used_objects(repo, targets))
        if remote.is_s3:
            from aeromancy import _s3

            sent = _s3.push_objects(remote, cache, odb, objs, jobs, progress)
            return Moved("pushed", sent.files, sent.nbytes, remote.url, sent.missing)

        state = _compare(cache, odb, objs, jobs)
        new = [h for h in state.new if not h.isdir]
        sizes = {h.value: _size(cache, h) for h in new}
        moved = Moved("pushed", len(new), sum(sizes.values()), remote.url)
        moved = _with_missing(moved, state.missing)
        if progress:
            progress.start(moved.files, moved.nbytes)
        failed = _transfer(remote, cache, odb, objs, jobs, progress, push=True)
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
        _dvc_errors(remote),
    ):
        from dvc_data.hashfile.status import status as local_status

        cache = repo.cache.local
        objs = _expand(cache, _used_objects(repo, targets))
        _, absent = local_status(cache, objs, jobs=jobs)
        moved = Moved("pulled", 0, 0, remote.url)
        if absent:
            moved = _fetch(repo, remote, objs, jobs, progress)
        _checkout(repo, targets)
    return moved


def status(root: Path, *, jobs: int | None = None) -> list[OutputStatus]:
    """Each tracked output: changed in the workspace, in the cache, in the remote."""
    remote = data.project_remote(root)
    data.check_reachable(remote)
    jobs = jobs or default_jobs()
    with open_repo(root) as repo, _dvc_errors(remote):
        from dvc_data.hashfile.status import status as odb_status

        cache = repo.cache.local
        odb = _remote_odb(repo)
        outs = [o for o in repo.index.outs if o.use_cache and o.hash_info]
        owned = {str(o): _expand(cache, {o.hash_info}) for o in outs}
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
    odb = _remote_odb(repo)
    # A directory's listing comes first: it says which files the directory holds.
    _, listings = local_status(cache, {h for h in objs if h.isdir}, jobs=jobs)
    if listings:
        _transfer(remote, odb, cache, listings, jobs, None, push=False)
        objs = _expand(cache, objs)
    state = _compare(odb, cache, objs, jobs)
    new = [h for h in state.new if not h.isdir]
    nbytes = sum(_remote_size(odb, h) for h in new)
    moved = _with_missing(Moved("pulled", len(new), nbytes, remote.url), state.missing)
    if progress:
        progress.start(moved.files, moved.nbytes)
    failed = _transfer(remote, odb, cache, objs, jobs, progress, push=False)
    if failed:
        raise RemoteError(
            f"{failed} of {moved.files} files could not be pulled from "
            f"{remote.url}; rerun `aero data pull`"
        )
    return moved


def _checkout(repo: Any, targets: Sequence[str]) -> None:
    from dvc.exceptions import CheckoutError

    paths = [out.fs_path for out in _outs(repo, targets)]
    if not paths:
        return
    try:
        repo.checkout(targets=paths)
    except CheckoutError as exc:
        shown = ", ".join(sorted(exc.target_infos)[:3]) if exc.target_infos else ""
        raise UserError(
            f"cannot check out {shown or 'the data'}: it is in neither the cache "
            "nor the remote; push it from a machine that has it"
        ) from None


def _used_objects(repo: Any, targets: Sequence[str]) -> set[Any]:
    """The objects the outputs (or `targets`) use, directories not expanded."""
    return {out.hash_info for out in _outs(repo, targets)}


def _outs(repo: Any, targets: Sequence[str]) -> list[Any]:
    """The cached outputs that have a hash, all of them or those `targets` name.

    A stage that never ran has nothing to move; an import's data belongs to
    the repository it comes from. A target is a `.dvc` file or `dvc.yaml`, an
    output, a folder holding outputs or a path inside one (relative to the
    project's root), and names the whole of each output it touches.
    """
    outs = [
        out
        for out in repo.index.outs
        if out.use_cache and out.hash_info and not out.stage.is_import
    ]
    if not targets:
        return outs
    chosen: list[Any] = []
    for target in targets:
        path = os.path.abspath(os.path.join(repo.root_dir, target))
        found = [out for out in outs if _names(path, out)]
        if not found:
            raise UserError(
                f"{os.path.relpath(path, repo.root_dir)} is not a tracked output or "
                "its .dvc file; see `aero data status`"
            )
        chosen.extend(out for out in found if out not in chosen)
    return chosen


def _names(path: str, out: Any) -> bool:
    """Whether the target `path` names `out`."""
    own = out.fs_path
    return (
        path in (own, out.stage.path)
        or own.startswith(path + os.sep)
        or path.startswith(own + os.sep)
    )


def _expand(cache: Any, objs: set[Any]) -> set[Any]:
    """`objs` and every file of each directory among them whose listing is cached.

    A directory's listing is named like any object; one missing from the cache
    stays unexpanded, and shows as missing itself.
    """
    from dvc_data.hashfile.tree import Tree
    from dvc_objects.errors import ObjectFormatError

    found = set(objs)
    for hash_info in objs:
        if hash_info.isdir:
            with contextlib.suppress(FileNotFoundError, ObjectFormatError):
                found.update(oid for _, _, oid in Tree.load(cache, hash_info))
    return found


def _compare(src: Any, dest: Any, objs: set[Any], jobs: int) -> Any:
    from dvc_data.hashfile.db import get_index
    from dvc_data.hashfile.status import compare_status

    remote_odb = dest if src.fs.protocol == "local" else src
    index = get_index(remote_odb)
    return compare_status(
        src,
        dest,
        objs,
        check_deleted=False,
        jobs=jobs,
        src_index=index if remote_odb is src else None,
        dest_index=index if remote_odb is dest else None,
        cache_odb=dest if remote_odb is src else src,
    )


def _transfer(
    remote: data.Remote,
    src: Any,
    dest: Any,
    objs: set[Any],
    jobs: int,
    progress: Progress | None,
    push: bool,
) -> int:
    """Let DVC move what `dest` lacks; return how many objects failed."""
    from dvc_data.hashfile.db import get_index
    from dvc_data.hashfile.transfer import transfer

    remote_odb, cache = (dest, src) if push else (src, dest)
    index = get_index(remote_odb)
    watch = Watch()
    with _failures() as failures:
        result = watched(
            lambda: transfer(
                src,
                dest,
                objs,
                jobs=jobs,
                # What comes from the remote is hashed on arrival: a corrupted
                # object is refused, never put in the cache.
                verify=not push,
                src_index=None if push else index,
                dest_index=index if push else None,
                cache_odb=cache,
                callback=_bytes_callback(progress, watch),
            ),
            watch,
            remote.shown,
        )
    if result.failed and failures:
        log.debug("first transfer failure", exc_info=failures[0])
        raise _explain(failures[0], remote, len(result.failed))
    return len(result.failed)


def _explain(exc: BaseException, remote: data.Remote, failed: int) -> RemoteError:
    if remote.is_s3:
        with contextlib.suppress(Exception):
            return data.explain_s3_error(exc, remote)
    return RemoteError(f"{failed} files failed to transfer with {remote.url}: {exc}")


def _remote_odb(repo: Any) -> Any:
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException

    try:
        odb = repo.cloud.get_remote_odb(None, "push")
    except NoRemoteError:
        raise RemoteError(
            "no DVC remote is configured; set one with `aero data remote URL`"
        ) from None
    except DvcException as exc:
        # TODO: version-aware and worktree remotes keep files under their
        # workspace paths; this refusal can go once transfer supports them.
        raise RemoteError(f"the DVC remote is not supported here: {exc}") from None
    return odb


def _size(cache: Any, hash_info: Any) -> int:
    try:
        return os.path.getsize(cache.oid_to_path(hash_info.value))
    except OSError:
        return 0


def _remote_size(odb: Any, hash_info: Any) -> int:
    try:
        return int(odb.fs.size(odb.oid_to_path(hash_info.value)) or 0)
    except (OSError, ValueError):
        return 0


def _with_missing(moved: Moved, missing: set[Any]) -> Moved:
    files = [h for h in missing if not h.isdir]
    if not files:
        return moved
    return Moved(moved.verb, moved.files, moved.nbytes, moved.remote, len(files))


@contextlib.contextmanager
def _dvc_errors(remote: data.Remote) -> Iterator[None]:
    """Turn what DVC and boto raise into one line naming the remote."""
    from dvc.exceptions import DvcException

    try:
        yield
    except UserError:
        raise
    except DvcException as exc:
        raise RemoteError(f"DVC failed on {remote.url}: {exc}") from exc
    except Exception as exc:
        if remote.is_s3:
            with contextlib.suppress(Exception):
                raise data.explain_s3_error(exc, remote) from None
        if isinstance(exc, OSError):
            raise RemoteError(f"cannot reach {remote.url}: {exc}") from None
        raise


@contextlib.contextmanager
def _failures() -> Iterator[list[BaseException]]:
    """Collect the exceptions DVC logs for failed transfers instead of printing them.

    DVC logs each failure with its traceback and carries on; the caller turns
    the first one into a line of its own.
    """
    found: list[BaseException] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info and record.exc_info[1] is not None:
                found.append(record.exc_info[1])

    logger = logging.getLogger("dvc_data.hashfile.transfer")
    handler = Collect(level=logging.ERROR)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield found
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _bytes_callback_class() -> type[Any]:
    from fsspec.callbacks import Callback  # type: ignore[import-untyped]

    class Bytes(Callback):  # type: ignore[misc]
        """Forwards the bytes each file moves to `Progress`.

        DVC counts files on the callback it is given and bytes on the child
        callback it branches off for each file.
        """

        def __init__(
            self, progress: Progress | None, watch: Watch, child: bool = False
        ) -> None:
            super().__init__()
            self._progress = progress
            self._watch = watch
            self._child = child
            self._seen = 0

        def branched(self, path_1: str, path_2: str, **kwargs: Any) -> Any:
            return Bytes(self._progress, self._watch, child=True)

        def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
            self._watch.touch()
            delta, self._seen = self.value - self._seen, self.value
            if self._child and self._progress and delta > 0:
                self._progress.advance(delta)

    return Bytes


_classes: dict[str, type[Any]] = {}


def _bytes_callback(progress: Progress | None, watch: Watch) -> Any:
    if "bytes" not in _classes:
        _classes["bytes"] = _bytes_callback_class()
    return _classes["bytes"](progress, watch)
