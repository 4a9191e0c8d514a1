"""Code state: the git repository a project lives in.

Thin wrappers over the `git` command line, which is always present where
Aeromancy runs and is faster to start than any binding.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from aeromancy.errors import UserError

__all__ = ["GitError", "commit_paths", "git", "head_commit", "init_repo", "is_repo"]


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
