"""`aero export-notebook-env`: a Jupyter kernel in the project's runtime, pinned
to the data of a run (or of the current commit)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from aeromancy.kernelspec import Exported


def command(
    run_id: Annotated[
        str | None,
        typer.Argument(help="The run whose data the notebook reads (default: HEAD)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Kernel name (default: aero-PROJECT-RUN)."),
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option("--runtime", help="docker, nix or host (default: configured)."),
    ] = None,
    prefix: Annotated[
        Path | None,
        typer.Option(
            "--prefix", help="Install under PREFIX/share/jupyter/kernels instead."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a kernel of the same name.")
    ] = False,
) -> None:
    """Install a Jupyter kernel that runs in the project's runtime and reads the
    data of RUN_ID with aeromancy.notebook.load(). Notebooks are never tracked."""
    from aeromancy import config, kernelspec
    from aeromancy.cli.build import show_step
    from aeromancy.console import out

    root = config.find_root()
    exported = kernelspec.export(
        root,
        run_id,
        name=name,
        runtime=runtime,
        prefix=prefix,
        force=force,
        progress=show_step,
    )
    _report(exported)
    out().print(exported.name, markup=False)


def _report(exported: Exported) -> None:
    """What was installed, what it is pinned to, and how to pick it (stderr)."""
    from aeromancy.console import err

    pin = exported.pin
    if exported.built:
        err().print(
            f"built the kernel's {exported.runtime} environment: {exported.where}",
            markup=False,
        )
    pinned = f"commit {pin.commit[:12]}"
    if pin.run:
        fingerprint = (pin.fingerprint or "")[:12]
        pinned = (
            f"run {pin.run} (stage {pin.stage}, fingerprint {fingerprint}) at {pinned}"
        )
    err().print(
        f"installed kernel '{exported.name}' in {exported.spec_dir}\n"
        f"it runs in the {exported.runtime} runtime: {exported.where}\n"
        f"data pinned to {pinned}: aeromancy.notebook.load(PATH) reads that version\n"
        f"pick it in Jupyter as '{exported.display_name}' (Kernel > Change "
        f"kernel), or `jupyter console --kernel {exported.name}`\n"
        "running a notebook is never a tracked run: to record a result, make it "
        "a stage and `aero repro`",
        markup=False,
    )
    for warning in exported.warnings:
        err().print(f"warning: {warning}", markup=False)
