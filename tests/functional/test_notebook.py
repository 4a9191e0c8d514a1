"""`aero export-notebook-env`: a real Jupyter kernel started with jupyter_client
reads the pinned run's bytes, before and after the workspace moves on."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result, git, local_flake

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
    assert error("--runtime", "conda") == (
        "error: --runtime must be one of docker, nix, host (got 'conda')"
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


#: What the runtime kernels print besides the pinned bytes: where they run, and
#: that DVC is not there (the broker on the host reads the data).
WHERE = (
    "import sys, importlib.util as u, aeromancy.notebook as an\n"
    "print(sys.executable)\n"
    "print(u.find_spec('dvc') is None)\n"
    "print(open(an.path({path!r}), 'rb').read() == an.load({path!r}))\n"
)


def _launch(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The installed kernel.json and aeromancy-launch.json of kernel `name`."""
    folder = Path(os.environ["JUPYTER_DATA_DIR"], "kernels", name)
    return (
        json.loads((folder / "kernel.json").read_text()),
        json.loads((folder / "aeromancy-launch.json").read_text()),
    )


@pytest.mark.engine
def test_a_container_kernel_runs_in_the_runs_image_and_reads_its_pinned_bytes(
    container_project: Path, aero: type[Result]
) -> None:
    from aeromancy.runtime.engine import Engine

    result = aero("repro", cwd=container_project)
    assert result.exit_code == 0, result.stderr
    train = _run_of(container_project, "train")
    before = (container_project / "build" / "model.json").read_bytes()

    result = aero(
        "export-notebook-env", train, "--name", "in-image", cwd=container_project
    )
    assert (result.exit_code, result.stdout) == (0, "in-image\n"), result.stderr
    assert "it runs in the docker runtime: aeromancy/demo:" in result.stderr
    spec, launch = _launch("in-image")
    assert spec["argv"][1:3] == ["-m", "aeromancy.kernel.launch"]
    assert spec["interrupt_mode"] == "message"
    recorded = json.loads(
        (container_project / ".aeromancy" / "runs" / f"{train}.json").read_text()
    )
    assert launch["runtime_id"] == recorded["fingerprint"]["runtime"]["id"]

    code = READ.format(path="build/model.json") + WHERE.format(path="build/model.json")
    printed = _in_kernel("in-image", code + "print(open('/etc/aero-hook').read())")
    assert base64.b64decode(printed[0]) == before
    assert printed[1].endswith("pinned by kernel in-image")
    # The runtime's own Python, without DVC; the hook proves the image.
    assert printed[3:7] == ["/opt/venv/bin/python3", "True", "True", "from-the-hook"]

    params = container_project / "params.yaml"
    params.write_text(params.read_text().replace("normalize: true", "normalize: false"))
    git(container_project, "commit", "--quiet", "-am", "no normalization")
    assert aero("repro", cwd=container_project).exit_code == 0
    printed = _in_kernel("in-image", READ.format(path="build/model.json"))
    assert base64.b64decode(printed[0]) == before

    # A second export finds the kernel image; no kernel container outlives its kernel.
    again = aero("export-notebook-env", train, "--name", "again", cwd=container_project)
    assert again.exit_code == 0, again.stderr
    assert "built the kernel's" not in again.stderr
    assert _launch("again")[1]["image"] == launch["image"]
    # The launcher was killed (`shutdown_kernel(now=True)`): the kernel sees its
    # broker go and ends, and the engine removes its container.
    api = Engine().client().api
    for _ in range(300):
        label = "org.aeromancy.kernel=in-image"
        if not api.containers(all=True, filters={"label": label}):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the kernel's container outlived its launcher")


@pytest.mark.nix
def test_a_nix_kernel_runs_in_the_shells_python_and_reads_its_pinned_bytes(
    nix: str, project: Path, aero: type[Result]
) -> None:
    from tests.conftest import configure_runtime

    # The Nix store cannot hold a Python with ipykernel offline: the shell's
    # python3 is a link to the Python running the tests, which has ipykernel.
    hook = "export AERO_FROM_HOOK=hooked"
    (project / "flake.nix").write_text(local_flake(python=sys.executable, hook=hook))
    git(project, "add", "flake.nix")
    configure_runtime(project, kind="nix")
    result = aero("repro", cwd=project)
    assert result.exit_code == 0, result.stderr
    train = _run_of(project, "train")

    result = aero("export-notebook-env", train, "--name", "in-nix", cwd=project)
    assert (result.exit_code, result.stdout) == (0, "in-nix\n"), result.stderr
    assert "warning" not in result.stderr
    _, launch = _launch("in-nix")
    assert launch["env"]["AERO_FROM_SHELL"] == "from-the-shell"

    code = READ.format(path="build/model.json") + WHERE.format(path="build/model.json")
    code += "import os; print(os.environ['PATH']); print(os.environ['AERO_FROM_HOOK'])"
    printed = _in_kernel("in-nix", code)
    assert base64.b64decode(printed[0]) == (project / "build/model.json").read_bytes()
    assert printed[3].startswith("/nix/store/"), printed
    assert printed[5] == "True"
    assert printed[6:8] == [launch["env"]["PATH"], "hooked"]

    # The flake moved on: the kernel uses the shell as it is now, and says so.
    (project / "flake.nix").write_text(local_flake("moved", python=sys.executable))
    git(project, "commit", "--quiet", "-am", "another shell")
    moved = aero("export-notebook-env", train, "--name", "moved", cwd=project)
    assert moved.exit_code == 0, moved.stderr
    assert f"warning: run {train} ran in the nix runtime " in moved.stderr
    assert "so its packages may differ from the run's" in moved.stderr

    # A shell whose python3 cannot import ipykernel is refused, in one line.
    bare = project.parent / "python-without-site"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    bare.chmod(0o755)
    (project / "flake.nix").write_text(local_flake("other", python=str(bare)))
    git(project, "commit", "--quiet", "-am", "a shell without ipykernel")
    refused = aero("export-notebook-env", "--name", "no-kernel", cwd=project)
    assert refused.exit_code == 1
    assert "Traceback" not in refused.stderr  # before it: the build's progress
    assert refused.lines[-1].startswith("error: the Nix dev shell's python3 (")
    assert (
        "cannot import ipykernel; add it to the shell in flake.nix" in refused.lines[-1]
    )
