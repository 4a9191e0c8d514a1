"""`aero repro --dev`: the pipeline on the host, untracked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import git


def test_example_pipeline_runs_then_is_up_to_date(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    first = aero("repro", "--dev", cwd=project)
    assert first.exit_code == 0, first.stderr
    assert "3 ran (prepare, train, evaluate)" in first.stderr
    metrics = json.loads((project / "build" / "metrics.json").read_text())
    assert 0.9 < metrics["accuracy"] <= 1.0
    # The stages' own output reaches the user; DVC's chatter does not reach stdout.
    assert "prepare: 176 train rows, 64 test rows" in first.stdout
    assert "Running stage" not in first.stdout

    second = aero("repro", "--dev", cwd=project)
    assert second.exit_code == 0
    assert (
        "0 ran (-), 4 up to date (data/measurements.dvc, prepare, train, evaluate)"
        in (second.stderr)
    )


def test_outputs_are_deterministic(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert aero("repro", "--dev", cwd=project).exit_code == 0
    lock = (project / "dvc.lock").read_text()
    assert aero("repro", "--dev", "--force", cwd=project).exit_code == 0
    assert (project / "dvc.lock").read_text() == lock


def test_targets_run_only_what_they_need(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("repro", "--dev", "train", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert "2 ran (prepare, train)" in result.stderr
    assert not (project / "build" / "metrics.json").exists()


def test_from_a_subfolder(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("repro", "--dev", cwd=project / "src")
    assert result.exit_code == 0, result.stderr


def test_unknown_stage_is_named(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("repro", "--dev", "trian", cwd=project)
    assert result.exit_code == 1
    assert result.lines == [
        "error: unknown stage 'trian' in dvc.yaml "
        "(stages: data/measurements.dvc, evaluate, prepare, train)"
    ]


def test_failing_stage_exits_with_its_code(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    (project / "src" / "train.py").write_text("import sys\nsys.exit(7)\n")
    result = aero("repro", "--dev", cwd=project)
    assert result.exit_code == 7
    assert result.lines[-1] == "error: stage 'train' failed with exit code 7"
    assert not (project / "build" / "metrics.json").exists()


def test_outside_a_project(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("repro", "--dev", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.lines == [
        f"error: not inside an Aeromancy project (no DVC repository at or above "
        f"{tmp_path.resolve()}); run `aero init DIR` to create one"
    ]


def test_project_without_dvc_yaml(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    git(project, "rm", "--quiet", "dvc.yaml")
    result = aero("repro", "--dev", cwd=project)
    assert result.exit_code == 1
    assert result.lines == [
        f"error: no dvc.yaml in {project}; add a stage with `dvc stage add` first"
    ]


def test_malformed_pyproject_is_reported_with_its_position(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    (project / "pyproject.toml").write_text('[tool.aeromancy]\nkind = "x\n')
    result = aero("repro", "--dev", cwd=project)
    assert result.exit_code == 1
    assert len(result.lines) == 1
    assert result.lines[0].startswith("error: ")
    assert (
        "pyproject.toml:2:" in result.lines[0] and "malformed TOML" in result.lines[0]
    )


def test_wrong_key_in_config_is_named(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    text = (
        (project / "pyproject.toml")
        .read_text()
        .replace('kind = "host"', 'kind = "dockr"')
    )
    (project / "pyproject.toml").write_text(text)
    result = aero("repro", "--dev", cwd=project)
    assert result.exit_code == 1
    assert result.lines == [
        "error: pyproject.toml: tool.aeromancy.runtime.kind must be one of "
        'docker, nix, host (got "dockr")'
    ]
