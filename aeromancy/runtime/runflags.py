"""`tool.aeromancy.runtime.run_flags`: the `docker run` flags a project may add.

The flags are written as on a `docker run` command line (`--memory 4g`,
`--shm-size=1g`) and turned into the SDK's arguments; a flag outside the list
below is refused with its name, rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aeromancy.errors import ConfigError

__all__ = ["FLAGS", "parse"]

KEY = "pyproject.toml: tool.aeromancy.runtime.run_flags"


def _volume(value: str) -> tuple[str, dict[str, str]]:
    source, _, rest = value.partition(":")
    target, _, mode = rest.partition(":")
    if not source or not target:
        raise ConfigError(f"{KEY}: --volume needs SOURCE:TARGET[:MODE] (got {value})")
    return source, {"bind": target, "mode": mode or "rw"}


def _env(value: str) -> tuple[str, str]:
    name, sep, text = value.partition("=")
    if not sep:
        raise ConfigError(
            f"{KEY}: --env needs NAME=VALUE (got {value}); name variables to pass "
            "from the host in tool.aeromancy.runtime.pass_env instead"
        )
    return name, text


# flag -> (where: "create" or "host", SDK keyword, how it is added)
_Add = Callable[[dict[str, Any], str, str], None]


def _set(convert: Callable[[str], Any]) -> _Add:
    def add(target: dict[str, Any], key: str, value: str) -> None:
        target[key] = convert(value)

    return add


def _append(target: dict[str, Any], key: str, value: str) -> None:
    target.setdefault(key, []).append(value)


def _mapping(convert: Callable[[str], tuple[str, Any]]) -> _Add:
    def add(target: dict[str, Any], key: str, value: str) -> None:
        name, item = convert(value)
        target.setdefault(key, {})[name] = item

    return add


FLAGS: dict[str, tuple[str, str, _Add]] = {
    "--user": ("create", "user", _set(str)),
    "--env": ("create", "environment", _mapping(_env)),
    "--network": ("host", "network_mode", _set(str)),
    "--memory": ("host", "mem_limit", _set(str)),
    "--cpus": ("host", "nano_cpus", _set(lambda v: int(float(v) * 1e9))),
    "--shm-size": ("host", "shm_size", _set(str)),
    "--cap-add": ("host", "cap_add", _append),
    "--device": ("host", "devices", _append),
    "--security-opt": ("host", "security_opt", _append),
    "--volume": ("host", "binds", _mapping(_volume)),
}
_SHORT = {"-u": "--user", "-e": "--env", "-m": "--memory", "-v": "--volume"}


def parse(flags: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`(create_container kwargs, create_host_config kwargs)` for `flags`."""
    create: dict[str, Any] = {}
    host: dict[str, Any] = {}
    words = list(flags)
    while words:
        word = words.pop(0)
        if word == "--privileged":
            host["privileged"] = True
            continue
        name, sep, value = word.partition("=")
        name = _SHORT.get(name, name)
        if name not in FLAGS:
            known = ", ".join([*FLAGS, "--privileged"])
            raise ConfigError(f"{KEY}: {word} is not supported (supported: {known})")
        if not sep:
            if not words:
                raise ConfigError(f"{KEY}: {word} needs a value")
            value = words.pop(0)
        where, key, add = FLAGS[name]
        try:
            add(create if where == "create" else host, key, value)
        except ValueError:
            raise ConfigError(f"{KEY}: {word} {value} is not valid") from None
    return create, host
