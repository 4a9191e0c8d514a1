"""`aero build`: build the sealed runtime, or find it built; print its id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aeromancy.cli.init import Runtime as Kind

if TYPE_CHECKING:
    from aeromancy import config
    from aeromancy.runtime.base import Runtime

RUNTIME_HELP = "The runtime to use (default: tool.aeromancy.runtime.kind)."


def command(
    runtime: Annotated[Kind | None, typer.Option(help=RUNTIME_HELP)] = None,
) -> None:
    """Build the runtime image (or find it by its id) and print the runtime id."""
    from aeromancy import config
    from aeromancy.console import say, warn

    root = config.find_root()
    chosen = select(config.load(root), runtime)
    built = chosen.build()
    for warning in built.warnings:
        warn(warning)
    if chosen.kind == "host":
        say("host runtime: nothing to build (unsealed)")
    elif built.built:
        say(f"built {built.reference} ({built.image})")
    else:
        say(f"up to date: {built.reference} ({built.image})")
    say(built.runtime_id, data=True)


def select(settings: config.Config, kind: Kind | None) -> Runtime:
    """The runtime `kind` (or the configured one), showing build steps on stderr."""
    from aeromancy.runtime import select as select_runtime

    runtime = select_runtime(settings, kind.value if kind else None)
    if hasattr(runtime, "progress"):
        runtime.progress = show_step
    return runtime


def show_step(line: str) -> None:
    """One build step, dimmed, on stderr."""
    from aeromancy.console import err

    err().print(f"  [dim]{line}[/]", highlight=False)
