"""Params changes asked for on the command line: `train.lr=0.1` or
`params.yaml:train.lr=0.1`, written into a YAML params file (comments and order
kept) and committed, so that a tracked run sees a clean tree."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy import gitstate
from aeromancy.errors import UserError

__all__ = ["DEFAULT_FILE", "ParamChange", "ParamsError", "apply_changes"]

DEFAULT_FILE = "params.yaml"
_EXAMPLE = "e.g. train.lr=0.1 or params.yaml:train.lr=0.1"


class ParamsError(UserError):
    """A params change is malformed or names a param the file does not have."""


@dataclass(frozen=True)
class ParamChange:
    """One param to set: its file, its dotted key, the new value."""

    file: str
    key: tuple[str, ...]
    value: Any

    @classmethod
    def parse(cls, text: str) -> ParamChange:
        """Read `[FILE:]KEY=VALUE`; VALUE is YAML (`false`, `0.1`, `[a, b]`)."""
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        spec, sep, raw = text.partition("=")
        file, colon, dotted = spec.rpartition(":")
        key = tuple(dotted.strip().split("."))
        if not sep or not all(key):
            raise ParamsError(f"--set '{text}' is not KEY=VALUE ({_EXAMPLE})")
        try:
            value = YAML(typ="safe", pure=True).load(raw)
        except YAMLError as exc:
            reason = str(exc).splitlines()[0]
            raise ParamsError(
                f"--set '{text}': the value is not YAML ({reason})"
            ) from None
        return cls(file.strip() if colon else DEFAULT_FILE, key, value)

    @property
    def dotted(self) -> str:
        return ".".join(self.key)

    def __str__(self) -> str:
        return f"{self.file}:{self.dotted}={_yaml_text(self.value)}"


def apply_changes(root: Path, changes: Sequence[ParamChange]) -> str:
    """Write `changes` into their params files in the work tree at `root` and
    commit them; return the commit.

    Raises:
        ParamsError: a file is missing or not YAML, a key is unknown, or a
            param already has the asked value.
    """
    files = sorted({change.file for change in changes})
    for name in files:
        _edit(root, name, [c for c in changes if c.file == name])
    message = "aero rerun: set " + ", ".join(map(str, changes))
    return gitstate.commit_paths(root, message, files)


def _edit(root: Path, name: str, changes: list[ParamChange]) -> None:
    from ruamel.yaml import YAML

    path = root / name
    if path.suffix not in (".yaml", ".yml"):
        raise ParamsError(f"--set changes YAML params files only, not {name}")
    if not path.is_file():
        raise ParamsError(f"params file {name} does not exist at the recorded commit")
    yaml = YAML()  # round-trip: comments and key order stay
    document = yaml.load(path.read_text(encoding="utf-8"))
    for change in changes:
        _set(document, change)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _set(document: Any, change: ParamChange) -> None:
    node = document
    for part in change.key[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    leaf = change.key[-1]
    if not isinstance(node, dict) or leaf not in node:
        raise ParamsError(
            f"{change.file} has no param '{change.dotted}' at the recorded commit"
        )
    same_kind = isinstance(node[leaf], bool) == isinstance(change.value, bool)
    if node[leaf] == change.value and same_kind:
        raise ParamsError(
            f"{change.dotted} is already {_yaml_text(change.value)} in "
            f"{change.file} at the recorded commit; nothing would change"
        )
    node[leaf] = change.value


def _yaml_text(value: Any) -> str:
    import json

    return json.dumps(value) if not isinstance(value, str) else value
