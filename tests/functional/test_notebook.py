"""`aero export-notebook-env`: a real Jupyter kernel started with jupyter_client
reads the pinned run's bytes, before and after the workspace moves on."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result, git

READ = (
    "import base64, aeromancy.notebook as an\n"
    "print(base64.b64encode(an.load({path!r})).decode())\n"
    "print(an.lineage({path!r}))\n"
)


def _run_of(root: Path, stage: str) -> str:
    records = [
        json.loads(p.read_text()) for p in (root / ".aeromancy" / "runs").glob("*.json")
    ]
    return max((r["started"], r["run_id"]) for r in records if r["stage"] == stage)[1]


def _in_kernel(name: str, code: str) -> list[str]:
    """Start the kernel `name` as Jupyter would, run `code`, return its stdout."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name=name, startup_timeout=120)
    printed: list[str] = []
    errors: list[str] = []

    def collect(message: dict[str, Any]) -> None:
        content = message["content"]
        if message["msg_type"] == "stream":
            printed.append(content["text"])
        elif message["msg_type"] == "error":
            errors.append("\n".join(content["traceback"]))

    try:
        reply = client.execute_interactive(code, timeout=120, output_hook=collect)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok", errors
    return "".join(printed).splitlines()


@pytest.fixture
def tracked(project: Path, aero: type[Result]) -> Path:
    result = aero("repro", cwd=project)
    assert result.exit_code == 0, result.stderr
    return project


def test_the_exported_kernel_reads_the_pinned_run_after_the_workspace_moves_on(
    tracked: Path, aero: type[Result]
) -> None:
    train = _run_of(tracked, "train")
    before = (tracked / "build" / "model.json").read_bytes()

    result = aero("export-notebook-env", train, cwd=tracked / "notebooks")
    name = f"aero-demo-{train}"
    assert (result.exit_code, result.stdout) == (0, f"{name}\n"), result.stderr
    assert f"installed kernel '{name}' in " in result.stderr
    assert f"data pinned to run {train} (stage train, fingerprint " in result.stderr
    assert "running a notebook is never a tracked run" in result.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert name in listed

    printed = _in_kernel(name, READ.format(path="build/model.json"))
    assert base64.b64decode(printed[0]) == before
    assert printed[1].startswith(f"data of run {train} (stage train, fingerprint ")
    assert printed[1].endswith(f"pinned by kernel {name}")

    params = tracked / "params.yaml"
    params.write_text(params.read_text().replace("normalize: true", "normalize: false"))
    git(tracked, "commit", "--quiet", "-am", "no normalization")
    assert aero("repro", cwd=tracked).exit_code == 0
    assert (tracked / "build" / "model.json").read_bytes() != before

    printed = _in_kernel(name, READ.format(path="build/model.json"))
    assert base64.b64decode(printed[0]) == before


def test_without_a_run_the_kernel_pins_head_and_prefix_is_honoured(
    tracked: Path, aero: type[Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = tmp_path / "prefix"
    result = aero(
        "export-notebook-env",
        "--name",
        "demo-head",
        "--prefix",
        str(prefix),
        cwd=tracked,
    )
    assert (result.exit_code, result.stdout) == (0, "demo-head\n"), result.stderr
    spec = json.loads(
        (prefix / "share/jupyter/kernels/demo-head/kernel.json").read_text()
    )
    pin = json.loads(spec["env"]["AEROMANCY_PIN"])
    head = git(tracked, "rev-parse", "HEAD").strip()
    assert (pin["commit"], pin["run"], pin["kernel"]) == (head, None, "demo-head")
    assert f"data pinned to commit {head[:12]}: aeromancy.notebook" in result.stderr
    assert spec["metadata"]["aeromancy"] == {"runtime": "host", "tracked": False}
    python = Path(spec["argv"][0])
    assert python.is_relative_to(tracked / ".aeromancy" / "kernels")

    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    printed = _in_kernel("demo-head", READ.format(path="build/metrics.json"))
    assert base64.b64decode(printed[0]) == (tracked / "build/metrics.json").read_bytes()


def test_refusals_are_one_line(
    tracked: Path, aero: type[Result], tmp_path: Path
) -> None:
    def error(*args: str, env: dict[str, str] | None = None) -> str:
        result = aero("export-notebook-env", *args, cwd=tracked, env=env)
        assert (result.exit_code, result.stdout) == (1, ""), result.stderr
        assert len(result.lines) == 1, result.stderr
        return result.lines[0]

    assert error("nosuchrun") == (
        "error: no run 'nosuchrun' in .aeromancy/runs or the remote; "
        "`aero runs list` shows the known runs"
    )
    assert error("--runtime", "docker") == (
        "error: runtime 'docker' has no notebook kernel yet; use "
        "`aero export-notebook-env --runtime host`"
    )
    assert error("--name", "Bad Name") == (
        "error: kernel name 'Bad Name' is not valid: use lowercase letters, "
        "digits, '.', '_' and '-'"
    )

    assert aero("export-notebook-env", "--name", "taken", cwd=tracked).exit_code == 0
    taken = Path(os.environ["JUPYTER_DATA_DIR"], "kernels", "taken")
    assert error("--name", "taken") == (
        f"error: a Jupyter kernel named 'taken' already exists ({taken}); "
        "choose another --name, or replace it with --force"
    )
    forced = aero("export-notebook-env", "--name", "taken", "--force", cwd=tracked)
    assert forced.exit_code == 0, forced.stderr

    # A jupyter_client that cannot be imported, as on a machine without it.
    shim = tmp_path / "shim" / "jupyter_client"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('not installed')\n")
    assert error("--name", "other", env={"PYTHONPATH": str(shim.parent)}) == (
        "error: Jupyter is not installed (no jupyter_client); "
        "pip install ipykernel jupyter_client"
    )
