"""The `aero` command line itself: start-up, version, the error boundary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aeromancy import __version__

HEAVY = ("dvc", "wandb", "mlflow", "docker", "boto3")


def test_help_imports_no_heavy_library() -> None:
    probe = (
        "import sys, json\n"
        "sys.argv = ['aero', '--help']\n"
        "from aeromancy.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert "init" in done.stdout and "repro" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_version(aero) -> None:  # type: ignore[no-untyped-def]
    result = aero("--version")
    assert (result.exit_code, result.stdout.strip()) == (0, f"aero {__version__}")


def test_user_error_is_one_red_line_without_traceback(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("repro", "--dev", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.lines) == 1
    assert result.lines[0].startswith("error: not inside an Aeromancy project")
    assert "Traceback" not in result.stderr


def test_verbose_shows_the_traceback(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("-v", "repro", "--dev", cwd=tmp_path)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "ProjectError" in result.stderr


def test_aero_debug_env_shows_the_traceback(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("repro", "--dev", cwd=tmp_path, env={"AERO_DEBUG": "1"})
    assert result.exit_code == 1
    assert "Traceback" in result.stderr


def test_usage_error_exits_2(aero) -> None:  # type: ignore[no-untyped-def]
    result = aero("init", "--tracker", "neptune")
    assert result.exit_code == 2
    assert "neptune" in result.stderr
