"""A scaffolded project whose tracked stages run in a Nix runtime, for real.

The runtime is `LOCAL_FLAKE` (built offline from `builtins.derivation`); the
stock `nix path-info` checks the closure the records name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aeromancy.manifest import NixClosure
from aeromancy.runs import LOCAL_MANIFESTS
from aeromancy.runtime.nix import current_system
from tests.conftest import git, local_flake, records, run_aero

pytestmark = pytest.mark.nix

PROBE = (
    "hello > probe.txt && command -v python3 >> probe.txt && "
    "echo $AERO_FROM_SHELL >> probe.txt"
)


def stock_closure(out: str) -> NixClosure:
    done = subprocess.run(
        ["nix", "path-info", "--recursive", "--json", out],
        capture_output=True,
        text=True,
        check=True,
    )
    return NixClosure.from_path_info(json.loads(done.stdout))


def without_nix(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has git but no nix."""
    folder = tmp_path / "bin-without-nix"
    folder.mkdir()
    (folder / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    return {"PATH": str(folder)}


def test_build_prints_the_id_and_a_second_build_reads_the_cache(
    nix_project: Path,
) -> None:
    first = run_aero("build", cwd=nix_project)
    assert first.exit_code == 0, first.stderr
    runtime_id = first.stdout.strip()
    assert len(runtime_id) == 64
    shell = f"flake.nix#devShells.{current_system()}.default"
    assert first.lines[-1].startswith(f"built {shell} (/nix/store/")
    assert first.lines[-1].endswith("-aero-test-shell)")

    again = run_aero("build", "--runtime", "nix", cwd=nix_project)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.strip() == runtime_id
    assert again.lines == [first.lines[-1].replace("built", "up to date:", 1)]


def test_a_tracked_repro_runs_inside_the_runtime_and_records_its_closure(
    nix_project: Path,
) -> None:
    text = (nix_project / "dvc.yaml").read_text()
    text += f"  probe:\n    cmd: {json.dumps(PROBE)}\n    outs:\n      - probe.txt\n"
    (nix_project / "dvc.yaml").write_text(text)
    git(nix_project, "commit", "--quiet", "-am", "add the probe stage")
    runtime_id = run_aero("build", cwd=nix_project).stdout.strip()

    result = run_aero("repro", cwd=nix_project)
    assert result.exit_code == 0, result.stderr
    found = records(nix_project)
    assert set(found) == {"prepare", "train", "evaluate", "probe"}
    out = os.readlink(nix_project / ".aeromancy" / "nix" / "runtime")
    closure = stock_closure(out)
    for record in found.values():
        runtime = record["fingerprint"]["runtime"]
        assert runtime["kind"] == "nix"
        assert runtime["id"] == runtime_id
        assert runtime["sealed"] is True
        assert runtime["nix_digest"] == closure.digest
        assert runtime["nix_inputs"] == {}
    saved = nix_project / LOCAL_MANIFESTS / f"nix-{closure.digest}.txt"
    assert saved.read_text() == closure.text()

    tools = next(e.path for e in closure.entries if e.name == "aero-test-tools")
    probe = (nix_project / "probe.txt").read_text().splitlines()
    assert probe == ["hello from nix", f"{tools}/bin/python3", "from-the-shell"]
    assert git(nix_project, "status", "--porcelain") == ""


def test_a_debug_shell_opens_in_the_runtimes_environment(nix_project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aeromancy", "repro", "--debug-shell"],
        cwd=nix_project,
        input="echo $AERO_FROM_SHELL; hello; exit 3\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["from-the-shell", "hello from nix"]


def test_no_nix_is_one_line_and_nothing_runs(nix_project: Path, tmp_path: Path) -> None:
    result = run_aero("repro", cwd=nix_project, env=without_nix(tmp_path))
    assert result.exit_code == 1
    assert result.lines == [
        "error: the Nix runtime needs Nix, and there is no `nix` on PATH: install "
        "it (`apt-get install nix-bin` on Debian and Ubuntu) or use --runtime host"
    ]
    assert records(nix_project) == {}
    assert git(nix_project, "status", "--porcelain") == ""


def test_a_flake_that_does_not_evaluate_is_one_line(nix_project: Path) -> None:
    broken = local_flake().replace("inherit system;", "inherit system; x = y;", 1)
    (nix_project / "flake.nix").write_text(broken)
    git(nix_project, "commit", "--quiet", "-am", "break the flake")

    result = run_aero("build", cwd=nix_project)
    assert result.exit_code == 1
    (line,) = result.lines
    assert line.startswith(
        "error: flake.nix does not evaluate: undefined variable 'y' (at flake.nix:"
    )


def test_an_input_that_cannot_be_fetched_is_one_line(nix_project: Path) -> None:
    text = local_flake().replace(
        "outputs = { self }:",
        'inputs.tools.url = "path:/nonexistent/aero-tools";\n'
        "  outputs = { self, tools }:",
    )
    (nix_project / "flake.nix").write_text(text)
    git(nix_project, "commit", "--quiet", "-am", "an input that is not there")

    result = run_aero("repro", cwd=nix_project)
    assert result.exit_code == 1
    assert result.lines == [
        "error: flake input 'tools' (path:/nonexistent/aero-tools) cannot be "
        "fetched: getting status of '/nonexistent/aero-tools': No such file or "
        "directory; fix inputs.tools.url in flake.nix, or use --runtime host"
    ]
    assert records(nix_project) == {}
