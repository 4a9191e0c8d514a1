"""Reruns: a past run rebuilt from its record alone, and its outputs verified.

`rerun` finds the run record (locally or in the remote, so a fresh clone on
another machine works), makes a separate git worktree at the recorded commit,
pulls the recorded input versions, rebuilds or reuses the recorded runtime kind
(reporting package drift against the stored manifests), reproduces the stage
and what it needs, tracked and linked to the original (`rerun_of`), and
compares each output's hash with the recorded one. With param changes the same
environment and data run with new params, and nothing is verified.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aeromancy import _worktree, config, data, fingerprint, gitstate, runs, tracked
from aeromancy._worktree import RerunError
from aeromancy.errors import UserError
from aeromancy.params import ParamChange, apply_changes
from aeromancy.runtime.base import Runtime

__all__ = [
    "DIFFERS",
    "IDENTICAL",
    "MISSING",
    "Drift",
    "OutputVerdict",
    "ParamChange",
    "Rerun",
    "RerunError",
    "compare_outputs",
    "find",
    "rerun",
    "runtime_drift",
]

log = logging.getLogger(__name__)

IDENTICAL = "identical"
DIFFERS = "differs"
MISSING = "missing"
# Nodes a rerun must reproduce as recorded; the runtime is reported as drift.
_INPUT_NODES = ("code", "data", "params", "stage")
# Where the commit was fetched from: a clone's origin is not an input.
_WHERE_FROM = ("code", "remote")

Note = Callable[[str], None]


@dataclass(frozen=True)
class Drift:
    """One thing the runtime or the inputs have now that the record did not:
    where (`python > numpy`, `data > build/prepared`), recorded and now."""

    where: str
    recorded: Any
    now: Any


@dataclass(frozen=True)
class OutputVerdict:
    """One output of the rerun against the recorded one (hash, size each side)."""

    path: str
    verdict: str
    recorded: dict[str, Any]
    rerun: dict[str, Any]


@dataclass
class Rerun:
    """What `rerun` did.

    Attributes:
        original: the record of the run that was rerun.
        run: the tracked run the rerun made (every stage it executed).
        record: the new record of the original's stage.
        drift: runtime differences, package by package (warnings).
        inputs: code, data, params or command differences against the record.
        outputs: each output's verdict; empty when nothing was verified.
        changes: the params changed on request (nothing verified then).
        kept: the worktree, when kept.
        notes: what happened on the way, for the user.
    """

    original: runs.RunRecord
    run: tracked.TrackedRun
    record: runs.RunRecord
    drift: list[Drift] = field(default_factory=list)
    inputs: list[Drift] = field(default_factory=list)
    outputs: list[OutputVerdict] = field(default_factory=list)
    changes: list[ParamChange] = field(default_factory=list)
    kept: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return bool(self.outputs)

    @property
    def diverged(self) -> bool:
        """Whether a verified output (or an input it came from) differs."""
        return bool(self.inputs) or any(o.verdict != IDENTICAL for o in self.outputs)

    @property
    def verdict(self) -> str:
        """`reproduced`, `diverged`, `unverified` (--no-verify) or `changed`
        (params changed on request, so nothing was compared)."""
        if self.changes:
            return "changed"
        if not self.verified:
            return "unverified"
        return "diverged" if self.diverged else "reproduced"

    def as_dict(self) -> dict[str, Any]:
        """What `aero rerun --json` prints."""
        return {
            "original": self.original.run_id,
            "rerun": self.record.run_id,
            "stage": self.record.stage,
            "verdict": self.verdict,
            "outputs": [dataclasses.asdict(o) for o in self.outputs],
            "inputs": [dataclasses.asdict(d) for d in self.inputs],
            "drift": [dataclasses.asdict(d) for d in self.drift],
            "changes": [str(change) for change in self.changes],
            "kept": str(self.kept) if self.kept else None,
            "notes": list(self.notes),
        }


def rerun(
    root: Path,
    run_id: str,
    *,
    stage: str | None = None,
    verify: bool = True,
    keep: bool = False,
    changes: Sequence[ParamChange] = (),
    on_note: Note | None = None,
    on_start: Any = None,
    on_stage: Any = None,
) -> Rerun:
    """Rerun the run `run_id` (or the run of `stage` in its invocation).

    Args:
        root: the project.
        run_id: a run id, its unique prefix, or an invocation id.
        stage: which stage of the run's invocation to rerun.
        verify: compare the outputs with the recorded ones.
        keep: keep the worktree instead of removing it.
        changes: params to change; nothing is verified then.
        on_note: told what happens on the way (worktree, data, runtime).
        on_start: `tracked.repro`'s hook, before each stage.
        on_stage: `tracked.repro`'s hook, after each stage.

    Raises:
        UnknownRunError: no run has that id.
        RerunError: the commit, a data version or the runtime is gone, or the
            worktree already exists.
    """
    note = on_note or (lambda _: None)
    settings = config.load(root)
    remote = _remote(settings)
    original = find(root, remote, run_id, stage)
    _check_rerunnable(root, original, verify and not changes)
    where = _worktree.create(root, original.run_id, original.commit)
    note(f"worktree {where.relative_to(root)} at commit {original.commit[:12]}")
    try:
        done = _rerun_in(
            root, remote, where, original, list(changes), note, on_start, on_stage
        )
        if verify and not changes:
            done.outputs = compare_outputs(original, done.record)
            done.inputs = _input_changes(original, done.record)
        done.kept = where if keep else None
        return done
    finally:
        if not keep:
            _worktree.remove(root, where)


def find(
    root: Path, remote: data.Remote | None, run_id: str, stage: str | None = None
) -> runs.RunRecord:
    """The record of `run_id`; with `stage`, the run of that stage in the same
    invocation. An invocation id (`aero repro` prints it) names its last run."""
    try:
        record: runs.RunRecord | None = runs.load(root, remote, run_id)
    except runs.UnknownRunError:
        record = None
    if record is not None and stage in (None, record.stage):
        return record
    invocation = record.invocation if record else run_id
    group = [r for r in runs.list_runs(root, remote) if r.invocation == invocation]
    if not group:
        runs.load(root, remote, run_id)  # raises the unknown-run error
    if stage is None:
        return max(group, key=lambda r: (r.ended, r.run_id))
    for candidate in group:
        if candidate.stage == stage:
            return candidate
    stages = ", ".join(sorted({r.stage for r in group}))
    raise RerunError(
        f"invocation {invocation} recorded no run of stage '{stage}' "
        f"(stages: {stages}); `aero runs list` shows every run"
    )


def compare_outputs(
    original: runs.RunRecord, new: runs.RunRecord
) -> list[OutputVerdict]:
    """Each output of `original` (and of `new`) with its verdict."""
    found = []
    for path in sorted(set(original.outputs) | set(new.outputs)):
        before = original.outputs.get(path, {})
        after = new.outputs.get(path, {})
        if not after.get("hash"):
            verdict = MISSING
        elif after.get("hash") == before.get("hash"):
            verdict = IDENTICAL
        else:
            verdict = DIFFERS
        found.append(OutputVerdict(path, verdict, before, after))
    return found


def runtime_drift(
    root: Path, remote: data.Remote | None, recorded: dict[str, Any], runtime: Runtime
) -> list[Drift]:
    """How `runtime` differs from the `recorded` runtime node, package by package
    where the recorded package list is stored, else by manifest digest."""
    from aeromancy.manifest import DebianManifest, NixClosure, PythonManifest

    now = runtime.manifest()
    digests = now.digests()
    parsers: dict[str, Any] = {
        "debian": DebianManifest,
        "python": PythonManifest,
        "nix": NixClosure,
    }
    current: dict[str, Any] = {
        "debian": now.debian,
        "python": now.python,
        "nix": now.nix_closure,
    }
    found: list[Drift] = []
    for kind in ("debian", "python", "nix"):
        old, new = recorded.get(f"{kind}_digest"), digests[kind]
        if old == new:
            continue
        text = runs.load_manifest(root, remote, kind, old) if old else None
        if text is None or kind not in parsers:
            found.append(Drift(f"{kind} manifest", _short(old), _short(new)))
            continue
        before = parsers[kind].parse(text).versions()
        after = current[kind].versions() if current[kind] else {}
        found.extend(
            Drift(f"{kind} > {name}", before.get(name), after.get(name))
            for name in sorted(set(before) | set(after))
            if before.get(name) != after.get(name)
        )
    if not found and recorded.get("id") != runtime.id:
        found.append(
            Drift("runtime id", _short(recorded.get("id")), _short(runtime.id))
        )
    return found


def _rerun_in(
    root: Path,
    remote: data.Remote | None,
    where: Path,
    original: runs.RunRecord,
    changes: list[ParamChange],
    note: Note,
    on_start: Any,
    on_stage: Any,
) -> Rerun:
    """The rerun itself, inside the worktree `where`."""
    if changes:
        commit = apply_changes(where, changes)
        note(f"params changed: {', '.join(map(str, changes))} (commit {commit[:12]})")
    runtime = _runtime(config.load(where), original)
    drift = _drift(root, remote, original, runtime)
    target = _target(where, original.stage)
    moved = _worktree.pull_inputs(where, original, target)
    if moved is not None:
        note(f"inputs at their recorded versions: {moved.summary()}")
    with _inside(where):
        run = tracked.repro(
            where,
            [target],
            force=True,
            runtime=runtime,
            rerun_of=original.run_id,
            on_start=on_start,
            on_stage=on_stage,
        )
    mine = [r for r in run.records if r.stage == original.stage]
    if not mine:
        raise RerunError(f"stage '{original.stage}' did not run in the rerun")
    done = Rerun(original, run, mine[-1], drift=drift, changes=changes)
    if changes:
        ref = f"refs/aeromancy/reruns/{run.invocation}"
        gitstate.git(where, "update-ref", ref, "HEAD")
        done.notes.append(f"the changed params' commit is kept as {ref}")
    return done


def _check_rerunnable(root: Path, record: runs.RunRecord, verify: bool) -> None:
    if verify and record.status != runs.SUCCEEDED:
        raise RerunError(
            f"run {record.run_id} {record.status}: it has no outputs to verify "
            "against; rerun it with --no-verify"
        )
    if _worktree.has_commit(root, record.commit):
        return
    source = record.fingerprint.get("code", {}).get("remote")
    where = (
        f"fetch it from {source} (`git fetch {source}`)"
        if source
        else "the record names no git remote: fetch it from the repository "
        "the run was made in"
    )
    raise RerunError(
        f"commit {record.commit[:12]} of run {record.run_id} is not in this "
        f"repository; {where}"
    )


def _runtime(settings: config.Config, record: runs.RunRecord) -> Runtime:
    """The recorded runtime kind, built (or found) from the recorded commit."""
    from aeromancy.runtime import select

    kind = record.fingerprint.get("runtime", {}).get("kind") or settings.runtime.kind
    try:
        return select(settings, kind)
    except UserError as exc:
        raise RerunError(
            f"runtime '{kind}' of run {record.run_id} cannot be rebuilt: {exc.message}"
        ) from exc


def _drift(
    root: Path, remote: data.Remote | None, record: runs.RunRecord, runtime: Runtime
) -> list[Drift]:
    try:
        return runtime_drift(
            root, remote, record.fingerprint.get("runtime", {}), runtime
        )
    except UserError as exc:
        raise RerunError(
            f"runtime '{runtime.kind}' of run {record.run_id} cannot be rebuilt: "
            f"{exc.message}"
        ) from exc


def _target(where: Path, stage: str) -> str:
    """The stage as `tracked.repro` takes it: a name in the top dvc.yaml, else
    its dvc.yaml inside the worktree."""
    if "/" in stage or ":" in stage:
        return str(where / stage)
    return stage


def _input_changes(original: runs.RunRecord, new: runs.RunRecord) -> list[Drift]:
    """What the rerun read that differs from what the original read."""
    return [
        Drift(change.dotted, change.a, change.b)
        for change in fingerprint.diff(original.fingerprint, new.fingerprint)
        if change.path[0] in _INPUT_NODES and change.path != _WHERE_FROM
    ]


@contextlib.contextmanager
def _inside(where: Path) -> Iterator[None]:
    """Work from `where`: DVC's run cache resolves a stage's path against the
    working directory, and refuses one outside the repository it runs."""
    before = Path.cwd()
    os.chdir(where)
    try:
        yield
    finally:
        os.chdir(before)


def _remote(settings: config.Config) -> data.Remote | None:
    remote = settings.remote
    if not remote.url:
        return None
    return data.parse_remote(remote.url, remote.endpoint, remote.region, remote.profile)


def _short(value: Any) -> Any:
    return value[:12] if isinstance(value, str) else value
