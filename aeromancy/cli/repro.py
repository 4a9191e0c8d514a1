"""`aero repro`: run the DVC pipeline stage by stage."""

from __future__ import annotations

from typing import Annotated, Any

import typer

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
}


def command(
    ctx: typer.Context,
    dev: Annotated[
        bool, typer.Option("--dev", help="Run on the host, untracked: fast, offline.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Run stages even if up to date.")
    ] = False,
) -> None:
    """Reproduce the pipeline; every stage that runs is tracked unless --dev.

    TARGETS are the stages to reproduce, by name or as a dvc.yaml or .dvc path
    (default: all).
    """
    from aeromancy import config, pipeline
    from aeromancy.console import err
    from aeromancy.errors import UserError

    targets: list[str] = ctx.args
    root = config.find_root()
    config.load(root)
    if not dev:
        # TODO: tracked runs (fingerprint, run records, trackers) arrive with
        # issue 4; remove this refusal when they do.
        raise UserError("tracked runs are not available yet; use `aero repro --dev`")

    def started(name: str, command: str) -> None:
        shown = f"  [dim]> {command}[/]" if command else ""
        err().print(f"[bold]stage {name}[/]{shown}")

    def done(result: pipeline.StageResult) -> None:
        err().print(f"  {_MARKS[result.status]} in {result.seconds:.2f}s")

    results = pipeline.reproduce(
        root, targets or (), force=force, on_start=started, on_done=done
    )
    ran = [r.name for r in results if r.status == pipeline.RAN]
    fresh = [r.name for r in results if r.status == pipeline.UP_TO_DATE]
    err().print(
        f"dev run (untracked): {len(ran)} ran ({', '.join(ran) or '-'}), "
        f"{len(fresh)} up to date ({', '.join(fresh) or '-'})",
        markup=False,
    )
