"""Comparing two runs node by node: code, runtime down to each package, data
hashes, params, the stage itself, and what came out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy import fingerprint, runs
from aeromancy.data import Remote
from aeromancy.manifest import DebianManifest, NixClosure, PythonManifest

__all__ = ["Difference", "compare"]

_PARSERS: dict[str, Any] = {
    "debian": DebianManifest,
    "python": PythonManifest,
    "nix": NixClosure,
}
_DIGESTS = ("debian_digest", "python_digest", "nix_digest")


@dataclass(frozen=True)
class Difference:
    """One thing that differs: where (`params > params.yaml > train > lr`), and
    its value in each run (None where a run lacks it)."""

    where: str
    a: Any
    b: Any


def compare(
    root: Path, remote: Remote | None, a: runs.RunRecord, b: runs.RunRecord
) -> list[Difference]:
    """What differs between runs `a` and `b`, fingerprint first, then outputs."""
    found: list[Difference] = []
    for change in fingerprint.diff(a.fingerprint, b.fingerprint):
        leaf = change.path[-1]
        if change.path[0] == "runtime" and leaf in _DIGESTS:
            kind = leaf.removesuffix("_digest")
            packages = _packages(root, remote, kind, change.a, change.b)
            if packages is not None:
                found.extend(packages)
                continue
        found.append(Difference(change.dotted, change.a, change.b))

    for path in sorted(set(a.outputs) | set(b.outputs)):
        hash_a = a.outputs.get(path, {}).get("hash")
        hash_b = b.outputs.get(path, {}).get("hash")
        if hash_a != hash_b:
            found.append(Difference(f"outputs > {path}", hash_a, hash_b))
    if a.status != b.status:
        found.append(Difference("status", a.status, b.status))
    return found


def _packages(
    root: Path, remote: Remote | None, kind: str, digest_a: Any, digest_b: Any
) -> list[Difference] | None:
    """Package-level changes, when both runs' lists are in the store."""
    if not (isinstance(digest_a, str) and isinstance(digest_b, str)):
        return None
    texts = [runs.load_manifest(root, remote, kind, d) for d in (digest_a, digest_b)]
    if texts[0] is None or texts[1] is None:
        return None
    old, new = (_PARSERS[kind].parse(text).versions() for text in texts)
    return [
        Difference(f"runtime > {kind} > {name}", old.get(name), new.get(name))
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
