"""`aero repro`: run the DVC pipeline stage by stage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from aeromancy.cli.build import RUNTIME_HELP
from aeromancy.cli.init import Runtime as Kind
from aeromancy.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    from aeromancy import pipeline

# TARGETS are the context's extra arguments rather than a typer argument: typer
# coerces a list argument through pydantic even when it is empty, and importing
# pydantic costs ~65 ms, 10 % of a no-op `aero repro --dev` (see cli/_typer.py).
SETTINGS: dict[str, Any] = {
    "context_settings": {"allow_extra_args": True},
    "options_metavar": "[OPTIONS] [TARGETS]...",
}

_MARKS = {
    "ran": "[green]ran[/]",
    "up to date": "[dim]up to date[/]",
    "failed": "[red]failed[/]",
    "aborted": "[red]aborted[/]",
}


def command(
    ctx: typer.Context,
    dev: Annotated[
        bool, typer.Option("--dev", help="Run on the host, untracked: fast, offline.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Run stages even if up to date.")
    ] = False,
    runtime: Annotated[Kind | None, typer.Option(help=RUNTIME_HELP)] = None,
    debug_shell: Annotated[
        bool,
        typer.Option(
            "--debug-shell", help="Open a shell in the container stages run in."
        ),
    ] = False,
) -> None:
    """Reproduce the pipeline; every stage that runs is tracked unless --dev.

    TARGETS are the stages to reproduce, by name or as a dvc.yaml or .dvc path
    (default: all).
    """
    from aeromancy import config

    targets: list[str] = ctx.args
    root = config.find_root()
    if debug_shell:
        _debug_shell(root, runtime)
    elif dev:
        config.load(root)
        if runtime not in (None, Kind.host):
            raise UserError("--dev runs on the host, untracked; drop --runtime")
        _dev(root, targets, force)
    else:
        _tracked(root, targets, force, runtime)


def _started(name: str, command: str) -> None:
    from rich.markup import escape

    from aeromancy.console import err

    shown = f"  [dim]> {escape(command)}[/]" if command else ""
    err().print(f"[bold]stage {escape(name)}[/]{shown}")


def _done(result: pipeline.StageResult, made_by: str = "", run_id: str = "") -> None:
    from aeromancy.console import err

    mark = _MARKS.get(result.status, result.status)
    note = (
        f" (run {run_id})" if run_id else f" (made by run {made_by})" if made_by else ""
    )
    err().print(f"  {mark} in {result.seconds:.2f}s{note}")


def _dev(root: Path, targets: list[str], force: bool) -> None:
    from aeromancy import pipeline
    from aeromancy.console import err

    results = pipeline.reproduce(
        root, targets, force=force, on_start=_started, on_done=_done
    )
    ran = [r.name for r in results if r.status == pipeline.RAN]
    fresh = [r.name for r in results if r.status == pipeline.UP_TO_DATE]
    err().print(
        f"dev run (untracked): {len(ran)} ran ({', '.join(ran) or '-'}), "
        f"{len(fresh)} up to date ({', '.join(fresh) or '-'})",
        markup=False,
    )


def _debug_shell(root: Path, kind: Kind | None) -> None:
    from pathlib import Path

    from aeromancy import config
    from aeromancy.cli.build import select

    chosen = select(config.load(root), kind)
    if not hasattr(chosen, "debug_shell"):
        raise UserError(f"--debug-shell needs a container runtime, not {chosen.kind}")
    raise typer.Exit(chosen.debug_shell(Path.cwd()))


def _tracked(root: Path, targets: list[str], force: bool, kind: Kind | None) -> None:
    from aeromancy import config, tracked
    from aeromancy.cli.build import select
    from aeromancy.console import err

    def stage_done(stage: tracked.StageRun) -> None:
        record = stage.record
        _done(stage.result, stage.made_by or "", record.run_id if record else "")

    chosen = select(config.load(root), kind)
    run = tracked.repro(
        root,
        targets,
        force=force,
        runtime=chosen,
        on_start=_started,
        on_stage=stage_done,
    )
    for warning in (*chosen.build().warnings, *run.warnings):
        err().print(f"[yellow]warning:[/] {warning}", highlight=False)
    records = run.records
    fresh = [s.result.name for s in run.stages if s.record is None]
    err().print(
        f"tracked run {run.invocation}: {len(records)} recorded "
        f"({', '.join(f'{r.stage} {r.run_id}' for r in records) or '-'}), "
        f"{len(fresh)} up to date"
        + (f"; committed dvc.lock as {run.commit[:12]}" if run.commit else ""),
        markup=False,
    )
