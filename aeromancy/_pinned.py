"""Data at a pinned version: which DVC output holds a path at a commit, and its
files in the local DVC cache, fetched from the remote when missing.

An output is read by its hash: the run record's when the pin is a run that
names the output, otherwise the hash DVC recorded at the pinned commit
(`dvc.lock`, `.dvc` files). Objects come from the cache DVC uses for the
project, so a version read once is read again without the remote. Outputs DVC
does not cache (`cache: false` metrics) are git blobs of the pinned commit.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy.errors import UserError

__all__ = [
    "Located",
    "MissingDataError",
    "NotTrackedError",
    "Tracked",
    "files",
    "locate",
    "tracked_at",
]

# Where `path()` lays out a pinned version: links into the cache, by hash.
VIEWS = Path(".aeromancy") / "notebook"


class NotTrackedError(UserError):
    """The path is neither a dataset nor a stage output at the pinned version."""


class MissingDataError(UserError):
    """The pinned version is in neither the local DVC cache nor the remote."""


@dataclass(frozen=True)
class Tracked:
    """One DVC output at a commit: its path from the project's root, its hash
    (`md5:<value>`, `.dir` for a directory) and whether DVC caches it."""

    path: str
    hash: str
    cached: bool = True

    @property
    def value(self) -> str:
        return self.hash.partition(":")[2]

    @property
    def isdir(self) -> bool:
        return self.value.endswith(".dir")


@dataclass(frozen=True)
class Located:
    """A path the user asked for: the output that holds it and where inside."""

    output: Tracked
    inner: str = ""

    @property
    def path(self) -> str:
        return (
            posixpath.join(self.output.path, self.inner)
            if self.inner
            else (self.output.path)
        )


@functools.cache
def tracked_at(root: Path, commit: str) -> dict[str, Tracked]:
    """Every DVC output with a hash at `commit`, by path; read once per process."""
    from dvc.scm import RevError

    from aeromancy._dvc import quiet

    quiet()
    from dvc.repo import Repo

    try:
        repo = Repo(str(root), rev=commit)
    except RevError:
        raise UserError(
            f"commit {commit[:12]} is not in the git repository at {root}; "
            "`git fetch` the branch that has it"
        ) from None
    with repo:
        found = {}
        for out in repo.index.outs:
            if out.hash_info and out.hash_info.value:
                path = posixpath.relpath(out.fs_path, repo.root_dir)
                digest = f"{out.hash_info.name}:{out.hash_info.value}"
                found[path] = Tracked(path, digest, bool(out.use_cache))
    return found


def locate(
    root: Path, commit: str, path: str, recorded: dict[str, str], where: str
) -> Located:
    """The output holding `path` at `commit`; `recorded` hashes (a run record's)
    win over DVC's files. `where` names the pin in errors.

    Raises:
        NotTrackedError: no output is or holds `path`.
    """
    for output in tracked_at(root, commit).values():
        inner = _inside(path, output.path)
        if inner is None:
            continue
        digest = recorded.get(output.path) or output.hash
        return Located(Tracked(output.path, digest, output.cached), inner)
    raise NotTrackedError(
        f"'{path}' is not tracked by DVC at {where}: it is no dataset or stage "
        "output there (`aero data status` lists them); read git files from git"
    )


def files(root: Path, located: Located, commit: str) -> list[tuple[str, Path]]:
    """`(name inside the path, local file)` of each file of `located`, sorted;
    the name is empty when the path is a file. Fetches what the cache lacks.

    Raises:
        MissingDataError: some of it is in neither the cache nor the remote.
    """
    if not located.output.cached:
        return _git_files(root, located, commit)

    from aeromancy._dvc import open_repo

    with open_repo(root) as repo:
        cache = repo.cache.local
        output = located.output
        if not output.isdir:
            _ensure_cached(repo, [output.value], located)
            return [("", Path(cache.oid_to_path(output.value)))]
        _ensure_cached(repo, [output.value], located)
        chosen = _dir_entries(cache, output, located)
        _ensure_cached(repo, list(chosen.values()), located)
        return [(name, Path(cache.oid_to_path(oid))) for name, oid in chosen.items()]


def view(root: Path, located: Located, found: list[tuple[str, Path]]) -> Path:
    """A local path with the pinned content at `located`, under `.aeromancy/`:
    links to the read-only cache files, laid out as the output's files are."""
    output = located.output
    base = root / VIEWS / output.value / posixpath.basename(output.path)
    target = base / located.inner if located.inner else base
    for name, source in found:
        _link(source, target / name if name else target)
    return target


def _inside(path: str, output: str) -> str | None:
    """`path` relative to `output` ("" when equal), None when outside it."""
    if path == output:
        return ""
    if path.startswith(output.rstrip("/") + "/"):
        return path[len(output.rstrip("/")) + 1 :]
    return None


def _dir_entries(cache: Any, output: Tracked, located: Located) -> dict[str, str]:
    """`{name inside the path: md5}` of the directory's files under `inner`."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    tree = Tree.load(cache, HashInfo("md5", output.value))
    prefix = located.inner.strip("/")
    chosen = {}
    for key, _, oid in tree:
        name = "/".join(key)
        inner = _inside(name, prefix) if prefix else name
        if inner is not None and oid is not None:
            chosen[inner] = oid.value
    if not chosen:
        raise NotTrackedError(
            f"'{located.path}' is not in the directory {output.path} at the "
            f"pinned version ({output.value[:12]})"
        )
    return chosen


def _ensure_cached(repo: Any, values: list[str], located: Located) -> None:
    """Pull the objects `values` into the cache unless they are there."""
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException
    from dvc_data.hashfile.hash_info import HashInfo

    cache = repo.cache.local
    missing = [v for v in values if not cache.exists(v)]
    if not missing:
        return
    shown = f"'{located.path}' ({located.output.value[:12]})"
    try:
        repo.cloud.pull([HashInfo("md5", v) for v in missing])
    except NoRemoteError:
        raise MissingDataError(
            f"{shown} is not in the DVC cache and no remote is configured; "
            "set one with `aero data remote URL`"
        ) from None
    except (DvcException, OSError) as exc:
        raise MissingDataError(f"{shown} could not be fetched: {exc}") from None
    if any(not cache.exists(v) for v in missing):
        raise MissingDataError(
            f"{shown} is in neither the DVC cache nor the remote; "
            "`aero data push` it from a machine that has it"
        )


def _git_files(root: Path, located: Located, commit: str) -> list[tuple[str, Path]]:
    """An output DVC does not cache, as git kept it at `commit`, written under
    `.aeromancy/notebook/` by its hash."""
    listed = _git(root, "ls-tree", "-r", "--name-only", commit, "--", located.path)
    names = sorted(listed.decode().splitlines())
    if not names:
        raise MissingDataError(
            f"'{located.path}' is not cached by DVC and not in commit {commit[:12]}"
        )
    if names == [located.path]:
        content = _git(root, "show", f"{commit}:{located.path}")
        _check_md5(content, located, commit)
        return [("", _blob_file(root, content))]
    found = []
    for name in names:
        content = _git(root, "show", f"{commit}:{name}")
        found.append((name[len(located.path) + 1 :], _blob_file(root, content)))
    return found


def _check_md5(content: bytes, located: Located, commit: str) -> None:
    name, _, value = located.output.hash.partition(":")
    if name == "md5" and hashlib.md5(content).hexdigest() != value:
        raise MissingDataError(
            f"'{located.path}' at commit {commit[:12]} is not the pinned version "
            f"({value[:12]}); the commit that recorded it is gone from this clone"
        )


def _blob_file(root: Path, content: bytes) -> Path:
    target = root / VIEWS / "blobs" / hashlib.md5(content).hexdigest()
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(content)
        temporary.chmod(0o444)
        os.replace(temporary, target)
    return target


def _link(source: Path, target: Path) -> None:
    """Make `target` a symlink to `source` (a copy where links are refused)."""
    if target.is_symlink() and os.readlink(target) == str(source):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        temporary.symlink_to(source)
    except OSError:
        import shutil

        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def _git(root: Path, *args: str) -> bytes:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"git {args[0]} failed in {root}: {' '.join(reason[-1:])}")
    return done.stdout
