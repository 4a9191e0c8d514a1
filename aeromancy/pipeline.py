"""Pipeline: run a project's DVC DAG one stage at a time.

DVC plans the DAG and decides, stage by stage, whether anything changed;
Aeromancy hooks in around each stage (DVC's `repro_fn`), so it sees every stage
as it finishes and can act on it before the next one starts. Data DVC has
already hashed is never hashed again here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy._dvc import open_repo
from aeromancy.errors import (
    PipelineError,
    StageAbortedError,
    StageFailedError,
    UserError,
)
from aeromancy.fingerprint import stage_name

__all__ = ["StageResult", "reproduce"]

log = logging.getLogger(__name__)

RAN = "ran"
UP_TO_DATE = "up to date"
FAILED = "failed"
ABORTED = "aborted"
# A command killed by SIGINT: -2 from Popen, 130 from a shell that forwarded it.
_INTERRUPTED = (-2, 130)


@dataclass(frozen=True)
class StageResult:
    """One stage of a pipeline run: its name, what happened, how long it took.

    `name` is relative to the project root (`train`, `sub/dvc.yaml:train`,
    `data/x.dvc`); `exit_code` is the command's, for a failed or aborted stage.
    """

    name: str
    status: str
    seconds: float
    exit_code: int | None = None


Hook = Callable[[str, str], None]
Report = Callable[[StageResult], None]
# Called with DVC's stage object right after DVC is done with it, before the
# next stage starts: tracked runs fingerprint, push and record it here.
StageHook = Callable[[Any, StageResult], None]


def reproduce(
    root: Path,
    targets: Sequence[str] = (),
    *,
    force: bool = False,
    on_start: Hook | None = None,
    on_stage: StageHook | None = None,
    on_done: Report | None = None,
    repo: Any = None,
) -> list[StageResult]:
    """Reproduce `targets` (the whole pipeline when empty) with DVC, on the host.

    `on_start` gets a stage's name and command before DVC looks at it;
    `on_stage` gets DVC's stage object and the result once DVC is done with it;
    `on_done` gets the result last. A failing stage raises `StageFailedError`
    with the command's exit code (`StageAbortedError` when interrupted) after
    the hooks have seen it. `repo` is an open `dvc.repo.Repo` for `root` to
    reuse (opening one costs about 0.2 s); one is opened and closed otherwise.
    """
    from dvc.exceptions import DvcException
    from dvc.repo.reproduce import _reproduce_stage
    from dvc.stage.exceptions import StageCmdFailedError

    if not targets and not (root / "dvc.yaml").exists():
        raise PipelineError(
            f"no dvc.yaml in {root}; add a stage with `dvc stage add` first"
        )

    results: list[StageResult] = []

    def finish(stage: Any, status: str, began: float, code: int | None = None) -> None:
        result = StageResult(
            stage_name(stage.repo, stage), status, time.perf_counter() - began, code
        )
        results.append(result)
        if on_stage:
            on_stage(stage, result)
        if on_done:
            on_done(result)

    def run_one(stage: Any, **kwargs: Any) -> Any:
        name = stage_name(stage.repo, stage)
        if on_start:
            on_start(name, getattr(stage, "cmd", None) or "")
        began = time.perf_counter()
        try:
            ran = _reproduce_stage(stage, **kwargs)
        except StageCmdFailedError as exc:
            code = _exit_code(exc)
            if code in _INTERRUPTED:
                finish(stage, ABORTED, began, code)
                raise StageAbortedError(name) from exc
            finish(stage, FAILED, began, code)
            raise StageFailedError(name, code) from exc
        except DvcException as exc:
            finish(stage, FAILED, began)
            raise PipelineError(f"stage '{name}' cannot run: {exc}") from exc
        except KeyboardInterrupt:
            finish(stage, ABORTED, began)
            raise
        finish(stage, RAN if ran else UP_TO_DATE, began)
        return ran

    if repo is not None:
        _run(repo, root, targets, force, run_one)
    else:
        with open_repo(root) as opened:
            _run(opened, root, targets, force, run_one)
    return results


def _run(
    repo: Any, root: Path, targets: Sequence[str], force: bool, run_one: Any
) -> None:
    """Let DVC reproduce `targets` in `repo`, calling `run_one` for each stage."""
    from dvc.exceptions import DvcException

    resolved = [_resolve(root, target) for target in targets]
    _check_targets(repo, resolved, targets)
    try:
        repo.reproduce(
            resolved or [str(root / "dvc.yaml")], force=force, repro_fn=run_one
        )
    except DvcException as exc:
        if isinstance(exc.__cause__, UserError):
            raise exc.__cause__ from exc
        raise PipelineError(f"dvc refused the pipeline: {exc}") from exc


def _resolve(root: Path, target: str) -> str:
    """A stage name means the project's dvc.yaml wherever `aero` runs from;
    a path (`sub/dvc.yaml:stage`, `data/x.dvc`) is the user's, relative to here."""
    if "/" in target or ":" in target or target.endswith((".dvc", ".yaml")):
        return target
    return f"{root / 'dvc.yaml'}:{target}"


def _check_targets(repo: Any, resolved: Sequence[str], targets: Sequence[str]) -> None:
    """Name an unknown target the way the user typed it."""
    from dvc.exceptions import DvcException

    for path, target in zip(resolved, targets, strict=True):
        try:
            repo.stage.collect(path)
        except DvcException:
            known = ", ".join(sorted(s.addressing for s in repo.index.stages)) or "none"
            raise PipelineError(
                f"unknown stage '{target}' in dvc.yaml (stages: {known})"
            ) from None


def _exit_code(exc: Exception) -> int:
    # DVC keeps the code only in its message: "failed to run: CMD, exited with N".
    match = re.search(r"exited with (-?\d+)", str(exc))
    return int(match.group(1)) if match else 1
