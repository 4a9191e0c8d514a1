"""Runtimes: where a stage's command runs, and what that place is made of.

`base.py` says what every runtime gives; `host.py` is the machine itself (dev
mode, and tracked runs until a sealed runtime is configured).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aeromancy.errors import UserError

if TYPE_CHECKING:
    from aeromancy.config import Config
    from aeromancy.runtime.base import Runtime

__all__ = ["select"]


def select(settings: Config, kind: str | None = None) -> Runtime:
    """The runtime tracked stages run in: `kind`, or the configured one."""
    chosen = kind or settings.runtime.kind
    if chosen == "host":
        from aeromancy.runtime.host import HostRuntime

        return HostRuntime()
    # TODO: sealed runtimes (docker, nix) arrive with issue 5; until then
    # tracked runs need the host runtime, recorded as unsealed.
    raise UserError(
        f"runtime '{chosen}' is not available yet; set "
        'tool.aeromancy.runtime.kind = "host" in pyproject.toml '
        "(recorded as unsealed), or use `aero repro --dev`"
    )
