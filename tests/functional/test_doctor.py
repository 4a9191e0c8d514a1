"""`aero doctor` on real projects: every part checked, one line each; a part
that cannot answer fails the command and names itself, and no secret shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomlkit

from tests.conftest import S3, Result, configure_runtime, git, s3_project

NAMES = ["git", "dvc", "project", "remote", "cache", "runtime", "tracker", "jupyter"]


def _statuses(result: Result) -> dict[str, str]:
    return {check["name"]: check["status"] for check in json.loads(result.stdout)}


def test_a_healthy_host_project_passes_with_the_host_runtime_a_warning(
    project: Path, aero: type[Result]
) -> None:
    result = aero("doctor", cwd=project / "notebooks")
    assert result.exit_code == 0, result.stderr
    names = [line.split()[1] for line in result.stdout.splitlines()]
    assert names == NAMES
    assert "warn runtime  host: stages run unsealed on this machine" in result.stdout

    listed = aero("doctor", "--json", cwd=project)
    assert listed.exit_code == 0, listed.stderr
    assert _statuses(listed) == {
        **dict.fromkeys(NAMES, "ok"),
        "runtime": "warn",
    }

    (project / "notes.txt").write_text("uncommitted\n")
    dirty = aero("doctor", "--json", cwd=project)
    assert dirty.exit_code == 0
    project_check = json.loads(dirty.stdout)[2]
    assert project_check["status"] == "warn"
    assert "uncommitted notes.txt" in project_check["detail"]


def test_outside_a_project_only_the_tools_are_checked(
    tmp_path: Path, aero: type[Result]
) -> None:
    result = aero("doctor", "--json", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    statuses = _statuses(result)
    assert [statuses[name] for name in ("git", "dvc", "jupyter")] == ["ok"] * 3
    assert {statuses[name] for name in NAMES[2:7]} == {"skip"}


@pytest.mark.s3
def test_unreachable_parts_fail_in_one_line_each_and_no_secret_shows(
    tmp_path: Path, s3: S3, aero: type[Result]
) -> None:
    root = s3_project(tmp_path / "proj", s3)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text().replace(s3.endpoint, "http://127.0.0.1:9")
    pyproject.write_text(text)
    git(root, "commit", "--quiet", "-am", "a dead endpoint")
    configure_runtime(root, kind="docker", base_image="debian:bookworm-slim")
    secret = "doctor-canary-d0c70r"
    env = {
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "WANDB_BASE_URL": f"http://user:{secret}@127.0.0.1:9",
        "WANDB_API_KEY": secret,  # never reaches W&B: doctor only opens a socket
    }
    document = tomlkit.parse(pyproject.read_text())
    tracker = document["tool"]["aeromancy"]["tracker"]  # type: ignore[index]
    tracker["kind"], tracker["mode"] = "wandb", "online"  # type: ignore[index]
    pyproject.write_text(tomlkit.dumps(document))
    git(root, "commit", "--quiet", "-am", "W&B online")

    result = aero("doctor", cwd=root, env=env)
    assert result.exit_code == 1
    assert result.lines == ["error: 2 check(s) failed: remote, runtime"]
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert lines["remote"].startswith("fail remote ")
    assert "127.0.0.1:9" in lines["remote"]
    assert lines["runtime"].startswith(
        "fail runtime  no container engine reachable at "
    )
    assert lines["tracker"].startswith("warn tracker  wandb online: ")
    assert "unreachable" in lines["tracker"]
    assert secret not in result.stdout + result.stderr
