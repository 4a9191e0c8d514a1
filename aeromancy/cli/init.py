"""`aero init`: create a project, or adopt an existing git + DVC repository."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer


class Tracker(str, enum.Enum):
    wandb = "wandb"
    mlflow = "mlflow"
    none = "none"


class Runtime(str, enum.Enum):
    docker = "docker"
    nix = "nix"
    host = "host"


def command(
    directory: Annotated[Path, typer.Argument(help="Folder of the project.")] = Path(
        "."
    ),
    remote: Annotated[
        str | None,
        typer.Option(
            help="s3://bucket/prefix or a local folder "
            "(default: a local store in the user's data folder)."
        ),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="S3 endpoint URL (MinIO, Ceph RGW, Garage...).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="S3 region.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile name.")] = None,
    tracker: Annotated[
        Tracker, typer.Option(help="Where stage runs are logged.")
    ] = Tracker.wandb,
    runtime: Annotated[
        Runtime, typer.Option(help="What stages run in.")
    ] = Runtime.docker,
    force: Annotated[
        bool,
        typer.Option(
            help="Add the scaffold to a non-empty folder (no file is overwritten)."
        ),
    ] = False,
) -> None:
    """Create an Aeromancy project in DIR, or adopt the git + DVC repo there."""
    from aeromancy import scaffold
    from aeromancy.console import err, out

    options = scaffold.InitOptions(
        remote=remote,
        endpoint=endpoint,
        region=region,
        profile=profile,
        tracker=tracker.value,
        runtime=runtime.value,
        force=force,
    )
    with err().status(f"Setting up {directory}..."):
        result = scaffold.init(directory, options)

    for path in result.added:
        err().print(f"  added {path}", markup=False)
    for path in result.kept:
        err().print(f"  kept  {path} (already there)", markup=False)
    verb = "adopted" if result.adopted else "created"
    err().print(
        f"{verb} Aeromancy project {result.root} (remote {result.remote.url})",
        markup=False,
    )
    if result.commit:
        err().print(
            f"first commit {result.commit[:12]}; next: cd {directory} && "
            "aero repro (tracked) or aero repro --dev (untracked)",
            markup=False,
        )
    else:
        err().print("review the added files and commit them before a tracked run")
    out().print(str(result.root), markup=False)
