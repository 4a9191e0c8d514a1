"""The fingerprint: one version for everything a stage's run depends on.

A fingerprint is a tree of five nodes::

    code      commit, remote (no credentials)
    runtime   kind, id, sealed, base/debian/python/nix digests
    data      each dependency path → its DVC hash ("md5:…")
    params    each params file → the params DVC tracks for the stage
    stage     name, command

Each node has its own digest and the fingerprint's digest is the sha256 of the
canonical JSON of the whole tree (sorted keys, no whitespace, UTF-8 as is).
Data hashes come from DVC's objects (dvc.lock, or what DVC just computed for a
stage it ran), never from reading the files again. Outputs are not part of it:
they are what a rerun must reproduce.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "NODES",
    "Change",
    "Fingerprint",
    "StageInputs",
    "build",
    "canonical_json",
    "diff",
    "digest_of",
    "stage_inputs",
    "stage_name",
    "workspace",
]

NODES = ("code", "runtime", "data", "params", "stage")


@dataclass(frozen=True)
class StageInputs:
    """What DVC knows about a stage's inputs.

    Attributes:
        name: the stage's address (`train`, `sub/dvc.yaml:train`).
        cmd: its command, as written in dvc.yaml (a string or a list of them).
        deps: each dependency path (relative to the repository root, `/`
            separators; a URL for an external one) → its DVC hash, `md5:<value>`;
            None when dvc.lock has no hash for it yet.
        params: each params file → `{param: value}` as DVC tracks them; None when
            dvc.lock has no values for it yet.
    """

    name: str
    cmd: str | list[str] | None
    deps: dict[str, str | None]
    params: dict[str, dict[str, Any] | None]


@dataclass(frozen=True)
class Fingerprint:
    """A stage's fingerprint: the tree and its digests."""

    tree: dict[str, Any]

    @property
    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON of the whole tree."""
        return digest_of(self.tree)

    @property
    def node_digests(self) -> dict[str, str]:
        """sha256 (hex) of each node's canonical JSON, by node name."""
        return {name: digest_of(self.tree[name]) for name in NODES}

    def as_dict(self) -> dict[str, Any]:
        """`{"digest", "nodes", "tree"}`: the fingerprint as a record stores it."""
        return {"digest": self.digest, "nodes": self.node_digests, "tree": self.tree}


class Change(NamedTuple):
    """One leaf that differs between two trees; None where a side lacks it."""

    path: tuple[str, ...]
    a: Any
    b: Any

    @property
    def dotted(self) -> str:
        """The path for people: `params > params.yaml > train > lr`."""
        return " > ".join(self.path)


def build(
    inputs: StageInputs, code: Mapping[str, Any], runtime: Mapping[str, Any]
) -> Fingerprint:
    """The fingerprint of a stage.

    Args:
        inputs: from `stage_inputs`.
        code: the code node, `gitstate.CodeState.node()`.
        runtime: the runtime node, `Runtime.describe()`.
    """
    tree = {
        "code": dict(code),
        "runtime": dict(runtime),
        "data": dict(inputs.deps),
        "params": dict(inputs.params),
        "stage": {"name": inputs.name, "cmd": inputs.cmd},
    }
    return Fingerprint(json.loads(canonical_json(tree)))


def stage_inputs(repo: Any, stage: Any) -> StageInputs:
    """Read a DVC stage's inputs from the stage object, hashing nothing.

    A stage loaded from dvc.yaml carries the hashes and params of dvc.lock; a
    stage DVC has just run (in a `repro_fn`) carries what DVC computed for it.

    Args:
        repo: the open `dvc.repo.Repo` the stage belongs to.
        stage: a `dvc.stage.Stage` (usually a `PipelineStage`).
    """
    from dvc.dependency.param import ParamsDependency

    deps: dict[str, str | None] = {}
    params: dict[str, dict[str, Any] | None] = {}
    for dep in stage.deps:
        path = _dep_path(repo, dep)
        if isinstance(dep, ParamsDependency):
            value = dep.hash_info.value if dep.hash_info else None
            params[path] = dict(value) if isinstance(value, dict) else None
        else:
            deps[path] = _dep_hash(dep)
    cmd = getattr(stage, "cmd", None)
    return StageInputs(stage_name(repo, stage), cmd, deps, params)


def stage_name(repo: Any, stage: Any) -> str:
    """A stage's address relative to the repository root, wherever `aero` runs
    (DVC's own `addressing` is relative to the working directory): `train` in
    the top dvc.yaml, `sub/dvc.yaml:train` elsewhere, `data/x.dvc` for a
    `.dvc` file."""
    dvcfile = Path(os.path.relpath(stage.path, repo.root_dir)).as_posix()
    if not getattr(stage, "cmd", None) and dvcfile.endswith(".dvc"):
        return dvcfile
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def workspace(root: Path, runtime: Mapping[str, Any]) -> list[Fingerprint]:
    """The fingerprint of each pipeline stage of the project at `root`, in
    dvc.yaml order, from HEAD's commit and what dvc.lock records (a stage not
    locked yet has None for its hashes).

    Args:
        root: the project (a git work tree with dvc.yaml).
        runtime: the runtime node to put in every fingerprint.
    """
    from aeromancy._dvc import open_repo
    from aeromancy.gitstate import code_state

    code = code_state(root).node()
    with open_repo(root) as repo:
        return [
            build(stage_inputs(repo, stage), code, runtime)
            for stage in repo.index.stages
            if getattr(stage, "cmd", None)
        ]


def diff(tree_a: Mapping[str, Any], tree_b: Mapping[str, Any]) -> list[Change]:
    """Every leaf that differs between two fingerprint trees, node by node.

    Dicts are walked key by key (sorted); anything else (a hash, a command, a list
    of features) is a leaf compared as a whole.
    """
    return list(_diff((), tree_a, tree_b))


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON-able value: sorted keys, no whitespace, UTF-8
    without escapes; dates become ISO strings, tuples lists. NaN is refused."""
    text = json.dumps(
        obj,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_jsonable,
    )
    return text.encode("utf-8")


def digest_of(obj: Any) -> str:
    """sha256 (hex) of `canonical_json(obj)`."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def _diff(path: tuple[str, ...], a: Any, b: Any) -> Iterator[Change]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            yield from _diff((*path, str(key)), a.get(key), b.get(key))
    elif canonical_json(a) != canonical_json(b):
        yield Change(path, a, b)


def _dep_path(repo: Any, dep: Any) -> str:
    """A dependency's path relative to the repository root; an external one
    (`s3://…`, another repo) keeps the path it was declared with."""
    if not dep.is_in_repo:
        return str(dep.def_path)
    return Path(os.path.relpath(dep.fs_path, repo.root_dir)).as_posix()


def _dep_hash(dep: Any) -> str | None:
    info = dep.hash_info
    if not info or info.value is None:
        return None
    version = getattr(dep.meta, "version_id", None) if dep.meta else None
    suffix = f"@{version}" if version else ""
    return f"{info.name}:{info.value}{suffix}"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    raise TypeError(f"{type(obj).__name__} is not part of a fingerprint")
