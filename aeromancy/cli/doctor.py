"""`aero doctor`: whether git, DVC, the remote, the cache, the runtime, the
tracker and Jupyter answer, one line each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from aeromancy.doctor import Check


def command(
    json_: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Check what a tracked run needs: git, DVC, the project, the remote, the
    cache, the runtime, the tracker and Jupyter. Exits 1 when one fails."""
    import json

    from aeromancy import doctor
    from aeromancy.console import out
    from aeromancy.errors import UserError

    checks = doctor.diagnose()
    if json_:
        out().print_json(json.dumps([check.as_dict() for check in checks]))
    else:
        _render(checks)
    failed = [check.name for check in checks if check.status == doctor.FAIL]
    if failed:
        raise UserError(f"{len(failed)} check(s) failed: {', '.join(failed)}")


_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def _render(checks: list[Check]) -> None:
    from rich.markup import escape

    from aeromancy.console import out

    for check in checks:
        style = _STYLE[check.status]
        line = f"[{style}]{check.status:<4}[/] {check.name:<8} {escape(check.detail)}"
        if check.fix:
            line += f" [dim]({escape(check.fix)})[/]"
        out().print(line, highlight=False)
