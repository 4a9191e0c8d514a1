"""The DVC side of transfers: which objects the workspace uses, what the
cache and the remote hold, and DVC's own object transfer with byte progress,
a stall watch and one-line errors. `transfer.py` puts these together.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from aeromancy import data
from aeromancy._stall import Watch, watched
from aeromancy.errors import RemoteError, UserError

if TYPE_CHECKING:
    from aeromancy.transfer import Progress

__all__ = [
    "checkout",
    "compare",
    "dvc_errors",
    "expand",
    "remote_odb",
    "remote_size",
    "size",
    "transfer",
    "used_objects",
]

log = logging.getLogger(__name__)


def checkout(repo: Any, targets: Sequence[str]) -> None:
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


def used_objects(repo: Any, targets: Sequence[str]) -> set[Any]:
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


def expand(cache: Any, objs: set[Any]) -> set[Any]:
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


def compare(src: Any, dest: Any, objs: set[Any], jobs: int) -> Any:
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


def transfer(
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


def remote_odb(repo: Any) -> Any:
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


def size(cache: Any, hash_info: Any) -> int:
    try:
        return os.path.getsize(cache.oid_to_path(hash_info.value))
    except OSError:
        return 0


def remote_size(odb: Any, hash_info: Any) -> int:
    try:
        return int(odb.fs.size(odb.oid_to_path(hash_info.value)) or 0)
    except (OSError, ValueError):
        return 0


@contextlib.contextmanager
def dvc_errors(remote: data.Remote) -> Iterator[None]:
    """Turn what DVC and boto raise into one line naming the remote."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        from dvc.exceptions import DvcException  # only now: it costs 50 ms

        if isinstance(exc, DvcException):
            raise RemoteError(f"DVC failed on {remote.url}: {exc}") from exc
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
