"""`aero data`: ingest datasets, move data to and from the remote, list versions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aeromancy.cli._typer import Group

__all__ = ["app"]

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

app = typer.Typer(
    name="data",
    help="Datasets and the DVC remote: ingest, push, pull, status, versions.",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=Group,
)

Jobs = Annotated[
    int | None, typer.Option("--jobs", "-j", help="Parallel transfers.", min=1)
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]


@app.command("ingest")
def ingest(
    source: Annotated[
        str, typer.Argument(help="A local file or folder, or s3://bucket/key[/].")
    ],
    name: Annotated[
        str | None, typer.Option(help="Dataset name: data/NAME/ (default: SOURCE's).")
    ] = None,
    new_version: Annotated[
        bool,
        typer.Option("--new-version", help="Record other content under a used NAME."),
    ] = False,
) -> None:
    """Bring SOURCE into data/NAME/ once: tracked, pushed, committed, read-only."""
    from aeromancy import config, datasets
    from aeromancy.console import err, out

    root = config.find_root()
    with _Bar() as bar:
        done = datasets.ingest(
            root, source, name, new_version=new_version, progress=bar
        )
    if done.unchanged:
        err().print(
            f"dataset {done.name} already holds this content "
            f"(md5 {_short(done.hash)}); nothing to do",
            markup=False,
        )
    else:
        if done.moved:
            err().print(done.moved.summary(), markup=False)
        verb = "new version of" if done.previous else "ingested"
        err().print(
            f"{verb} dataset {done.name}: {done.path}, md5 {_short(done.hash)}, "
            f"{done.files} files; committed {done.commit[:12] if done.commit else ''}",
            markup=False,
        )
    out().print(done.hash, markup=False)


@app.command("versions")
def versions(
    name: Annotated[str, typer.Argument(help="Dataset name (data/NAME).")],
    as_json: Json = False,
) -> None:
    """List every version of dataset NAME: hash, size, commit, date."""
    from aeromancy import config, datasets, transfer
    from aeromancy.console import out

    found = datasets.versions(config.find_root(), name)
    if as_json:
        _print_json([v.as_dict() for v in found])
        return
    for version in found:
        size = transfer.human_size(version.size) if version.size is not None else "?"
        out().print(
            f"{_short(version.hash)}  {size:>9}  {version.files or '?':>6} files  "
            f"{version.commit[:12]}  {version.date}",
            markup=False,
        )


Targets = Annotated[
    list[str] | None,
    typer.Argument(help=".dvc files, outputs or folders holding them (default: all)."),
]


@app.command("push")
def push(targets: Targets = None, jobs: Jobs = None) -> None:
    """Push the data the workspace uses to the remote."""
    from aeromancy import config, transfer

    root = config.find_root()
    with _Bar() as bar:
        moved = transfer.push(root, _absolute(targets), jobs=jobs, progress=bar)
    _report(moved)


@app.command("pull")
def pull(
    targets: Targets = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Pull the outputs of run ID.")
    ] = None,
    jobs: Jobs = None,
) -> None:
    """Fetch the data the workspace uses and link it into place."""
    from aeromancy import config, transfer
    from aeromancy.errors import UserError

    if run is not None:
        # TODO: `--run` needs run records (issue 4, runs); pull a run's outputs
        # from its record when they exist.
        raise UserError(
            "`aero data pull --run` arrives with run records; "
            "check out the run's commit and use `aero data pull`"
        )
    root = config.find_root()
    with _Bar() as bar:
        moved = transfer.pull(root, _absolute(targets), jobs=jobs, progress=bar)
    _report(moved)


@app.command("status")
def status(as_json: Json = False) -> None:
    """What is changed in the workspace, missing in the cache or the remote."""
    from aeromancy import config, transfer
    from aeromancy.console import err, out

    found = transfer.status(config.find_root())
    if as_json:
        _print_json([entry.as_dict() for entry in found])
        return
    for entry in found:
        marks = [
            f"{place} {state}"
            for place, state in (
                ("workspace", entry.workspace),
                ("cache", entry.cache),
                ("remote", entry.remote),
            )
            if state != "ok"
        ]
        out().print(f"{entry.path}: {', '.join(marks) or 'ok'}", markup=False)
    behind = [e for e in found if e.remote != "ok"]
    err().print(
        f"{len(found)} outputs tracked; {len(behind)} not in the remote"
        + ("; run `aero data push`" if behind else ""),
        markup=False,
    )


@app.command("remote")
def remote(
    url: Annotated[str, typer.Argument(help="s3://bucket/prefix or a local folder.")],
    endpoint: Annotated[
        str | None, typer.Option(help="S3 endpoint URL (MinIO, Ceph RGW, Garage...).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="S3 region.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile name.")] = None,
) -> None:
    """Point the project to another remote (pyproject.toml and .dvc/config)."""
    from aeromancy import config, data
    from aeromancy.console import err

    root = config.find_root()
    new = data.parse_remote(url, endpoint, region, profile)
    data.change_remote(root, new)
    err().print(
        f"remote is now {new.url}; commit pyproject.toml and .dvc/config, "
        "then `aero data push` to fill it",
        markup=False,
    )


class _Bar:
    """A rich progress bar on stderr, fed by a transfer (`transfer.Progress`)."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            if exc[0] is None and self._task is not None:
                task = self._progress.tasks[0]
                self._progress.update(self._task, completed=task.total)
            self._progress.stop()

    def start(self, files: int, nbytes: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from aeromancy.console import err

        if not files or not err().is_terminal:
            return  # a bar nobody sees would only take time from the transfer
        self._progress = Progress(
            TextColumn(f"{files} file{'s' if files != 1 else ''}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err(),
            transient=True,
        )
        self._task = self._progress.add_task("transfer", total=nbytes)
        self._progress.start()

    def advance(self, nbytes: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, nbytes)


def _report(moved: Any) -> None:
    from aeromancy.console import err

    if moved.missing:
        err().print(
            f"warning: {moved.missing} files are in neither the cache nor the "
            "remote; they were skipped",
            markup=False,
        )
    err().print(moved.summary(), markup=False)


def _absolute(targets: list[str] | None) -> list[str]:
    """Paths as the user typed them, relative to where `aero` runs."""
    import os

    return [os.path.abspath(target) for target in targets or ()]


def _print_json(value: Any) -> None:
    from aeromancy.console import out

    out().print(json.dumps(value, indent=2), markup=False, highlight=False)


def _short(digest: str) -> str:
    return digest.removesuffix(".dir")[:12]
