"""`aero rerun`: rebuild a past run from its record and verify its outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from aeromancy import rerun as rerun_
    from aeromancy import tracked

_SHOWN = {"identical": "[green]identical[/]", "differs": "[red]differs[/]"}


def command(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID", help="A run id, its prefix, or an invocation id."
        ),
    ],
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Rerun this stage of the run's invocation."),
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Rerun without comparing outputs.")
    ] = False,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the worktree the rerun ran in.")
    ] = False,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="[FILE:]KEY=VALUE",
            help="Change a param (YAML value); the rerun is then not verified.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the verdict as JSON only (stage output to stderr)."
        ),
    ] = False,
) -> None:
    """Rerun RUN_ID from its record alone and say whether its outputs came back
    the same: exit 0 when identical, 3 when they diverged."""
    import contextlib
    import json

    from aeromancy import config, rerun
    from aeromancy.cli.repro import _done, _started
    from aeromancy.console import err, out, stdout_to_stderr
    from aeromancy.errors import RerunDivergedError

    changes = [rerun.ParamChange.parse(text) for text in settings or []]

    def stage_done(stage_run: tracked.StageRun) -> None:
        record = stage_run.record
        _done(
            stage_run.result, stage_run.made_by or "", record.run_id if record else ""
        )

    with stdout_to_stderr() if as_json else contextlib.nullcontext():
        done = rerun.rerun(
            config.find_root(),
            run_id,
            stage=stage,
            verify=not no_verify,
            keep=keep,
            changes=changes,
            on_note=lambda text: err().print(text, markup=False),
            on_start=_started,
            on_stage=stage_done,
        )
    if as_json:
        out().print_json(json.dumps(done.as_dict(), default=str))
    else:
        _report(done)
    if done.diverged:
        raise RerunDivergedError(_overall(done))
    err().print(_overall(done), markup=False)


def _report(done: rerun_.Rerun) -> None:
    from aeromancy.console import err, out

    for warning in done.run.warnings:
        err().print(f"[yellow]warning:[/] {warning}", highlight=False)
    if done.drift:
        err().print(
            f"[yellow]warning:[/] the runtime drifted from run "
            f"{done.original.run_id}'s: {_listed(done.drift)}",
            highlight=False,
        )
    for line in done.notes:
        err().print(line, markup=False)
    if done.kept:
        err().print(f"worktree kept in {done.kept}", markup=False)
    if done.inputs:
        err().print(
            f"the rerun read different inputs: {_listed(done.inputs)}", markup=False
        )
    if done.outputs:
        out().print(_table(done))


def _table(done: rerun_.Rerun) -> object:
    from rich.markup import escape
    from rich.table import Column, Table

    table = Table(
        "output",
        "verdict",
        Column(f"run {done.original.run_id}", overflow="fold"),
        Column(f"rerun {done.record.run_id}", overflow="fold"),
    )
    for row in done.outputs:
        table.add_row(
            escape(row.path),
            _SHOWN.get(row.verdict, f"[red]{row.verdict}[/]"),
            _side(row.recorded),
            _side(row.rerun),
        )
    return table


def _side(entry: dict[str, object]) -> str:
    """The hash and size of one side of an output; "-" where it has none."""
    digest = entry.get("hash")
    if not digest:
        return "-"
    size = entry.get("size")
    return f"{digest}\n{size} B" if isinstance(size, int) else str(digest)


def _overall(done: rerun_.Rerun) -> str:
    original = done.original.run_id
    new = done.record.run_id
    if done.changes:
        asked = ", ".join(map(str, done.changes))
        return (
            f"rerun {new} of run {original} with {asked}: recorded, not verified "
            "(params were changed on request)"
        )
    if not done.verified:
        return f"rerun {new} of run {original}: recorded, not verified (--no-verify)"
    counts = {
        verdict: sum(o.verdict == verdict for o in done.outputs)
        for verdict in ("identical", "differs", "missing")
    }
    total = len(done.outputs)
    if not done.diverged:
        return (
            f"rerun {new} reproduced run {original}: "
            f"{total} of {total} outputs identical"
        )
    named = [f"{o.path} {o.verdict}" for o in done.outputs if o.verdict != "identical"]
    inputs = [f"input {d.where} differs" for d in done.inputs]
    return (
        f"rerun {new} diverged from run {original}: {', '.join(named + inputs)} "
        f"({counts['identical']} of {total} outputs identical)"
    )


def _listed(drift: list[rerun_.Drift]) -> str:
    shown = [f"{d.where} {d.recorded or '-'} -> {d.now or '-'}" for d in drift[:8]]
    more = f" and {len(drift) - 8} more" if len(drift) > 8 else ""
    return ", ".join(shown) + more
