"""Code state: the git repository a project lives in.

Thin wrappers over the `git` command line, which is always present where
Aeromancy runs and is faster to start than any binding. A tracked run needs a
clean tree (`require_clean`, which names every offending path) and records the
commit it ran from (`code_state`).
"""

from __future__ import annotations

import enum
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy.errors import DirtyTreeError, UserError
from aeromancy.redact import redact_url

__all__ = [
    "CodeState",
    "DirtyPath",
    "GitError",
    "PathState",
    "code_state",
    "commit_paths",
    "dirty_paths",
    "git",
    "head_commit",
    "init_repo",
    "is_repo",
    "require_clean",
]


class GitError(UserError):
    """A git command failed; the message carries git's own last line."""


def git(root: Path, *args: str) -> str:
    """Run `git ARGS` in `root` and return its stdout without the trailing newline."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed; install git and retry") from None
    if done.returncode != 0:
        raise GitError(_explain(args, done.stderr))
    return done.stdout.rstrip("\n")


def is_repo(path: Path) -> bool:
    """Whether `path` is the top of a git work tree."""
    return (path / ".git").exists()


def init_repo(path: Path) -> None:
    """`git init` with `main` as the first branch."""
    git(path, "init", "--quiet", "--initial-branch=main")


def commit_paths(root: Path, message: str, paths: list[str] | None = None) -> str:
    """Stage `paths` (everything when None), commit them, and return the commit."""
    git(root, "add", "--", *(paths or ["."]))
    git(root, "commit", "--quiet", "--no-verify", "-m", message)
    return head_commit(root)


def head_commit(root: Path) -> str:
    """The full hash of HEAD."""
    return git(root, "rev-parse", "HEAD")


def _explain(args: tuple[str, ...], stderr: str) -> str:
    if "Please tell me who you are" in stderr or "empty ident" in stderr:
        return (
            "git cannot commit without an identity; set it with "
            '`git config --global user.name "NAME"` and '
            "`git config --global user.email EMAIL`"
        )
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    return f"`git {' '.join(args[:2])}` failed: {last}"


class PathState(str, enum.Enum):
    """Why a path keeps the tree from being clean."""

    MODIFIED = "modified"
    STAGED = "staged"
    DELETED = "deleted"
    UNTRACKED = "untracked"
    RENAMED = "renamed"
    UNMERGED = "unmerged"
    SUBMODULE = "dirty submodule"
    DATASET_MODIFIED = "dataset modified"
    DATASET_MISSING = "dataset missing"


#: Files whose change alters what a pipeline does, named as such in messages.
_ROLES = {"params.yaml": "params", "dvc.yaml": "pipeline", "dvc.lock": "DVC lock"}


@dataclass(frozen=True)
class DirtyPath:
    """One path that keeps the tree from being clean.

    Attributes:
        path: relative to the repository root, with `/` separators; an untracked
            folder ends with `/`.
        state: what is wrong with it.
        detail: more about the state: the old path of a rename, what changed in
            a submodule, or the role of a pipeline file (params, DVC lock...).
    """

    path: str
    state: PathState
    detail: str = ""

    def __str__(self) -> str:
        detail = f", {self.detail}" if self.detail else ""
        return f"{self.path} ({self.state.value}{detail})"


@dataclass(frozen=True)
class CodeState:
    """Where the code of a run comes from.

    Attributes:
        commit: the full hash of HEAD.
        branch: the checked-out branch, None on a detached HEAD.
        remote_url: the URL of the branch's remote (or `origin`, or the first
            remote) without credentials; None with no remote.
        on_remote: whether some remote-tracking branch contains HEAD, so that
            someone else can check the commit out.
    """

    commit: str
    branch: str | None
    remote_url: str | None
    on_remote: bool

    def node(self) -> dict[str, Any]:
        """The `code` node of a fingerprint: commit and remote."""
        return {"commit": self.commit, "remote": self.remote_url}


def dirty_paths(root: Path, *, repo: Any = None) -> list[DirtyPath]:
    """Every path that keeps the tree at `root` from being clean, sorted by path.

    Git's view (one `git status --porcelain=v2 -z`) covers modified, staged,
    deleted, untracked (not ignored), renamed and unmerged files and dirty
    submodules, including `params.yaml`, `dvc.yaml`, `dvc.lock` and the
    `.gitignore` entries DVC writes. DVC's view covers datasets: a path tracked
    by a `.dvc` file whose workspace content differs from it. DVC's state
    database spares unchanged files from being hashed again.

    Args:
        root: the top of the git work tree.
        repo: an open `dvc.repo.Repo` for `root` to reuse; one is opened (and
            closed) when needed otherwise.
    """
    out = git(
        root,
        "status",
        "--porcelain=v2",
        "-z",
        "--untracked-files=normal",
        "--ignore-submodules=none",
    )
    found = _without_stage_outputs(root, list(_parse_status(out)), repo)
    found += _dataset_changes(root, repo)
    return sorted(found, key=lambda dirty: (dirty.path, dirty.state.value))


def require_clean(root: Path, *, repo: Any = None) -> None:
    """Raise `DirtyTreeError` naming each offending path unless the tree is clean.

    Args:
        root: the top of the git work tree.
        repo: an open `dvc.repo.Repo` to reuse (see `dirty_paths`).
    """
    dirty = dirty_paths(root, repo=repo)
    if not dirty:
        return
    shown = ", ".join(str(d) for d in dirty)
    raise DirtyTreeError(
        f"the tree has uncommitted changes: {shown}; {_fix(dirty)}, then rerun"
    )


def code_state(root: Path) -> CodeState:
    """The commit, branch and remote of the repository at `root`."""
    commit, branch, upstream = _branch_info(root)
    if commit is None:
        raise GitError(f"{root} has no commit yet; commit the project first")
    remotes = _remote_urls(root)
    name = upstream.split("/", 1)[0] if upstream else None
    if name not in remotes:
        name = "origin" if "origin" in remotes else min(remotes, default=None)
    url = redact_url(remotes[name]) if name else None
    contained = git(root, "branch", "-r", "--contains", commit, "--format=%(refname)")
    return CodeState(commit, branch, url, bool(contained.strip()))


def _parse_status(out: str) -> Iterator[DirtyPath]:
    fields = iter(out.split("\0"))
    for entry in fields:
        kind, _, rest = entry.partition(" ")
        if kind == "?":
            yield _named(rest, PathState.UNTRACKED)
        elif kind == "u":
            yield _named(rest.split(" ", 9)[-1], PathState.UNMERGED)
        elif kind == "2":
            parts = rest.split(" ", 8)
            yield DirtyPath(parts[-1], PathState.RENAMED, f"from {next(fields)}")
        elif kind == "1":
            parts = rest.split(" ", 7)
            yield _changed(parts[0], parts[1], parts[-1])


def _changed(xy: str, sub: str, path: str) -> DirtyPath:
    """A `1` entry of porcelain v2: `xy` is index and work tree state, `sub`
    the submodule flags (`S<commit><modified><untracked>`)."""
    if sub.startswith("S") and xy[0] == ".":
        what = [
            text
            for flag, text in zip(
                sub[1:],
                ("new commits", "modified content", "untracked content"),
                strict=False,
            )
            if flag != "."
        ]
        return DirtyPath(path, PathState.SUBMODULE, ", ".join(what))
    if "D" in xy:
        return _named(path, PathState.DELETED)
    if xy[1] != ".":
        return _named(path, PathState.MODIFIED)
    return _named(path, PathState.STAGED)


def _named(path: str, state: PathState) -> DirtyPath:
    return DirtyPath(path, state, _ROLES.get(path.rsplit("/", 1)[-1], ""))


def _without_stage_outputs(
    root: Path, found: list[DirtyPath], repo: Any
) -> list[DirtyPath]:
    """`found` without untracked files that are outputs of pipeline stages.

    DVC owns those: a stage that failed or was interrupted leaves what it wrote,
    which DVC has not git-ignored yet because no run recorded it; the next run
    rewrites it. A folder git collapsed (`build/`) is looked into, so a file of
    the user's that is no output is still named.
    """
    untracked = [d for d in found if d.state == PathState.UNTRACKED]
    if not untracked:
        return found
    outputs = _stage_outputs(root, repo)
    if not outputs:
        return found
    kept = [d for d in found if d.state != PathState.UNTRACKED]
    for entry in untracked:
        paths = [entry.path]
        if entry.path.endswith("/"):
            listed = git(root, "ls-files", "-z", "--others", "--exclude-standard")
            paths = [p for p in listed.split("\0") if p.startswith(entry.path)]
        left = [p for p in paths if not _under_any(p, outputs)]
        if left == [entry.path]:
            kept.append(entry)
        else:
            kept += [_named(path, PathState.UNTRACKED) for path in left]
    return kept


def _stage_outputs(root: Path, repo: Any) -> set[str]:
    """The outputs of the stages in `dvc.yaml` files, from the root, `/` form."""
    from aeromancy._dvc import open_repo

    def outputs(opened: Any) -> set[str]:
        top = Path(opened.root_dir)
        return {
            Path(os.path.relpath(out.fs_path, top)).as_posix()
            for stage in opened.index.stages
            if stage.path.endswith(("dvc.yaml", "dvc.yml"))
            for out in stage.outs
        }

    if repo is not None:
        return outputs(repo)
    if not (root / ".dvc").is_dir():
        return set()
    from dvc.exceptions import DvcException

    try:
        with open_repo(root) as opened:
            return outputs(opened)
    except DvcException:  # a dvc.yaml DVC cannot read: every path is named
        return set()


def _under_any(path: str, outputs: set[str]) -> bool:
    parts = path.rstrip("/").split("/")
    return any("/".join(parts[:n]) in outputs for n in range(1, len(parts) + 1))


def _dataset_changes(root: Path, repo: Any) -> list[DirtyPath]:
    """Datasets (outputs of `.dvc` files) whose workspace differs from their
    `.dvc` file, as DVC's own `status` reports them."""
    listed = git(root, "ls-files", "-z", "--", "*.dvc")
    targets = [str(root / path) for path in listed.split("\0") if path]
    if not targets:
        return []
    if repo is not None:
        return _from_status(root, repo.status(targets=targets))

    from aeromancy._dvc import open_repo

    with open_repo(root) as opened:
        return _from_status(root, opened.status(targets=targets))


def _from_status(root: Path, status: dict[str, Any]) -> list[DirtyPath]:
    """Read `Repo.status()`: `{dvcfile: [{"changed outs": {path: what}}]}`.
    An output that is only missing from the cache is not a workspace change."""
    states = {
        "modified": PathState.DATASET_MODIFIED,
        "new": PathState.DATASET_MODIFIED,
        "deleted": PathState.DATASET_MISSING,
    }
    found = []
    for dvcfile, changes in status.items():
        for change in changes:
            outs = change.get("changed outs", {}) if isinstance(change, dict) else {}
            for path, what in outs.items():
                if what in states:
                    shown = _relative(root, path, output=True)
                    source = _relative(root, dvcfile)
                    found.append(DirtyPath(shown, states[what], source))
    return found


def _relative(root: Path, path: str, *, output: bool = False) -> str:
    """A path DVC reported, relative to the repository root.

    DVC names a `.dvc` file relative to the working directory, and an output
    relative to the working directory when that is inside the repository, else
    relative to the repository root.
    """
    top = root.resolve()
    if output and not Path.cwd().resolve().is_relative_to(top):
        return Path(path).as_posix()
    return Path(os.path.relpath(os.path.abspath(path), top)).as_posix()


def _fix(dirty: list[DirtyPath]) -> str:
    states = {d.state for d in dirty}
    steps = []
    if states - {PathState.DATASET_MODIFIED, PathState.DATASET_MISSING}:
        steps.append("commit or stash them (`git stash -u`)")
    if PathState.DATASET_MODIFIED in states:
        steps.append(
            "restore a dataset with `dvc checkout PATH` or record it with "
            "`aero data ingest --new-version`"
        )
    if PathState.DATASET_MISSING in states:
        steps.append("fetch a missing dataset with `aero data pull`")
    return "; ".join(steps)


def _branch_info(root: Path) -> tuple[str | None, str | None, str | None]:
    """HEAD's commit, branch and upstream from `git status --branch`, without
    listing the work tree."""
    out = git(
        root,
        "status",
        "--porcelain=v2",
        "--branch",
        "--untracked-files=no",
        "--ignore-submodules=all",
        "--",
        ":(exclude)*",
    )
    info: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("# branch."):
            key, _, value = line[len("# branch.") :].partition(" ")
            info[key] = value
    commit = info.get("oid")
    branch = info.get("head")
    return (
        None if commit in (None, "(initial)") else commit,
        None if branch in (None, "(detached)") else branch,
        info.get("upstream"),
    )


def _remote_urls(root: Path) -> dict[str, str]:
    try:
        out = git(root, "config", "--get-regexp", r"^remote\..*\.url$")
    except GitError:  # no remote at all: git exits 1
        return {}
    urls = {}
    for line in out.splitlines():
        key, _, url = line.partition(" ")
        urls[key[len("remote.") : -len(".url")]] = url
    return urls
