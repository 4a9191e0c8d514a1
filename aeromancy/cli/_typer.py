"""Typer, adjusted so that running a command does not import pydantic.

Typer coerces each parameter's value through a pydantic adapter unless the
parameter is a flag whose value is already a bool. The `--help` flag of every
command is None when it is not given, so every `aero` command paid ~65 ms to
import pydantic before doing anything (10 % of a no-op `aero repro --dev`).
`Group` makes an absent `--help` False on the group and on each of its commands.

TODO: remove when typer skips coercion for a flag left at its default
(checked with typer 0.29.2).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

__all__ = ["Group"]


class Group(TyperGroup):
    """A typer group whose commands' `--help` flags default to False."""

    def get_help_option(self, ctx: Any) -> Any:
        return _default_false(super().get_help_option(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _default_false(command.get_help_option(ctx))
        return command


def _default_false(option: Any) -> Any:
    if option is not None and option.default is None:
        option.default = False
    return option
