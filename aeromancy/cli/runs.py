"""`aero runs`: list, show and compare run records; sync offline tracker runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from aeromancy.cli._typer import Group

if TYPE_CHECKING:
    from pathlib import Path

    from rich.tree import Tree

    from aeromancy.data import Remote

app = typer.Typer(
    help="List, show and compare tracked runs.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    cls=Group,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _project() -> tuple[Path, Remote | None]:
    from aeromancy import config, data

    root = config.find_root()
    settings = config.load(root)
    if not settings.remote.url:
        return root, None
    remote = data.parse_remote(
        settings.remote.url,
        settings.remote.endpoint,
        settings.remote.region,
        settings.remote.profile,
    )
    return root, remote


@app.command("list")
def list_command(as_json: JsonFlag = False) -> None:
    """Every tracked run of the project, newest first (local index and remote)."""
    from rich.table import Column, Table

    from aeromancy import runs
    from aeromancy.console import out

    root, remote = _project()
    records = runs.list_runs(root, remote)
    if as_json:
        out().print_json(json.dumps([json.loads(r.to_json()) for r in records]))
        return
    # A run id starts with its UTC start time, so it is the time column too.
    table = Table(
        Column("run", no_wrap=True, min_width=22),
        Column("stage", overflow="fold"),
        Column("status", no_wrap=True),
        Column("fingerprint", no_wrap=True),
        Column("commit", no_wrap=True),
    )
    for record in records:
        table.add_row(
            record.run_id,
            record.stage,
            record.status,
            record.fingerprint_digest[:12],
            record.commit[:10],
        )
    out().print(table)


@app.command("show")
def show_command(run_id: str, as_json: JsonFlag = False) -> None:
    """One run record: fingerprint, outputs, params, timings, tracker link."""
    from rich.text import Text
    from rich.tree import Tree

    from aeromancy import runs
    from aeromancy.console import out

    root, remote = _project()
    record = runs.load(root, remote, run_id)
    if as_json:
        out().print(record.to_json(), end="", markup=False, highlight=False)
        return
    tree = Tree(Text(f"run {record.run_id}  stage {record.stage}  {record.status}"))
    tree.add(Text(f"command: {record.command}"))
    tree.add(
        Text(f"started {record.started}, ended {record.ended}, exit {record.exit_code}")
    )
    tree.add(Text(f"fingerprint {record.fingerprint_digest}"))
    _add_mapping(tree.add(Text("fingerprint tree")), record.fingerprint)
    _add_mapping(tree.add(Text("outputs")), record.outputs)
    if record.tracker:
        _add_mapping(tree.add(Text("tracker")), record.tracker)
    if record.rerun_of:
        tree.add(Text(f"rerun of {record.rerun_of}"))
    out().print(tree, markup=False)


def _add_mapping(branch: Tree, value: object) -> None:
    from rich.text import Text

    if not isinstance(value, dict):
        branch.add(Text(str(value)))
        return
    for key in sorted(value):
        child = value[key]
        if isinstance(child, dict):
            _add_mapping(branch.add(Text(str(key))), child)
        else:
            branch.add(Text(f"{key}: {child}"))


@app.command("diff")
def diff_command(run_a: str, run_b: str, as_json: JsonFlag = False) -> None:
    """What differs between two runs: code, runtime packages, data, params, outputs."""
    from rich.table import Column, Table

    from aeromancy import rundiff, runs
    from aeromancy.console import err, out

    root, remote = _project()
    a = runs.load(root, remote, run_a)
    b = runs.load(root, remote, run_b)
    differences = rundiff.compare(root, remote, a, b)
    if as_json:
        rows = [{"where": d.where, "a": d.a, "b": d.b} for d in differences]
        linked = {"a": a.rerun_of, "b": b.rerun_of}
        out().print_json(
            json.dumps(
                {"a": a.run_id, "b": b.run_id, "rerun_of": linked, "differences": rows}
            )
        )
        return
    for rerun, original in ((b, a), (a, b)):
        if rerun.rerun_of == original.run_id:
            err().print(
                f"run {rerun.run_id} is a rerun of run {original.run_id}", markup=False
            )
    if not differences:
        err().print(f"runs {a.run_id} and {b.run_id} do not differ", markup=False)
        return
    table = Table(
        "where",
        Column(a.run_id, overflow="fold"),
        Column(b.run_id, overflow="fold"),
    )
    for difference in differences:
        table.add_row(difference.where, _shown(difference.a), _shown(difference.b))
    out().print(table)


@app.command("sync")
def sync_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be uploaded.")
    ] = False,
) -> None:
    """Upload the tracker runs kept offline (W&B offline mode)."""
    from aeromancy import config
    from aeromancy.console import err, out
    from aeromancy.tracking.base import sync

    root = config.find_root()
    settings = config.load(root)
    handled = sync(settings.tracker, root, dry_run=dry_run)
    for folder in handled:
        out().print(folder, markup=False)
    verb = "would upload" if dry_run else "uploaded"
    err().print(f"{verb} {len(handled)} offline run(s) to {settings.tracker.kind}")


def _shown(value: object) -> str:
    from rich.markup import escape

    return "-" if value is None else escape(str(value))
