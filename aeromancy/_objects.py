"""The DVC objects a workspace uses, read from its DVC files without DVC.

`aero data push` to S3 needs only the hashes that `.dvc` files and `dvc.lock`
record, and the cache's directory listings; importing DVC and opening the
repository to learn them costs about 0.7 s, a quarter of pushing 256 MiB. So
the push reads them here, and anything this reader does not fully understand
(templated stages, hashes other than DVC 3's md5, imports, cloud-versioned
outputs, nested projects) makes it answer None, and the push asks DVC.
Nothing is hashed here: every hash is one DVC wrote.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LocalCache", "Oid", "RemoteLayout", "listing", "workspace_objects"]

# Keys of an output entry this reader knows; any other means: ask DVC.
_KNOWN = {"path", "md5", "hash", "size", "nfiles", "cache", "persist", "desc",
          "remote", "push", "type", "labels", "meta"}  # fmt: skip


@dataclass(frozen=True)
class Oid:
    """An object id as DVC's transfer code uses it: `value`, and `isdir`."""

    value: str

    @property
    def isdir(self) -> bool:
        return self.value.endswith(".dir")


@dataclass(frozen=True)
class LocalCache:
    """DVC 3's cache layout under `path` (`files/md5/ab/cdef...`)."""

    path: Path

    def oid_to_path(self, oid: str) -> str:
        return str(self.path / "files" / "md5" / oid[:2] / oid[2:])


@dataclass(frozen=True)
class RemoteLayout:
    """The same layout under `path` (`bucket/prefix`) in the remote."""

    path: str

    def oid_to_path(self, oid: str) -> str:
        return f"{self.path.rstrip('/')}/files/md5/{oid[:2]}/{oid[2:]}"


def workspace_objects(root: Path, cache: Path) -> set[Oid] | None:
    """Every object the workspace's cached outputs use, directories expanded
    from their listings in `cache`; None when DVC must be asked instead."""
    import yaml

    outs: list[dict[str, Any]] = []
    uncached = set()
    for relative in _git_files(root, "*.dvc", "*dvc.yaml", "*dvc.lock"):
        name = relative.rsplit("/", 1)[-1]
        if name != relative and name in ("dvc.yaml", "dvc.lock"):
            return None  # a pipeline in a subfolder: its paths are relative to it
        try:
            document = yaml.load((root / relative).read_text("utf-8"), yaml.CSafeLoader)
        except (OSError, yaml.YAMLError):
            return None
        if not isinstance(document, dict):
            return None
        if name == "dvc.yaml":
            found = _uncached(document)
            if found is None:
                return None
            uncached |= found
        elif name == "dvc.lock":
            stages = document.get("stages") or {}
            outs += [o for stage in stages.values() for o in stage.get("outs") or ()]
        else:
            if document.get("deps") or document.get("frozen"):
                return None  # an import: its data is another repository's
            outs += list(document.get("outs") or ())
    return _expand(_hashes(outs, uncached), LocalCache(cache))


def _git_files(root: Path, *patterns: str) -> list[str]:
    done = subprocess.run(
        ["git", "ls-files", "-z", "--", *patterns],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return [path for path in done.stdout.split("\0") if path]


def _uncached(document: dict[str, Any]) -> set[str] | None:
    """The paths a dvc.yaml marks `cache: false` or `push: false` (nothing to
    push); None when it is templated."""
    if "vars" in document or "${" in json.dumps(document):
        return None
    found = set()
    for stage in (document.get("stages") or {}).values():
        if not isinstance(stage, dict) or "foreach" in stage or "matrix" in stage:
            return None
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or ():
                if isinstance(entry, dict):
                    for path, options in entry.items():
                        if isinstance(options, dict) and (
                            options.get("cache") is False
                            or options.get("push") is False
                        ):
                            found.add(path)
    return found


def _hashes(outs: Iterable[Any], uncached: set[str]) -> set[Oid] | None:
    found = set()
    for out in outs:
        if not isinstance(out, dict) or set(out) - _KNOWN:
            return None
        if False in (out.get("cache"), out.get("push")) or out.get("path") in uncached:
            continue
        if out.get("hash") != "md5" or not isinstance(out.get("md5"), str):
            return None  # DVC 2's hashes live elsewhere in the cache
        found.add(Oid(out["md5"]))
    return found


def _expand(objs: set[Oid] | None, cache: LocalCache) -> set[Oid] | None:
    """`objs` and the files of each directory whose listing the cache holds."""
    if objs is None:
        return None
    found = set(objs)
    for oid in objs:
        if not oid.isdir:
            continue
        try:
            found |= {Oid(value) for value in listing(cache, oid.value)}
        except FileNotFoundError:
            continue  # not in the cache: counted as missing, as DVC does
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return found


def listing(cache: Any, oid: str) -> set[str]:
    """The object ids of a directory's files, from its listing in `cache`
    (DVC's cache or a `LocalCache`: anything with `oid_to_path`).

    Raises:
        FileNotFoundError: the cache has no such listing.
    """
    entries = json.loads(Path(cache.oid_to_path(oid)).read_bytes())
    return {str(entry["md5"]) for entry in entries}
