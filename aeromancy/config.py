"""Project config: the `[tool.aeromancy]` table of the project's pyproject.toml.

Read and written with tomlkit, so a user's comments and key order survive, and
validated into frozen dataclasses. Every error names the file and the exact key,
for example ``pyproject.toml: tool.aeromancy.runtime.kind must be one of
docker, nix, host (got "dockr")``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aeromancy.errors import ConfigError, ProjectError

__all__ = [
    "RUNTIME_KINDS",
    "TRACKER_KINDS",
    "Config",
    "RemoteConfig",
    "RuntimeConfig",
    "TrackerConfig",
    "append_table",
    "find_root",
    "load",
    "read_document",
    "set_table_values",
]

TRACKER_KINDS = ("wandb", "mlflow", "none")
RUNTIME_KINDS = ("docker", "nix", "host")
WANDB_MODES = ("offline", "online")
TABLE = "tool.aeromancy"


@dataclass(frozen=True)
class TrackerConfig:
    """Where stage runs are logged.

    `project` is the W&B project or MLflow experiment (the project's folder name
    when unset); `entity` and `mode` are W&B's; `tracking_uri` is MLflow's.
    """

    kind: str = "wandb"
    project: str | None = None
    entity: str | None = None
    mode: str = "offline"
    tracking_uri: str | None = None


@dataclass(frozen=True)
class RemoteConfig:
    """The DVC remote that holds data, outputs and run records.

    Credentials never live here: they come from the AWS environment or profiles.
    """

    url: str = ""
    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class RuntimeConfig:
    """What stages run inside: a container image, a Nix closure, or the host."""

    kind: str = "docker"
    base_image: str = "debian:bookworm-slim"
    apt_packages: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()
    lock_file: str | None = None
    dockerfile: str | None = None
    ca_bundle: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    run_flags: tuple[str, ...] = ()
    pass_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """A project's whole Aeromancy config, rooted at the folder holding it."""

    root: Path
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    require_pushed: bool = False

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"


# Each key of each table: (expected kind, allowed values or None).
# Kinds: "str", "bool", "list", "dict" (lists and dicts hold strings).
_Spec = dict[str, tuple[str, tuple[str, ...] | None]]

_TRACKER: _Spec = {
    "kind": ("str", TRACKER_KINDS),
    "project": ("str", None),
    "entity": ("str", None),
    "mode": ("str", WANDB_MODES),
    "tracking_uri": ("str", None),
}
_REMOTE: _Spec = {
    "url": ("str", None),
    "endpoint": ("str", None),
    "region": ("str", None),
    "profile": ("str", None),
}
_RUNTIME: _Spec = {
    "kind": ("str", RUNTIME_KINDS),
    "base_image": ("str", None),
    "apt_packages": ("list", None),
    "hooks": ("list", None),
    "lock_file": ("str", None),
    "dockerfile": ("str", None),
    "ca_bundle": ("str", None),
    "build_args": ("dict", None),
    "run_flags": ("list", None),
    "pass_env": ("list", None),
}
_TOP: _Spec = {
    "tracker": ("table", None),
    "remote": ("table", None),
    "runtime": ("table", None),
    "require_pushed": ("bool", None),
}
_TYPE_NAMES = {
    "str": "a string",
    "bool": "true or false",
    "list": "a list of strings",
    "dict": "a table of strings",
    "table": "a table",
}


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` that is an Aeromancy project.

    A project is a DVC repository (a `.dvc/` folder) whose pyproject.toml has a
    `[tool.aeromancy]` table.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            if _has_table(folder / "pyproject.toml"):
                return folder
            raise ProjectError(
                f"{folder} is a DVC repository but not an Aeromancy project "
                "(no [tool.aeromancy] in pyproject.toml); run `aero init` there "
                "to adopt it"
            )
    raise ProjectError(
        f"not inside an Aeromancy project (no DVC repository at or above {here}); "
        "run `aero init DIR` to create one"
    )


def load(root: Path) -> Config:
    """Read and validate `[tool.aeromancy]` from `root/pyproject.toml`."""
    path = root / "pyproject.toml"
    document = read_document(path)
    table = _lookup(document, TABLE)
    if table is None:
        raise ConfigError(f"{_shown(path)}: no [{TABLE}] table; run `aero init`")

    top = _check_table(table, _TOP, TABLE, path)
    sections = {
        name: _check_table(top.get(name, {}), spec, f"{TABLE}.{name}", path)
        for name, spec in (
            ("tracker", _TRACKER),
            ("remote", _REMOTE),
            ("runtime", _RUNTIME),
        )
    }
    return Config(
        root=root,
        tracker=TrackerConfig(**sections["tracker"]),
        remote=RemoteConfig(**sections["remote"]),
        runtime=RuntimeConfig(**sections["runtime"]),
        require_pushed=bool(top.get("require_pushed", False)),
    )


def read_document(path: Path) -> Any:
    """Parse a TOML file with tomlkit; a syntax error names its line and column."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{_shown(path)} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{_shown(path)} cannot be read: {exc}") from None

    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        reason = str(exc).split(" at line ")[0]
        raise ConfigError(
            f"{_shown(path)}:{exc.line}:{exc.col}: malformed TOML: {reason}"
        ) from None


def append_table(path: Path, block: str) -> bool:
    """Append a `[tool.aeromancy]` block of TOML text to the pyproject.toml at `path`.

    An existing file keeps every byte it had; a file that already has the table
    is left alone. Returns whether anything was written.
    """
    import tomlkit

    exists = path.exists()
    if exists and _lookup(read_document(path), TABLE) is not None:
        return False

    before = path.read_text(encoding="utf-8") if exists else ""
    if before and not before.endswith("\n"):
        before += "\n"
    text = f"{before}\n{block}" if before else block
    tomlkit.parse(text)  # the block is ours: a failure here is a bug, not bad input
    _atomic_write(path, text)
    return True


def set_table_values(path: Path, dotted: str, values: Mapping[str, str | None]) -> None:
    """Set string keys of the table `dotted` in the TOML file at `path`, in place.

    A None value removes its key. Comments, key order and every other byte of the
    file stay as they were; a missing table is added at the end.
    """
    import tomlkit

    document = read_document(path)
    table = _lookup(document, dotted)
    if table is None:
        table = tomlkit.table()
        parent = document
        *parents, last = dotted.split(".")
        for part in parents:
            if part not in parent:
                parent[part] = tomlkit.table(is_super_table=True)
            parent = parent[part]
        parent[last] = table
    elif not isinstance(table, Mapping):
        raise ConfigError(f"{_shown(path)}: {dotted} must be a table (got {table!r})")

    for key, value in values.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    _atomic_write(path, tomlkit.dumps(document))


def _check_table(table: Any, spec: _Spec, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{_shown(path)}: {where} must be a table (got {table!r})")

    checked: dict[str, Any] = {}
    for key, value in table.items():
        if key not in spec:
            known = ", ".join(spec)
            raise ConfigError(
                f"{_shown(path)}: {where}.{key} is not a known key (known: {known})"
            )
        kind, choices = spec[key]
        checked[key] = _check_value(value, kind, choices, f"{where}.{key}", path)
    return checked


def _check_value(
    value: Any, kind: str, choices: tuple[str, ...] | None, key: str, path: Path
) -> Any:
    value = value.unwrap() if hasattr(value, "unwrap") else value
    valid = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "dict": isinstance(value, dict)
        and all(isinstance(v, str) for v in value.values()),
        "table": isinstance(value, dict),
    }[kind]
    if not valid:
        raise ConfigError(
            f"{_shown(path)}: {key} must be {_TYPE_NAMES[kind]} (got {_repr(value)})"
        )
    if choices is not None and value not in choices:
        raise ConfigError(
            f"{_shown(path)}: {key} must be one of {', '.join(choices)} "
            f"(got {_repr(value)})"
        )
    if kind == "list":
        return tuple(value)
    return value


def _repr(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _lookup(document: Any, dotted: str) -> Any:
    node = document
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _has_table(path: Path) -> bool:
    if not path.is_file():
        return False
    return _lookup(read_document(path), TABLE) is not None


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.aero-tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
