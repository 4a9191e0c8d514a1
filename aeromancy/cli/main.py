"""The `aero` entry point: global options, command registration, and the error
boundary that turns a `UserError` into one red line and an exit code."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import typer

from aeromancy import __version__
from aeromancy.cli import (
    build,
    data,
    doctor,
    init,
    notebook,
    repro,
    rerun,
    runs,
    version,
)
from aeromancy.cli._typer import Group
from aeromancy.errors import AeromancyError, UserError

__all__ = ["app", "main"]

app = typer.Typer(
    name="aero",
    help="Reproducible ML and data pipelines: code, data, runtime and params "
    "tracked as one fingerprint.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rendering it with rich costs ~100 ms of imports.
    rich_markup_mode=None,
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(init.command)
app.command("version")(version.command)
app.command("repro", **repro.SETTINGS)(repro.command)
app.command("build")(build.command)
app.command("export-notebook-env")(notebook.command)
app.command("rerun")(rerun.command)
app.command("doctor")(doctor.command)
app.add_typer(data.app, name="data")
app.add_typer(runs.app, name="runs")

_debug = {"on": os.environ.get("AERO_DEBUG", "") not in ("", "0")}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"aero {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log what happens and show tracebacks."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print Aeromancy's version and exit.",
    ),
) -> None:
    if verbose:
        _debug["on"] = True
    logging.basicConfig(
        level=logging.DEBUG if _debug["on"] else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Run `aero`; a user or usage error becomes one line on stderr and its code."""
    from typer import Abort
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        # Not standalone: click would print a usage error as four lines.
        code = app(prog_name="aero", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ClickException as exc:
        _fail(_usage_line(exc), exc.exit_code)
    except Abort:
        _fail("aborted", 1)
    except UserError as exc:
        if _debug["on"]:
            raise
        _fail(exc.message, exc.exit_code, now=exc.exit_now)
    except AeromancyError as exc:  # a bug: an error we raised without a user line
        if _debug["on"]:
            raise
        _fail(f"internal error: {exc} (rerun with -v for the traceback)", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    else:
        # `typer.Exit(N)` comes back as N; a command that returns gives None.
        if isinstance(code, int) and code:
            sys.exit(code)


def _usage_line(exc: Any) -> str:
    """Click's message, and where the help is: `aero repro -h`."""
    context = getattr(exc, "ctx", None)
    hint = f"; see `{context.command_path} -h`" if context is not None else ""
    return f"{exc.format_message().rstrip('.')}{hint}"


def _fail(message: str, code: int, *, now: bool = False) -> None:
    from rich.markup import escape

    from aeromancy.console import err

    # Escaped: a message may hold brackets ("no [tool.aeromancy] table").
    err().print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if now:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
