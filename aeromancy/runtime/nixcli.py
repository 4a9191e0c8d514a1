"""The `nix` command: running it, and turning its failures into one line.

Every call enables flakes itself (`--extra-experimental-features`), so a user's
Nix needs no configuration; other settings (substituters, a cache) are the
user's. Nothing writes `flake.lock` (`--no-write-lock-file`): locking is the
user's step, and a tracked run must not dirty the tree it recorded. The errors
are sorted into what the user can act on: Nix missing, a flake input that
cannot be fetched, a flake that does not evaluate, a derivation that fails.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aeromancy.errors import UserError

__all__ = [
    "FlakeEvalError",
    "FlakeInputError",
    "NixBuildError",
    "NixError",
    "NixMissingError",
    "run",
    "run_json",
]

log = logging.getLogger(__name__)

_FEATURES = ("--extra-experimental-features", "nix-command flakes")
# What Nix says when a flake input cannot be fetched (Nix 2.8 to 2.2x).
_UNREACHABLE = (
    "unable to download",
    "getting status of",
    "does not appear to be a git repository",
    "program 'git' failed",
    "cannot fetch",
    "does not exist",
)
_LOCATION = re.compile(r"^\s*at (?:/nix/store/[a-z0-9]{32}-source/)?(\S+?):?$")
_UNLOCKED = "not writing modified lock file"


class NixError(UserError):
    """A `nix` command failed; the message is one line."""


class NixMissingError(NixError):
    """No `nix` on PATH."""

    def __init__(self) -> None:
        super().__init__(
            "the Nix runtime needs Nix, and there is no `nix` on PATH: install it "
            "(`apt-get install nix-bin` on Debian and Ubuntu) or use --runtime host"
        )


class FlakeEvalError(NixError):
    """flake.nix does not evaluate (a syntax error, a missing attribute...)."""


class FlakeInputError(NixError):
    """A flake input cannot be fetched (a missing path, an unreachable URL)."""


class NixBuildError(NixError):
    """A derivation of the runtime failed to build."""


def run(
    args: Sequence[str], root: Path, on_line: Callable[[str], None] | None = None
) -> tuple[str, list[str]]:
    """Run `nix ARGS` in `root`; its stdout and the warnings it printed.

    Args:
        args: the arguments after `nix`.
        root: the project root (flake inputs are explained from its flake.nix).
        on_line: called with each `building ...`/`copying ...` line Nix prints,
            as it prints it (only for a command whose stdout is small).

    Raises:
        NixError: one of its subclasses, saying what failed in one line.
    """
    command = ["nix", *_FEATURES, *args]
    log.debug("running %s", " ".join(command))
    try:
        process = subprocess.Popen(
            command,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except FileNotFoundError:
        raise NixMissingError() from None
    stdout, stderr = _collect(process, on_line)
    if process.returncode != 0:
        raise failure(stderr, root)
    return stdout, [line for line in stderr.splitlines() if line.startswith("warning:")]


def _collect(
    process: subprocess.Popen[str], on_line: Callable[[str], None] | None
) -> tuple[str, str]:
    """The process's stdout and stderr, once it ended."""
    if on_line is None:
        return process.communicate()
    # Only for commands whose stdout is small (`nix build --json`): it is read
    # after stderr ends, and a full pipe would stall Nix.
    assert process.stdout is not None and process.stderr is not None
    stderr = []
    for line in process.stderr:
        stderr.append(line)
        if line.startswith(("building '", "copying path")):
            on_line(line.rstrip())
    stdout = process.stdout.read()
    process.wait()
    return stdout, "".join(stderr)


def run_json(args: Sequence[str], root: Path) -> tuple[Any, list[str]]:
    """`run` for a command with `--json`: its parsed output and warnings."""
    text, warnings = run([*args, "--json"], root)
    return json.loads(text), warnings


def unlocked(warnings: Sequence[str]) -> bool:
    """Whether Nix said flake.lock does not pin every input."""
    return any(_UNLOCKED in line for line in warnings)


def failure(stderr: str, root: Path) -> NixError:
    """The one-line error for a failed `nix` command's `stderr`."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    if not errors:
        return NixError(f"nix failed: {lines[-1] if lines else 'no output'}")
    first = errors[0]
    message = lines[first].removeprefix("error:").strip()
    if "builder for" in message:
        return NixBuildError(_build_failed(message))
    if "-source/flake.nix" in message and "getting status of" in message:
        return FlakeEvalError(
            "nix cannot see flake.nix: in a git repository a flake holds only "
            "files git tracks; `git add flake.nix`"
        )
    if any(marker in message for marker in _UNREACHABLE):
        return FlakeInputError(_input_failed(message, root))
    where = next(
        (m.group(1) for line in lines[first + 1 :] if (m := _LOCATION.match(line))),
        None,
    )
    shown = f"{message} (at {where})" if where else message
    if "does not provide attribute" in message:
        shown += "; the Nix runtime is devShells.<system>.default in flake.nix"
    return FlakeEvalError(f"flake.nix does not evaluate: {shown}")


def _build_failed(message: str) -> str:
    drv = re.search(r"'(/nix/store/[^']+\.drv)'", message)
    code = re.search(r"exit code (\d+)", message)
    what = drv.group(1).split("-", 1)[-1].removesuffix(".drv") if drv else "a path"
    status = f" with exit code {code.group(1)}" if code else ""
    log_hint = f"; `nix log {drv.group(1)}` shows its log" if drv else ""
    return f"building the Nix runtime failed: {what} failed{status}{log_hint}"


def _input_failed(message: str, root: Path) -> str:
    """Name the input whose location the message mentions, where one does."""
    for name, location in _declared_inputs(root).items():
        if _mentions(message, location):
            return (
                f"flake input '{name}' ({location}) cannot be fetched: {message}; "
                f"fix inputs.{name}.url in flake.nix, or use --runtime host"
            )
    return (
        f"a flake input cannot be fetched: {message}; fix its url in flake.nix, "
        "or use --runtime host"
    )


def _mentions(message: str, location: str) -> bool:
    """Whether Nix's `message` is about the input at `location` (a flake URL)."""
    scheme, colon, rest = location.partition(":")
    bare = (rest if colon else location).split("?")[0].removeprefix("//")
    if scheme in ("github", "gitlab", "sourcehut"):
        # Nix names the forge's API URL, which holds OWNER/REPO.
        bare = "/".join(bare.split("/")[:2])
    return bool(bare) and bare in message


def _declared_inputs(root: Path) -> dict[str, str]:
    """`{input: url}` as flake.nix declares them (empty when that fails too)."""
    expression = (
        f'builtins.mapAttrs (n: i: i.url or i.path or (i.type or "?")) '
        f"((import {json.dumps(str(root / 'flake.nix'))}).inputs or {{}})"
    )
    done = subprocess.run(
        ["nix", *_FEATURES, "eval", "--json", "--impure", "--expr", expression],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {}
    found = json.loads(done.stdout)
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
