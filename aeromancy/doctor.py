"""`aero doctor`: what a tracked run needs, and whether each part answers.

One check per part: git, DVC, the project's config, the remote, the DVC cache,
the runtime (container engine, Nix or the host), the tracker, and Jupyter for
notebook kernels. Each says `ok`, `warn` (works, but something a user should
know), `fail` (a tracked `aero repro` would stop on it) or `skip` (not
relevant here), with one line of detail and, where there is one, the fix.
Nothing is written and no secret is shown: URLs are redacted and a key is
reported as present, never printed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aeromancy import config
from aeromancy.errors import UserError
from aeromancy.redact import redact_url

__all__ = ["FAIL", "OK", "SKIP", "WARN", "Check", "diagnose"]

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class Check:
    """The outcome for one part: its name, status, one line, and the fix."""

    name: str
    status: str
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(start: Path | None = None) -> list[Check]:
    """Every check, for the project at or above `start` (the working directory).

    Outside a project the project's parts are skipped and the tools are checked.
    """
    checks = [_git(), _dvc()]
    settings: config.Config | None = None
    here = (start or Path.cwd()).resolve()
    if not any((folder / ".dvc").is_dir() for folder in (here, *here.parents)):
        checks.append(Check("project", SKIP, f"no project at or above {here}"))
    else:
        try:
            settings = config.load(config.find_root(here))
        except UserError as exc:
            checks.append(Check("project", FAIL, exc.message))
    for check in (_project, _remote, _cache, _runtime, _tracker):
        if check is _project and settings is None:
            continue
        checks.append(_guarded(check, settings))
    checks.append(_jupyter())
    return checks


def _guarded(
    check: Callable[[config.Config], Check], settings: config.Config | None
) -> Check:
    name = check.__name__.strip("_")
    if settings is None:
        return Check(name, SKIP, "not inside an Aeromancy project")
    try:
        return check(settings)
    except UserError as exc:
        return Check(name, FAIL, exc.message)


def _git() -> Check:
    found = _tool_version(["git", "--version"])
    if found is None:
        return Check("git", FAIL, "git is not installed", "install git (2.30 or later)")
    return Check("git", OK, found.removeprefix("git version "))


def _dvc() -> Check:
    from importlib import metadata

    try:
        return Check("dvc", OK, f"DVC {metadata.version('dvc')}")
    except metadata.PackageNotFoundError:
        return Check("dvc", FAIL, "DVC is not installed", "pip install 'dvc[s3]'")


def _project(settings: config.Config) -> Check:
    from aeromancy import gitstate

    root = settings.root
    head = gitstate.git(root, "rev-parse", "--short=12", "HEAD")
    dirty = gitstate.dirty_paths(root)
    if dirty:
        shown = ", ".join(str(path) for path in dirty[:3])
        more = f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
        return Check(
            "project",
            WARN,
            f"{root} at {head}: uncommitted {shown}{more}",
            "commit them: a tracked `aero repro` refuses a dirty tree",
        )
    return Check("project", OK, f"{root} at {head}, clean tree")


def _remote(settings: config.Config) -> Check:
    from aeromancy import data

    remote = data.project_remote(settings.root)
    data.check_reachable(remote)  # raises a one-line RemoteError
    if not remote.is_s3:
        return Check("remote", OK, f"local folder {remote.url}, writable")
    where = redact_url(remote.url)
    if remote.endpoint:
        where += f" at {redact_url(remote.endpoint)}"
    return Check("remote", OK, f"{where}: the bucket answers")


def _cache(settings: config.Config) -> Check:
    from aeromancy.runtime.container import outside_cache

    cache = outside_cache(settings.root) or settings.root / ".dvc" / "cache"
    existing = cache
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    detail = f"{cache}, {free / 2**30:.1f} GiB free"
    if not os.access(existing, os.W_OK):
        return Check("cache", FAIL, f"{detail}, not writable", f"chmod u+w {existing}")
    if free < 2**30:
        return Check("cache", WARN, detail, "free some space: outputs land here")
    return Check("cache", OK, detail)


def _runtime(settings: config.Config) -> Check:
    kind = settings.runtime.kind
    if kind == "host":
        return Check("runtime", WARN, "host: stages run unsealed on this machine")
    if kind == "nix":
        return _nix(settings.root)
    return _engine(settings)


def _engine(settings: config.Config) -> Check:
    from aeromancy.runtime.docker import DockerRuntime

    runtime = DockerRuntime(settings.root, settings.runtime)
    images = runtime.engine.images()  # raises a one-line EngineError
    runtime.resolve(images)  # the base image must be there: we never pull
    where = redact_url(runtime.engine.host)
    return Check("runtime", OK, f"docker: engine at {where}, {len(images)} images")


def _nix(root: Path) -> Check:
    found = _tool_version(["nix", "--version"])
    if found is None:
        return Check("runtime", FAIL, "nix: not installed", "see scripts/setup-nix")
    if not (root / "flake.nix").is_file():
        return Check("runtime", FAIL, "nix: no flake.nix in the project")
    return Check("runtime", OK, f"nix: {found}, flake.nix present")


def _tracker(settings: config.Config) -> Check:
    tracker = settings.tracker
    if tracker.kind == "none":
        return Check("tracker", OK, "none: runs are kept in run records only")
    if tracker.kind == "mlflow":
        from aeromancy.tracking.mlflow import check_uri

        uri = tracker.tracking_uri or "sqlite:///.aeromancy/mlflow.db (default)"
        if tracker.tracking_uri:
            check_uri(tracker.tracking_uri)
        return Check("tracker", OK, f"mlflow: {redact_url(uri)}")
    return _wandb(tracker)


def _wandb(tracker: config.TrackerConfig) -> Check:
    if importlib.util.find_spec("wandb") is None:
        return Check("tracker", FAIL, "wandb is not installed", "pip install wandb")
    if tracker.mode == "offline":
        return Check(
            "tracker", OK, "wandb offline: `aero runs sync` uploads the runs later"
        )
    from aeromancy.tracking.base import reachable
    from aeromancy.tracking.wandb import base_url

    url = base_url()
    key = "an API key is set" if os.environ.get("WANDB_API_KEY") else "no API key"
    why = reachable(url)
    if why:
        return Check(
            "tracker",
            WARN,
            f"wandb {tracker.mode}: {redact_url(url)} unreachable ({why}); "
            "runs are written offline",
            "`aero runs sync` once it answers",
        )
    return Check("tracker", OK, f"wandb {tracker.mode}: {redact_url(url)}, {key}")


def _jupyter() -> Check:
    missing = [
        name
        for name in ("jupyter_client", "ipykernel")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        return Check(
            "jupyter",
            WARN,
            f"{' and '.join(missing)} not installed: no notebook kernels",
            "pip install ipykernel jupyter_client",
        )
    return Check("jupyter", OK, "jupyter_client and ipykernel installed")


def _tool_version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None
