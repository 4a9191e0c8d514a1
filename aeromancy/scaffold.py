"""Scaffold: render `templates/` into a new project, or adopt an existing repo.

A new project gets git, DVC, the example pipeline with its dataset tracked by
DVC, and a first commit. An existing git + DVC repository is *adopted*: only
missing files are added, no existing file is overwritten, and pyproject.toml
keeps every byte it had, with `[tool.aeromancy]` appended.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aeromancy import config, data, gitstate
from aeromancy._dvc import open_repo, quiet
from aeromancy.errors import AeromancyError, ScaffoldError

__all__ = ["InitOptions", "InitResult", "init", "templates_dir"]

log = logging.getLogger(__name__)

SAMPLE_DATASET = "data/measurements"

# Files of the example pipeline: an adopted repository has its own pipeline.
_EXAMPLE = ("dvc.yaml", "params.yaml", "src/", "data/measurements/", "requirements.txt")


@dataclass(frozen=True)
class InitOptions:
    """What `aero init` was asked for."""

    remote: str | None = None
    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None
    tracker: str = "wandb"
    runtime: str = "docker"
    force: bool = False


@dataclass
class InitResult:
    """What `aero init` did: the files it added and, for a new project, its commit."""

    root: Path
    adopted: bool
    remote: data.Remote
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    commit: str | None = None


def templates_dir() -> Path:
    """The templates: inside the wheel, or at the repository root in a checkout."""
    packaged = Path(__file__).parent / "_templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


def init(target: Path, options: InitOptions) -> InitResult:
    """Create an Aeromancy project at `target`, or adopt the repository there."""
    target = target.expanduser().resolve()
    adopting = gitstate.is_repo(target)
    if target.exists() and not target.is_dir():
        raise ScaffoldError(
            f"{target} is a file; give a folder to create the project in"
        )
    if not adopting and _non_empty(target) and not options.force:
        raise ScaffoldError(
            f"{target} is not empty and not a git repository; pick an empty folder, "
            "or pass --force to add the scaffold beside what is there"
        )

    remote = data.parse_remote(
        options.remote or data.default_local_remote(target.name),
        options.endpoint,
        options.region,
        options.profile,
    )
    data.check_reachable(remote)

    if adopting:
        return _adopt(target, options, remote)
    return _create(target, options, remote)


def _create(target: Path, options: InitOptions, remote: data.Remote) -> InitResult:
    existed = target.exists()
    before = set(target.iterdir()) if existed else set()
    result = InitResult(root=target, adopted=False, remote=remote)
    try:
        target.mkdir(parents=True, exist_ok=True)
        _render(target, options, remote, result, skip=())
        gitstate.init_repo(target)
        _dvc_init(target)
        data.configure_dvc_remote(target, remote)
        data.setup_cache(target)
        _track_sample(target)
        # Commit only what init made: with --force, the user's files stay theirs.
        ours = sorted(
            c.name for c in set(target.iterdir()) - before if c.name != ".git"
        )
        result.commit = gitstate.commit_paths(
            target, f"Scaffold {target.name} with Aeromancy", ours
        )
    except (AeromancyError, OSError) as exc:
        _undo(target, existed, before)
        if isinstance(exc, AeromancyError):
            raise
        raise ScaffoldError(f"cannot write the scaffold in {target}: {exc}") from exc
    return result


def _adopt(target: Path, options: InitOptions, remote: data.Remote) -> InitResult:
    result = InitResult(root=target, adopted=True, remote=remote)
    if not (target / ".dvc").is_dir():
        _dvc_init(target)
        result.added.append(".dvc/")
    if _own_cache_empty(target):
        data.setup_cache(target)
        result.added.append(".dvc/config.local (the shared cache)")
    # The repository has its own README and, usually, its own pipeline.
    skip = ("README.md", *(_EXAMPLE if (target / "dvc.yaml").exists() else ()))
    _render(target, options, remote, result, skip=skip)
    if not _remote_configured(target):
        data.configure_dvc_remote(target, remote)
        result.added.append(".dvc/config (remote 'aeromancy')")
    return result


def _render(
    target: Path,
    options: InitOptions,
    remote: data.Remote,
    result: InitResult,
    skip: tuple[str, ...],
) -> None:
    values = {
        "project_name": target.name,
        "aeromancy_table": _aeromancy_table(options, remote),
    }
    for source, relative in _template_files():
        if relative.startswith(skip):
            continue
        destination = target / relative
        if relative == "pyproject.toml" and destination.exists():
            if config.append_table(destination, values["aeromancy_table"]):
                result.added.append("pyproject.toml ([tool.aeromancy] appended)")
            continue
        if destination.exists():
            result.kept.append(relative)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.name.endswith(".tmpl"):
            text = source.read_text(encoding="utf-8").format(**values)
            destination.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(source, destination)
        result.added.append(relative)


def _template_files() -> Iterator[tuple[Path, str]]:
    """Each template file and the project path it renders to."""
    root = templates_dir()
    for source in sorted(root.rglob("*")):
        relative = source.relative_to(root)
        if source.is_dir() or relative.parts[0].startswith("_"):
            continue
        if "__pycache__" in relative.parts or relative.parts[0] == "build":
            continue
        parts = ["." + p[4:] if p.startswith("dot-") else p for p in relative.parts]
        name = "/".join(parts)
        yield source, name.removesuffix(".tmpl")


def _aeromancy_table(options: InitOptions, remote: data.Remote) -> str:
    tracker_settings = {
        "wandb": 'mode = "offline"\n',
        "mlflow": "# tracking_uri defaults to SQLite in .aeromancy/mlflow.db\n",
        "none": "",
    }[options.tracker]
    remote_settings = "".join(
        f'{key} = "{value}"\n'
        for key, value in (
            ("endpoint", remote.endpoint),
            ("region", remote.region),
            ("profile", remote.profile),
        )
        if value
    )
    template = templates_dir() / "_aeromancy.toml.tmpl"
    return template.read_text(encoding="utf-8").format(
        tracker=options.tracker,
        tracker_settings=tracker_settings,
        remote_url=remote.url,
        remote_settings=remote_settings,
        runtime=options.runtime,
        lock_file="requirements.txt",
    )


def _dvc_init(target: Path) -> None:
    quiet()
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        Repo.init(str(target)).close()
    except DvcException as exc:
        raise ScaffoldError(f"`dvc init` failed in {target}: {exc}") from exc


def _track_sample(target: Path) -> None:
    """Track and push the example dataset, as `aero data ingest` would.

    Pushed, so that a fresh clone gets it with a plain `dvc pull`.
    """
    from aeromancy import datasets, transfer

    with open_repo(target) as repo:
        repo.add(str(target / SAMPLE_DATASET))
    datasets.protect(target / SAMPLE_DATASET)
    transfer.push(target, [f"{SAMPLE_DATASET}.dvc"])


def _own_cache_empty(target: Path) -> bool:
    """Whether the repository keeps nothing in a cache of its own yet.

    TODO: move the objects of a repository's own cache into the shared one on
    adoption; until then such a repository keeps its cache.
    """
    from dvc.config import Config

    local = Config(dvc_dir=target / ".dvc", validate=False).load_one("local")
    if local.get("cache", {}).get("dir"):
        return False
    own = target / ".dvc" / "cache"
    return not own.exists() or not any(p.is_file() for p in own.rglob("*"))


def _remote_configured(target: Path) -> bool:
    from dvc.config import Config

    conf = Config(dvc_dir=target / ".dvc", validate=False).load_one("repo")
    return bool(conf.get("core", {}).get("remote"))


def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _undo(target: Path, existed: bool, before: set[Path]) -> None:
    """Remove what a failed `aero init` created, so nothing is left half-written."""
    if not existed:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in set(target.iterdir()) - before:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
