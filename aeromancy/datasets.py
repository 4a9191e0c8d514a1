"""Datasets: external data brought into `data/NAME/` once, immutable and versioned.

`ingest` copies a local file or folder, or an `s3://` object or prefix, into
`data/NAME/`, tracks it with DVC, pushes it to the remote and commits the
`.dvc` file, so that the commit names the exact bytes. The workspace copy is
read-only (linked from the cache, files without write permission); a change
made in place anyway is found by `check_unchanged`, from DVC's own record of
what it has hashed. A new version is made only on request, and every version
stays reachable: its `.dvc` file in git history, its bytes in the remote.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy import data, gitstate, transfer
from aeromancy._dvc import open_repo
from aeromancy.errors import UserError

__all__ = [
    "DATA_DIR",
    "DatasetError",
    "Ingested",
    "Version",
    "check_name",
    "check_unchanged",
    "ingest",
    "protect",
    "versions",
]

log = logging.getLogger(__name__)

DATA_DIR = "data"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class DatasetError(UserError):
    """A dataset cannot be ingested or looked up as asked."""


@dataclass(frozen=True)
class Ingested:
    """What `ingest` did: the dataset, its hash, and the commit that records it."""

    name: str
    path: str
    hash: str
    size: int
    files: int
    commit: str | None
    previous: str | None = None
    moved: transfer.Moved | None = None

    @property
    def unchanged(self) -> bool:
        return self.commit is None


@dataclass(frozen=True)
class Version:
    """One version of a dataset, as a commit of its `.dvc` file recorded it."""

    hash: str
    size: int | None
    files: int | None
    commit: str
    date: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "size": self.size,
            "files": self.files,
            "commit": self.commit,
            "date": self.date,
        }


def check_name(name: str) -> str:
    """Refuse a dataset name that is not one plain folder name under `data/`."""
    if not _NAME.match(name) or name.endswith(".dvc") or ".." in name:
        raise DatasetError(
            f"invalid dataset name '{name}': use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, no '/' or '..'), e.g. --name census-2020"
        )
    return name


def ingest(
    root: Path,
    source: str,
    name: str | None = None,
    *,
    new_version: bool = False,
    progress: transfer.Progress | None = None,
) -> Ingested:
    """Bring `source` into `data/NAME/`, track, push and commit it.

    The same content again changes nothing. Other content under a name already
    used is refused unless `new_version`. On any failure the workspace, the
    index and the history are as they were.
    """
    remote = data.project_remote(root)
    name = check_name(_default_name(source) if name is None else name)
    fetch = _locate(source, remote)
    data.check_reachable(remote)
    dataset = root / DATA_DIR / name
    pointer = dataset.with_name(f"{name}.dvc")
    _check_target(root, dataset, pointer)

    with _staging(root) as staging:
        staged = staging / name
        fetch(staged)
        digest = _hash(root, staged)
        previous = _recorded_hash(pointer)
        if previous == digest:
            return _already(root, name, pointer)
        if previous is not None and not new_version:
            raise DatasetError(
                f"dataset '{name}' already holds other content ({_short(previous)}); "
                f"{source} hashes to {_short(digest)}: pass --new-version to record "
                "it as a new version, or pick another --name"
            )
        with _undo_on_failure(root, dataset, staging):
            if dataset.exists():
                dataset.rename(staging / ".previous")
            staged.rename(dataset)
            size, files = _track(root, dataset)
            moved = transfer.push(root, [_relative(root, pointer)], progress=progress)
            commit = _commit(root, name, digest, previous, size, files)
    return Ingested(
        name, _relative(root, dataset), digest, size, files, commit, previous, moved
    )


def versions(root: Path, name: str) -> list[Version]:
    """Every version of dataset `name`, newest first, from the history of its `.dvc`."""
    import yaml

    pointer = f"{DATA_DIR}/{check_name(name)}.dvc"
    log_lines = gitstate.git(root, "log", "--format=%H %cI", "--", pointer)
    found = []
    for line in log_lines.splitlines():
        commit, date = line.split(" ", 1)
        try:
            text = gitstate.git(root, "show", f"{commit}:{pointer}")
        except gitstate.GitError:
            continue  # the commit that deleted it
        out = (yaml.safe_load(text) or {}).get("outs", [{}])[0]
        found.append(
            Version(
                hash=str(out.get("md5", "")),
                size=out.get("size"),
                files=out.get("nfiles"),
                commit=commit,
                date=date,
            )
        )
    if not found:
        raise DatasetError(
            f"no dataset '{name}' in the history of {root.name}; "
            f"ingest one with `aero data ingest SOURCE --name {name}`"
        )
    return found


def check_unchanged(root: Path) -> list[str]:
    """The datasets under `data/` whose workspace content differs from their hash.

    DVC's state answers for each file it has hashed before, by inode, size and
    modification time, so an unchanged dataset is not read again.
    """
    changed = []
    with open_repo(root) as repo:
        for stage in repo.index.stages:
            if not stage.is_data_source or not stage.path_in_repo.startswith(
                f"{DATA_DIR}/"
            ):
                continue
            for out in stage.outs:
                if out.workspace_status():
                    changed.append(Path(str(out)).name)
    return sorted(changed)


def _default_name(source: str) -> str:
    base = source.rstrip("/").rsplit("/", 1)[-1]
    stem = base.split(".", 1)[0] if not base.startswith(".") else base
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem) or "dataset"


def _locate(source: str, remote: data.Remote) -> Any:
    """A function that copies `source` to a path; refuse a source that is not there."""
    if source.startswith("s3://"):
        return _locate_s3(source, remote)
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(
            f"source {source} does not exist; give a file, a folder or s3://bucket/key"
        )
    if path.is_dir():
        return lambda to: shutil.copytree(path, to, symlinks=False)

    def copy_file(to: Path) -> None:
        to.mkdir()
        shutil.copy2(path, to / path.name)

    return copy_file


def _locate_s3(source: str, remote: data.Remote) -> Any:
    bucket, _, key = source[len("s3://") :].partition("/")
    if not data.is_bucket_name(bucket):
        raise DatasetError(
            f"malformed source '{source}': '{bucket}' is not a valid bucket name; "
            "use s3://bucket/key"
        )
    client = data.s3_client(remote)
    try:
        if key and not key.endswith("/") and _object_exists(client, bucket, key):
            keys = [(key, key.rsplit("/", 1)[-1])]
        else:
            prefix = f"{key.rstrip('/')}/" if key else ""
            keys = [
                (found, found[len(prefix) :])
                for found in _list_keys(client, bucket, prefix)
            ]
    except Exception as exc:
        raise data.explain_s3_error(exc, remote, bucket) from None
    if not keys:
        raise DatasetError(
            f"source {source} does not exist: no object or prefix at "
            f"{remote.endpoint or 'AWS S3'}; check the bucket and key"
        )

    def download(to: Path) -> None:
        try:
            for key_, relative in keys:
                target = to / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                data.s3_client(remote).download_file(bucket, key_, str(target))
        except Exception as exc:
            raise data.explain_s3_error(exc, remote, bucket) from None

    return download


def _object_exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
            return False
        raise
    return True


def _list_keys(client: Any, bucket: str, prefix: str) -> Iterator[str]:
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix
    )
    for page in pages:
        for entry in page.get("Contents", []):
            if not entry["Key"].endswith("/"):
                yield entry["Key"]


def _check_target(root: Path, dataset: Path, pointer: Path) -> None:
    if dataset.exists() and not pointer.exists():
        raise DatasetError(
            f"{_relative(root, dataset)} exists and is not a dataset; "
            "move it away or pick another --name"
        )
    paths = [_relative(root, pointer), f"{DATA_DIR}/.gitignore"]
    dirty = gitstate.git(root, "status", "--porcelain", "--", *paths)
    if dirty:
        raise DatasetError(
            f"{', '.join(line[3:] for line in dirty.splitlines())} has uncommitted "
            "changes; commit or discard them before ingesting"
        )


@contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A scratch folder on the same device as `data/`, so a move is a rename."""
    tmp = root / ".dvc" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="aero-ingest-", dir=tmp))
    try:
        yield folder
    finally:
        _remove(folder)


def _hash(root: Path, staged: Path) -> str:
    """The hash `dvc add` will give `staged`; DVC's state remembers it for the add."""
    from dvc_data.hashfile.build import build

    with open_repo(root) as repo:
        _, _, obj = build(repo.cache.local, str(staged), repo.fs, "md5", dry_run=True)
    return str(obj.hash_info.value)


def _recorded_hash(pointer: Path) -> str | None:
    import yaml

    if not pointer.exists():
        return None
    outs = (yaml.safe_load(pointer.read_text(encoding="utf-8")) or {}).get("outs")
    return str(outs[0]["md5"]) if outs else None


def _already(root: Path, name: str, pointer: Path) -> Ingested:
    import yaml

    out = yaml.safe_load(pointer.read_text(encoding="utf-8"))["outs"][0]
    return Ingested(
        name=name,
        path=f"{DATA_DIR}/{name}",
        hash=str(out["md5"]),
        size=int(out.get("size", 0)),
        files=int(out.get("nfiles", 0)),
        commit=None,
    )


def _track(root: Path, dataset: Path) -> tuple[int, int]:
    """`dvc add` the dataset and take write permission off its files."""
    from dvc.exceptions import DvcException

    with open_repo(root) as repo:
        try:
            (stage,) = repo.add(str(dataset))
        except DvcException as exc:
            raise DatasetError(
                f"DVC cannot track {_relative(root, dataset)}: {exc}"
            ) from None
        meta = stage.outs[0].meta
    protect(dataset)
    return int(meta.size or 0), int(meta.nfiles or 0)


def protect(dataset: Path) -> None:
    """Take write permission off every regular file of `dataset`.

    Hardlinks and symlinks into the cache are read-only already; a copy or a
    reflink is not until this runs.
    """
    for folder, _, names in os.walk(dataset):
        for file_name in names:
            path = Path(folder, file_name)
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                path.chmod(stat.S_IMODE(mode) & ~0o222)


def _commit(
    root: Path, name: str, digest: str, previous: str | None, size: int, files: int
) -> str:
    what = f"{files} file{'s' if files != 1 else ''}, {transfer.human_size(size)}"
    if previous:
        message = (
            f"New version of dataset {name}: {_short(digest)} ({what}), "
            f"was {_short(previous)}"
        )
    else:
        message = f"Ingest dataset {name}: {_short(digest)} ({what})"
    paths = [f"{DATA_DIR}/{name}.dvc", f"{DATA_DIR}/.gitignore"]
    gitstate.git(root, "add", "--", *paths)
    # Only these paths: whatever else the user has staged stays staged.
    gitstate.git(root, "commit", "--quiet", "--no-verify", "-m", message, "--", *paths)
    return gitstate.head_commit(root)


@contextmanager
def _undo_on_failure(root: Path, dataset: Path, staging: Path) -> Iterator[None]:
    """Put `data/NAME`, its `.dvc` file and `data/.gitignore` back on failure."""
    pointer = dataset.with_name(f"{dataset.name}.dvc")
    ignore = dataset.parent / ".gitignore"
    saved = {p: p.read_bytes() if p.exists() else None for p in (pointer, ignore)}
    try:
        yield
    except BaseException:
        _remove(dataset)
        if (staging / ".previous").exists():
            (staging / ".previous").rename(dataset)
        for path, content in saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        paths = [_relative(root, p) for p in saved]
        try:
            gitstate.git(root, "reset", "--quiet", "--", *paths)
        except gitstate.GitError as exc:
            log.warning("could not unstage %s: %s", ", ".join(paths), exc)
        raise


def _remove(path: Path) -> None:
    # Read-only files go with their folder: removing a name needs the folder's
    # write permission, not the file's.
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _short(digest: str) -> str:
    return f"md5 {digest.removesuffix('.dir')[:12]}"
