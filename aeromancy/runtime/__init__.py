"""Runtimes: where a stage's command runs, and what that place is made of.

`base.py` says what every runtime gives; `host.py` is the machine itself (dev
mode, and tracked runs of a project that chose it, recorded as unsealed);
`docker.py` is a container image built and run by any Docker-API engine.
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
    if chosen == "docker":
        from aeromancy.runtime.docker import DockerRuntime

        return DockerRuntime(settings.root, settings.runtime)
    # TODO: the nix runtime arrives with the rest of issue 5; until then a
    # project picks docker, or host (recorded as unsealed).
    raise UserError(
        f"runtime '{chosen}' is not available yet; set "
        'tool.aeromancy.runtime.kind = "docker" in pyproject.toml (or "host", '
        "recorded as unsealed), or use `aero repro --dev`"
    )
