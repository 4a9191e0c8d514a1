"""Typer, adjusted so that running a command does not import pydantic.

Typer coerces each parameter's value through a pydantic adapter unless the
parameter is a flag whose value is already a bool. The `--help` flag of every
command is None when it is not given, so every `aero` command paid ~65 ms to
import pydantic before doing anything (10 % of a no-op `aero repro --dev`).
`Group` makes an absent `--help` False on the group and on each of its commands,
and converts the choice options (`--runtime docker`) to their enum, and plain
`str`, `int` and `Path` parameters (and lists of them) to their type, itself.

TODO: remove when typer skips coercion for a flag left at its default
(checked with typer 0.29.2).
"""

from __future__ import annotations

import enum
import types
import typing
from pathlib import Path
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
            for param in command.params:
                _enum_without_pydantic(param)
        return command


def _default_false(option: Any) -> Any:
    if option is not None and option.default is None:
        option.default = False
    return option


class _EnumCoercion:
    """Typer's coercion for a choice option, without pydantic."""

    def __init__(self, kind: type[enum.Enum]) -> None:
        self.kind = kind

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or isinstance(value, self.kind):
            return value
        try:
            return self.kind(value)
        except ValueError:
            from typer._click.exceptions import BadParameter

            choices = ", ".join(str(member.value) for member in self.kind)
            raise BadParameter(
                f"{value!r} is not one of {choices}.", ctx=ctx, param=param
            ) from None


class _PlainCoercion:
    """Typer's coercion for a `str`, `int`, `bool` or `Path` parameter (or a
    list of one), without pydantic: click has parsed the value already."""

    def __init__(self, kind: type, many: bool, info: Any) -> None:
        self.kind = kind
        self.many = many
        self.info = info

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if param.multiple or param.nargs == -1 else None
        if self.many:
            return [self._one(item, param, ctx) for item in value]
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: Any, ctx: Any) -> Any:
        from typer._click.exceptions import BadParameter

        try:
            converted = self.kind(value)
        except (TypeError, ValueError):
            raise BadParameter(
                f"{value!r} is not a valid {self.kind.__name__}.", ctx=ctx, param=param
            ) from None
        low, high = getattr(self.info, "min", None), getattr(self.info, "max", None)
        if (low is not None and converted < low) or (
            high is not None and converted > high
        ):
            bounds = f"at least {low}" if high is None else f"from {low} to {high}"
            raise BadParameter(f"{value} is not {bounds}.", ctx=ctx, param=param)
        return converted


_PLAIN = (str, int, Path)


def _enum_without_pydantic(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = kinds[0] if len(kinds) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        param._runtime_param = _EnumCoercion(annotation)
        return
    many = typing.get_origin(annotation) is list
    if many:
        inner = typing.get_args(annotation)
        annotation = inner[0] if len(inner) == 1 else None
    if annotation in _PLAIN:
        info = getattr(descriptor, "parameter_info", None)
        param._runtime_param = _PlainCoercion(annotation, many, info)
