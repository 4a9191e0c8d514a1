"""`aero version`: the workspace's fingerprint tree, as a tree or as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import git


def test_before_any_run_nothing_is_locked(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("version", "--json", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    stages = json.loads(result.stdout)["stages"]
    assert [s["tree"]["stage"]["name"] for s in stages] == [
        "prepare",
        "train",
        "evaluate",
    ]
    prepare = stages[0]["tree"]
    assert prepare["data"] == {
        "data/measurements": None,
        "src/common.py": None,
        "src/prepare.py": None,
    }
    assert prepare["params"] == {"params.yaml": None}
    assert prepare["code"] == {
        "commit": git(project, "rev-parse", "HEAD").strip(),
        "remote": None,
    }
    assert prepare["runtime"]["kind"] == "host"
    assert prepare["runtime"]["sealed"] is False


def test_after_a_run_hashes_and_params_come_from_dvc_lock(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert aero("repro", "--dev", cwd=project).exit_code == 0
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "ran")
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]

    result = aero("version", "--json", cwd=project / "src")
    assert result.exit_code == 0, result.stderr
    stages = {
        s["tree"]["stage"]["name"]: s for s in json.loads(result.stdout)["stages"]
    }
    for name, stage in stages.items():
        expected = {dep["path"]: f"md5:{dep['md5']}" for dep in lock[name]["deps"]}
        assert stage["tree"]["data"] == expected
        assert stage["tree"]["params"] == lock[name].get("params", {})
        assert stage["tree"]["stage"]["cmd"] == lock[name]["cmd"]
        assert len(stage["digest"]) == 64
        assert set(stage["nodes"]) == {"code", "runtime", "data", "params", "stage"}

    shown = aero("version", cwd=project)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"stage train  {stages['train']['digest'][:12]}" in lines
    data = stages["train"]["tree"]["data"]
    assert f"│   ├── build/prepared: {data['build/prepared']}" in lines
    assert "│           └── normalize: true" in lines


def test_a_dirty_tree_is_reported_on_stderr(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    (project / "params.yaml").write_text("prepare:\n  test_fraction: 0.5\n")
    result = aero("version", "--json", cwd=project)
    assert result.exit_code == 0
    json.loads(result.stdout)
    assert result.lines == [
        "warning: uncommitted changes, not part of these versions: "
        "params.yaml (modified, params)"
    ]


def test_outside_a_project(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("version", cwd=tmp_path)
    assert result.exit_code == 1
    assert len(result.lines) == 1
    assert result.lines[0].startswith("error: ")
    assert result.stdout == ""
