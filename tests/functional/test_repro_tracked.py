"""Tracked `aero repro`: every executed stage fingerprinted, pushed, recorded,
logged; refusals and faults leave nothing claimed that did not happen."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aeromancy import config
from tests.conftest import S3, git, records, run_aero, s3_project


def commit_change(root: Path, path: str, text: str) -> None:
    (root / path).write_text(text)
    git(root, "commit", "--quiet", "-am", f"change {path}")


def test_each_executed_stage_is_recorded_pushed_and_committed(
    aero,
    project: Path,  # type: ignore[no-untyped-def]
) -> None:
    result = aero("repro", cwd=project)

    assert result.exit_code == 0, result.stderr
    found = records(project)
    assert sorted(found) == ["evaluate", "prepare", "train"]
    assert all(f"(run {r['run_id']})" in result.stderr for r in found.values())

    train = found["train"]
    assert train["status"] == "succeeded" and train["exit_code"] == 0
    assert train["fingerprint"]["runtime"]["kind"] == "host"
    assert train["fingerprint"]["runtime"]["sealed"] is False
    assert train["fingerprint"]["params"]["params.yaml"]["train"]["normalize"] is True
    assert (
        train["fingerprint"]["code"]["commit"]
        == git(project, "rev-parse", "HEAD~1").strip()
    )
    model = train["outputs"]["build/model.json"]
    assert model["pushed"] is True and model["hash"].startswith("md5:")

    store = Path(config.load(project).remote.url)
    digest = model["hash"].removeprefix("md5:")
    assert (store / "files" / "md5" / digest[:2] / digest[2:]).is_file()
    assert (store / "aeromancy" / "runs" / f"{train['run_id']}.json").is_file()
    assert git(project, "status", "--porcelain") == ""
    assert train["run_id"] in git(project, "log", "-1", "--format=%s")


def test_up_to_date_stages_name_the_run_that_made_them(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert aero("repro", cwd=project).exit_code == 0
    made = records(project)

    again = aero("repro", cwd=project)
    assert again.exit_code == 0, again.stderr
    assert f"(made by run {made['train']['run_id']})" in again.stderr
    assert "0 recorded (-), 4 up to date" in again.stderr


def test_a_params_change_reruns_and_diff_shows_it(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert aero("repro", cwd=project).exit_code == 0
    first = records(project)["prepare"]["run_id"]
    params = (project / "params.yaml").read_text().replace("0.25", "0.3")
    commit_change(project, "params.yaml", params)

    assert aero("repro", cwd=project).exit_code == 0
    second = records(project)["prepare"]["run_id"]
    diff = aero("runs", "diff", first, second, "--json", cwd=project)
    assert diff.exit_code == 0, diff.stderr
    where = {
        d["where"]: (d["a"], d["b"]) for d in json.loads(diff.stdout)["differences"]
    }
    assert where["params > params.yaml > prepare > test_fraction"] == (0.25, 0.3)
    assert "code > commit" in where
    assert "outputs > build/prepared" in where
    assert not any(w.startswith("runtime") for w in where)


def test_runs_list_and_show(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert aero("repro", cwd=project).exit_code == 0
    listed = aero("runs", "list", "--json", cwd=project)
    assert listed.exit_code == 0
    runs = json.loads(listed.stdout)
    assert {r["stage"] for r in runs} == {"prepare", "train", "evaluate"}

    shown = aero("runs", "show", runs[0]["run_id"], "--json", cwd=project)
    assert json.loads(shown.stdout)["run_id"] == runs[0]["run_id"]
    table = aero("runs", "show", runs[0]["run_id"], cwd=project)
    assert runs[0]["fingerprint_digest"] in table.stdout


@pytest.mark.parametrize("command", [["show", "nope"], ["diff", "nope", "nada"]])
def test_unknown_run_id(aero, project: Path, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = aero("runs", *command, cwd=project)
    assert result.exit_code == 1
    assert result.lines == [
        "error: no run 'nope' in .aeromancy/runs or the remote; "
        "`aero runs list` shows the known runs"
    ]


def test_dirty_tree_is_refused_naming_the_path(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    (project / "params.yaml").write_text("prepare:\n  test_fraction: 0.5\n")
    result = aero("repro", cwd=project)

    assert result.exit_code == 1
    assert len(result.lines) == 1
    assert "params.yaml (modified, params)" in result.lines[0]
    assert not (project / ".aeromancy" / "runs").exists()


def test_failing_stage_is_recorded_failed_and_not_pushed(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    script = "from pathlib import Path\nimport sys\n"
    script += "Path('build/model.json').write_text('{}')\nsys.exit(7)\n"
    commit_change(project, "src/train.py", script)

    result = aero("repro", cwd=project)
    assert result.exit_code == 7
    assert result.lines[-1] == "error: stage 'train' failed with exit code 7"
    found = records(project)
    assert found["prepare"]["status"] == "succeeded"
    assert found["train"]["status"] == "failed"
    assert found["train"]["exit_code"] == 7
    assert all(not o["pushed"] for o in found["train"]["outputs"].values())
    assert "evaluate" not in found


def test_ctrl_c_mid_stage_is_recorded_aborted(project: Path) -> None:
    script = "import time\nfrom pathlib import Path\n"
    script += "Path('started').write_text('x')\ntime.sleep(60)\n"
    commit_change(project, "src/train.py", script)
    (project / ".gitignore").write_text("started\n.aeromancy/\n")
    git(project, "commit", "--quiet", "-am", "ignore the marker")

    process = subprocess.Popen(
        [sys.executable, "-m", "aeromancy", "repro"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (project / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: stage 'train' was interrupted"
    assert records(project)["train"]["status"] == "aborted"


def test_require_pushed_refuses_an_unpushed_commit(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    text = (project / "pyproject.toml").read_text()
    commit_change(
        project,
        "pyproject.toml",
        text.replace("require_pushed = false", "require_pushed = true"),
    )
    result = aero("repro", cwd=project)
    assert result.exit_code == 1
    assert (
        "is on no remote branch and tool.aeromancy.require_pushed is true"
        in (result.lines[0])
    )


def test_unpushed_commit_is_a_warning(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("repro", cwd=project)
    assert "warning: commit" in result.stderr and "no remote branch" in result.stderr


def test_dev_mode_records_nothing(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert aero("repro", "--dev", cwd=project).exit_code == 0
    assert not (project / ".aeromancy").exists()
    store = Path(config.load(project).remote.url)
    assert not (store / "aeromancy").exists()


def test_s3_remote_holds_records_and_outputs(tmp_path: Path, s3: S3) -> None:
    root = s3_project(tmp_path / "demo", s3)
    result = run_aero("repro", cwd=root)
    assert result.exit_code == 0, result.stderr

    keys = {
        o["Key"]
        for page in s3.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=s3.bucket)
        for o in page.get("Contents", [])
    }
    train = records(root)["train"]
    assert f"proj/aeromancy/runs/{train['run_id']}.json" in keys
    digest = train["outputs"]["build/model.json"]["hash"].removeprefix("md5:")
    assert f"proj/files/md5/{digest[:2]}/{digest[2:]}" in keys
    assert any(k.startswith("proj/aeromancy/manifests/python-") for k in keys)

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(root), str(clone)], check=True)
    listed = run_aero("runs", "list", "--json", cwd=clone)
    assert listed.exit_code == 0, listed.stderr
    assert train["run_id"] in {r["run_id"] for r in json.loads(listed.stdout)}
