"""`aeromancy.cli._typer`: running a command does not import pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from aeromancy.cli.main import app


def _modules_after(args: list[str], cwd: Path) -> list[str]:
    probe = (
        "import sys, json\n"
        f"sys.argv = ['aero', *{args!r}]\n"
        "from aeromancy.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pydantic'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_repro_parses_without_pydantic(tmp_path: Path) -> None:
    # Outside a project the command fails right after parsing its arguments.
    assert _modules_after(["repro", "--dev", "train", "-f"], tmp_path) == []


def test_help_still_works_on_each_command() -> None:
    runner = CliRunner()
    for args in (["--help"], ["repro", "-h"], ["init", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Show this message and exit." in result.output


def test_repro_help_names_the_targets() -> None:
    result = CliRunner().invoke(app, ["repro", "--help"])
    assert "aero repro [OPTIONS] [TARGETS]..." in result.output
    assert "TARGETS are the stages to reproduce" in result.output


def test_plain_parameters_parse_without_pydantic(tmp_path: Path) -> None:
    for args in (
        ["data", "push", "data/x", "--jobs", "3"],
        ["runs", "list", "--json"],
        ["rerun", "some-run", "--stage", "train", "--set", "a=1"],
        ["doctor", "--json"],
    ):
        assert _modules_after(args, tmp_path) == [], args


def test_a_bad_plain_value_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["data", "push", "--jobs", "0"])
    assert result.exit_code == 2
    assert "0 is not at least 1" in result.output
    result = CliRunner().invoke(app, ["data", "push", "--jobs", "many"])
    assert result.exit_code == 2
    assert "'many' is not a valid int" in result.output
