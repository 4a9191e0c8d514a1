"""Runtimes: where a stage's command runs, and what that place is made of.

`base.py` says what every runtime gives; `host.py` is the machine itself (dev
mode, and tracked runs of a project that chose it, recorded as unsealed);
`docker.py` is a container image built and run by any Docker-API engine;
`nix.py` is the dev shell of the project's flake.nix.
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
    if chosen == "nix":
        from aeromancy.runtime.nix import NixRuntime

        return NixRuntime(settings.root, settings.runtime)
    raise UserError(
        f"unknown runtime '{chosen}'; tool.aeromancy.runtime.kind is one of "
        "docker, nix, host"
    )
