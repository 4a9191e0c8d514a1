"""Reruns without running anything: finding the run, verdicts, runtime drift,
params changes, and the worktree's setup and removal."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aeromancy import _worktree, rerun, runs
from aeromancy.errors import RerunDivergedError, UserError
from aeromancy.manifest import Manifests, PythonManifest
from aeromancy.params import ParamChange, ParamsError, apply_changes
from tests.conftest import git


def record(stage: str = "train", **fields: Any) -> runs.RunRecord:
    values: dict[str, Any] = {
        "run_id": runs.new_run_id(),
        "invocation": "20260101-000000-aaaaaa",
        "project": "demo",
        "stage": stage,
        "command": "true",
        "status": runs.SUCCEEDED,
        "started": "2026-01-01T00:00:00+00:00",
        "ended": "2026-01-01T00:00:01+00:00",
        "fingerprint": {},
        "fingerprint_digest": "0" * 64,
    }
    return runs.RunRecord(**{**values, **fields})


def out(digest: str | None, size: int = 3) -> dict[str, Any]:
    return {"hash": digest, "size": size}


def test_diverged_exits_3() -> None:
    assert RerunDivergedError("x").exit_code == 3
    assert issubclass(RerunDivergedError, UserError)


def test_compare_outputs_identical_differs_missing() -> None:
    before = record(outputs={"a": out("md5:1"), "b": out("md5:2"), "c": out("md5:3")})
    after = record(outputs={"a": out("md5:1"), "b": out("md5:9", 4), "c": out(None)})
    verdicts = {v.path: v.verdict for v in rerun.compare_outputs(before, after)}
    assert verdicts == {"a": rerun.IDENTICAL, "b": rerun.DIFFERS, "c": rerun.MISSING}


def test_find_by_invocation_and_stage(tmp_path: Path) -> None:
    prepare = record("prepare", ended="2026-01-01T00:00:01+00:00")
    train = record("train", ended="2026-01-01T00:00:02+00:00")
    for each in (prepare, train):
        runs.save(tmp_path, each, None)

    assert rerun.find(tmp_path, None, train.invocation).run_id == train.run_id
    assert rerun.find(tmp_path, None, train.run_id, "prepare").run_id == prepare.run_id
    with pytest.raises(rerun.RerunError, match="no run of stage 'eval'"):
        rerun.find(tmp_path, None, train.run_id, "eval")
    with pytest.raises(runs.UnknownRunError, match="no run 'nope'"):
        rerun.find(tmp_path, None, "nope")


class FakeRuntime:
    kind = "host"
    sealed = False
    id = "1" * 64

    def __init__(self, python: str) -> None:
        self.python = PythonManifest.parse(python)

    def manifest(self) -> Manifests:
        return Manifests(python=self.python)

    def describe(self) -> dict[str, Any]:
        return {}


def test_runtime_drift_package_by_package(tmp_path: Path) -> None:
    old = PythonManifest.parse("numpy==1.0\nrich==13.0\n")
    runs.save_manifest(tmp_path, None, "python", old.text(), old.digest)
    node = {"kind": "host", "id": "1" * 64, "python_digest": old.digest}
    now = FakeRuntime("numpy==2.0\nrich==13.0\ntyper==0.12\n")

    drift = rerun.runtime_drift(tmp_path, None, node, now)  # type: ignore[arg-type]

    assert [(d.where, d.recorded, d.now) for d in drift] == [
        ("python > numpy", "1.0", "2.0"),
        ("python > typer", None, "0.12"),
    ]
    same = FakeRuntime("numpy==1.0\nrich==13.0\n")
    assert rerun.runtime_drift(tmp_path, None, node, same) == []  # type: ignore[arg-type]


def test_runtime_drift_without_the_stored_list_names_the_manifest(
    tmp_path: Path,
) -> None:
    node = {"id": "2" * 64, "python_digest": "a" * 64}
    drift = rerun.runtime_drift(tmp_path, None, node, FakeRuntime("x==1\n"))  # type: ignore[arg-type]
    assert [d.where for d in drift] == ["python manifest"]


@pytest.mark.parametrize(
    ("text", "file", "key", "value"),
    [
        ("train.normalize=false", "params.yaml", ("train", "normalize"), False),
        ("params.yaml:train.lr=0.1", "params.yaml", ("train", "lr"), 0.1),
        ("sub/p.yaml:a=[x, y]", "sub/p.yaml", ("a",), ["x", "y"]),
        ("a.b=", "params.yaml", ("a", "b"), None),
    ],
)
def test_param_change_parse(text: str, file: str, key: tuple[str], value: Any) -> None:
    change = ParamChange.parse(text)
    assert (change.file, change.key, change.value) == (file, key, value)


@pytest.mark.parametrize("text", ["train.lr", "=1", "a..b=1", "a=[1"])
def test_param_change_parse_refuses(text: str) -> None:
    with pytest.raises(ParamsError, match=re.escape(f"--set '{text}'")):
        ParamChange.parse(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    root.mkdir()
    git(root, "init", "--quiet")
    (root / "params.yaml").write_text("# kept\ntrain:\n  lr: 0.5  # step\n  on: true\n")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "first")
    return root


def test_apply_changes_keeps_comments_and_commits(repo: Path) -> None:
    commit = apply_changes(repo, [ParamChange.parse("train.lr=0.1")])
    assert git(repo, "rev-parse", "HEAD").strip() == commit
    assert (repo / "params.yaml").read_text() == (
        "# kept\ntrain:\n  lr: 0.1  # step\n  on: true\n"
    )
    assert git(repo, "status", "--porcelain") == ""
    assert "train.lr=0.1" in git(repo, "log", "-1", "--format=%s")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train.nope=1", "params.yaml has no param 'train.nope'"),
        ("train.lr=0.5", "train.lr is already 0.5 in params.yaml"),
        ("other.yaml:a=1", "params file other.yaml does not exist"),
        ("p.json:a=1", "--set changes YAML params files only, not p.json"),
    ],
)
def test_apply_changes_refuses(repo: Path, text: str, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        apply_changes(repo, [ParamChange.parse(text)])


def test_worktree_is_made_shared_and_removed(repo: Path) -> None:
    (repo / ".aeromancy" / "runs").mkdir(parents=True)
    commit = git(repo, "rev-parse", "HEAD").strip()
    assert _worktree.has_commit(repo, commit)
    assert not _worktree.has_commit(repo, "e" * 40)

    where = _worktree.create(repo, "run-1", commit)
    assert where == repo / ".aeromancy" / "worktrees" / "run-1" / "demo"
    assert (where / "params.yaml").is_file()
    assert (where / ".aeromancy" / "runs").resolve() == repo / ".aeromancy" / "runs"
    with pytest.raises(_worktree.RerunError, match="already exists"):
        _worktree.create(repo, "run-1", commit)

    (where / "made").write_text("x")
    (where / "made").chmod(0o444)
    _worktree.remove(repo, where)
    assert not where.parent.exists()
    assert (repo / ".aeromancy" / "runs").is_dir()
    listed = subprocess.run(
        ["git", "worktree", "list"], cwd=repo, capture_output=True, text=True
    )
    assert listed.stdout.count("\n") == 1
