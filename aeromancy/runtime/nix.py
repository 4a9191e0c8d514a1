"""The Nix runtime: the dev shell the project's `flake.nix` defines.

Convention: the runtime is the flake output `devShells.<system>.default` (what
`nix develop` opens; the scaffold's flake.nix defines it with nixpkgs'
`mkShell`). `build()` asks Nix for four things, once per change of the flake:

- `nix flake metadata --json`: the locked inputs (URL or path, rev, narHash);
- `nix build --json`: the shell's derivation and output, kept alive by a GC
  root at `.aeromancy/nix/runtime`;
- `nix print-dev-env --json`: the shell's environment, which stages run with
  (`nixshell.py`);
- `nix path-info -r --json`: the closure (store paths, narHash, narSize), the
  manifest of this runtime, with its own digest.

The runtime id is the sha256 of the system, the derivation path, the closure's
digest and the locked inputs. The flake's own source (its locked narHash) is left
out: for a flake in a git repository it changes with every commit, and code is
the fingerprint's `code` node, not the runtime's.

The result is kept in `.aeromancy/nix/<key>.json`, where the key is a digest of
every git-tracked `*.nix` file, flake.lock and `runtime.lock_file`: with those
unchanged, `build()` reads one file and calls Nix not at all. TODO: a flake
that reads other files (`builtins.readFile ./some.lock`) is not rebuilt when
only they change; name them in `runtime.lock_file`, until the key can come
from Nix's own evaluation cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aeromancy.config import RuntimeConfig
from aeromancy.manifest import Manifests, NixClosure
from aeromancy.runtime import nixcli
from aeromancy.runtime.base import Built, runtime_node

__all__ = ["ATTRIBUTE", "NixBuild", "NixRuntime", "current_system"]

log = logging.getLogger(__name__)

#: The flake output that is the runtime.
ATTRIBUTE = "devShells.{system}.default"
#: Where builds are cached and the GC root lives, under the project root.
STATE = Path(".aeromancy") / "nix"
_FORMAT = 2  # bump when NixBuild's JSON changes
# What `nix develop` keeps from the caller rather than the shell: build-time
# values that mean nothing to a stage (Nix 2.8's list, src/nix/develop.cc).
_NOT_FROM_SHELL = frozenset(
    {
        *("BASHOPTS", "HOME", "NIX_BUILD_TOP", "NIX_ENFORCE_PURITY", "NIX_LOG_FD"),
        *("NIX_REMOTE", "PPID", "SHELL", "SHELLOPTS", "SSL_CERT_FILE", "TEMP"),
        *("TEMPDIR", "TERM", "TMP", "TMPDIR", "TZ", "UID"),
        *("OLDPWD", "PWD", "SHLVL"),  # a shell's own, not the runtime's
    }
)


@dataclass(frozen=True)
class NixBuild:
    """What one evaluation and build of the flake's runtime gave.

    Attributes:
        key: the digest of the files the result was computed from.
        installable: `<flake>#devShells.<system>.default`.
        drv: the shell's derivation path.
        out: the shell's output path.
        closure: every store path the output needs.
        inputs: each locked flake input → its locked attributes.
        env: the variables the shell exports, as stages get them.
        shell_hook: the shell's `shellHook`, run before each stage ("" for none).
        pinned: whether flake.lock pins every input (else it is not cached).
        warnings: one line each, for the user.
    """

    key: str
    installable: str
    drv: str
    out: str
    closure: NixClosure
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    shell_hook: str = ""
    pinned: bool = True
    warnings: tuple[str, ...] = ()

    @property
    def runtime_id(self) -> str:
        """sha256 of the system, derivation, closure digest and locked inputs."""
        identity = {
            "installable": self.installable.rpartition("#")[2],
            "drv": self.drv,
            "closure": self.closure.digest,
            "inputs": self.inputs,
        }
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_json(self) -> str:
        fields = {**self.__dict__, "closure": self.closure.text()}
        return json.dumps({"format": _FORMAT, **fields}, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> NixBuild | None:
        """The build `to_json` wrote; None for another format."""
        data = json.loads(text)
        if data.pop("format", None) != _FORMAT:
            return None
        data["closure"] = NixClosure.parse(data["closure"])
        data["warnings"] = tuple(data["warnings"])
        return cls(**data)


class NixRuntime:
    """The project's flake's dev shell, as a sealed runtime.

    Args:
        root: the project root, holding flake.nix.
        settings: `[tool.aeromancy.runtime]`.
    """

    kind = "nix"
    sealed = True

    def __init__(self, root: Path, settings: RuntimeConfig) -> None:
        self.root = root
        self.settings = settings
        #: Called with each `building ...` line Nix prints (for a progress line).
        self.progress: Callable[[str], None] | None = None
        self._result: NixBuild | None = None
        self._from_cache = False

    @property
    def id(self) -> str:
        return self.realise().runtime_id

    def build(self) -> Built:
        """The runtime: read from the cache when the flake is unchanged, else
        evaluated and built by Nix."""
        result = self.realise()
        return Built(
            runtime_id=result.runtime_id,
            image=result.out,
            reference=f"flake.nix#{result.installable.rpartition('#')[2]}",
            built=not self._from_cache,
            warnings=result.warnings,
        )

    def manifest(self) -> Manifests:
        """The closure of the shell; no Debian or Python lists (Nix has neither)."""
        return Manifests(nix_closure=self.realise().closure)

    def describe(self) -> dict[str, Any]:
        """The `runtime` node of a fingerprint, with the flake's locked inputs."""
        return {**runtime_node(self), "nix_inputs": self.realise().inputs}

    def inside(self) -> AbstractContextManager[None]:
        """While open, DVC runs each stage command in the shell's environment."""
        from aeromancy.runtime import nixshell

        return nixshell.running(self.realise(), self.settings.pass_env)

    def debug_shell(self, cwd: Path) -> int:
        """An interactive shell in the environment stages run in; its exit code."""
        from aeromancy.runtime import nixshell

        return nixshell.interactive(self.realise(), self.settings.pass_env, cwd)

    def realise(self) -> NixBuild:
        """The cached build for the flake as it is now, or a fresh one."""
        if self._result is None:
            key = cache_key(self.root, self.settings)
            cached = self._cached(key)
            self._from_cache = cached is not None
            self._result = cached or self._fresh(key)
        return self._result

    def _cached(self, key: str) -> NixBuild | None:
        path = self.root / STATE / f"{key[:32]}.json"
        try:
            found = NixBuild.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # A garbage-collected output means the cached answer is gone too.
        return found if found and os.path.exists(found.out) else None

    def _fresh(self, key: str) -> NixBuild:
        result = evaluate(self.root, key, self.progress)
        if result.pinned:
            path = self.root / STATE / f"{key[:32]}.json"
            partial = path.with_name(f".{path.name}.tmp")
            partial.write_text(result.to_json(), encoding="utf-8")
            partial.replace(path)
        return result


def evaluate(
    root: Path, key: str, progress: Callable[[str], None] | None = None
) -> NixBuild:
    """Ask Nix for the runtime of the flake at `root`: lock, build, env, closure."""
    installable = f"{root.resolve()}#{ATTRIBUTE.format(system=current_system())}"
    metadata, warnings = nixcli.run_json(
        ["flake", "metadata", "--no-write-lock-file", str(root.resolve())], root
    )
    state = root / STATE
    state.mkdir(parents=True, exist_ok=True)
    link = str(state.resolve() / "runtime")  # not the link's target
    text, _ = nixcli.run(
        ["build", "--json", "--no-write-lock-file", "--out-link", link, installable],
        root,
        on_line=progress,
    )
    built = json.loads(text)[0]
    dev_env, _ = nixcli.run_json(
        ["print-dev-env", "--no-write-lock-file", installable], root
    )
    out = built["outputs"]["out"]
    info, _ = nixcli.run_json(["path-info", "--recursive", out], root)
    return NixBuild(
        key=key,
        installable=installable,
        drv=built["drvPath"],
        out=out,
        closure=NixClosure.from_path_info(info),
        inputs=locked_inputs(metadata),
        env=shell_env(dev_env),
        shell_hook=shell_hook(dev_env),
        pinned=not nixcli.unlocked(warnings),
        warnings=tuple(_explain(warnings)),
    )


def locked_inputs(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each input node of `nix flake metadata --json` → what it is locked to
    (derived fields like lastModified left out)."""
    locks = metadata.get("locks") or {}
    root_node = locks.get("root", "root")
    return {
        name: {
            k: v
            for k, v in (node.get("locked") or {}).items()
            if k not in ("lastModified", "revCount")
        }
        for name, node in (locks.get("nodes") or {}).items()
        if name != root_node
    }


def shell_env(dev_env: dict[str, Any]) -> dict[str, str]:
    """The variables a stage gets from `nix print-dev-env --json`: the exported
    ones, but for what `nix develop` takes from the caller."""
    return {
        name: str(variable["value"])
        for name, variable in (dev_env.get("variables") or {}).items()
        if variable.get("type") == "exported" and name not in _NOT_FROM_SHELL
    }


def shell_hook(dev_env: dict[str, Any]) -> str:
    """The shell's `shellHook` from `nix print-dev-env --json`, "" when none."""
    variable = (dev_env.get("variables") or {}).get("shellHook") or {}
    value = variable.get("value")
    return value if isinstance(value, str) else ""


def cache_key(root: Path, settings: RuntimeConfig) -> str:
    """A digest of everything the cached build was computed from: the tracked
    `*.nix` files, flake.lock, `runtime.lock_file`, the system."""
    names = set(_tracked_nix_files(root)) | {"flake.nix", "flake.lock"}
    if settings.lock_file:
        names.add(settings.lock_file)
    digest = hashlib.sha256(f"{_FORMAT}\0{current_system()}\0".encode())
    for name in sorted(names):
        path = root / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"\0absent\0")
    return digest.hexdigest()


def current_system() -> str:
    """The Nix system of this machine: `x86_64-linux`, `aarch64-darwin`..."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return f"{arch}-{platform.system().lower()}"


def _tracked_nix_files(root: Path) -> list[str]:
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.nix", "flake.lock"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:  # no git: flake.nix and flake.lock alone make the key
        return []
    return [name for name in done.stdout.split("\0") if name]


def _explain(warnings: list[str]) -> list[str]:
    if nixcli.unlocked(warnings):
        return [
            "flake.lock does not pin every input of flake.nix, so the runtime may "
            "change under the same commit (and is not cached); run `nix flake "
            "lock` and commit flake.lock"
        ]
    return []
