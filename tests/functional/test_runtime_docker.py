"""The container runtime, for real: Podman (or Docker) behind the Docker API.

Every test with the same runtime settings reuses one image (its id is the same),
so only the first pays for a build. The stock `podman` CLI checks what
Aeromancy recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aeromancy.manifest import DPKG_FORMAT
from tests.conftest import configure_runtime, git, run_aero

pytestmark = pytest.mark.engine

PROBE = (
    "cat /etc/aero-hook > probe.txt && command -v python3 >> probe.txt && "
    "pwd >> probe.txt && env | sort >> probe.txt"
)


def add_stage(root: Path, name: str, cmd: str, outs: tuple[str, ...] = ()) -> None:
    text = (root / "dvc.yaml").read_text()
    text += f"  {name}:\n    cmd: {json.dumps(cmd)}\n"
    if outs:
        text += "    outs:\n" + "".join(f"      - {out}\n" for out in outs)
    (root / "dvc.yaml").write_text(text)
    git(root, "commit", "--quiet", "-am", f"add stage {name}")


def records(root: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    found: dict[str, dict] = {}  # type: ignore[type-arg]
    for path in sorted((root / ".aeromancy" / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        found[record["stage"]] = record
    return found


def containers(root: Path) -> list[dict]:  # type: ignore[type-arg]
    from aeromancy.runtime.engine import Engine

    label = f"org.aeromancy.project={root.resolve()}"
    return list(Engine().client().api.containers(all=True, filters={"label": label}))


def test_build_prints_the_id_and_a_second_build_only_looks_it_up(
    container_project: Path,
) -> None:
    first = run_aero("build", cwd=container_project)
    assert first.exit_code == 0, first.stderr
    runtime_id = first.stdout.strip()
    assert len(runtime_id) == 64
    assert "not pinned by digest" in first.stderr

    again = run_aero("build", "--runtime", "docker", cwd=container_project)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.strip() == runtime_id
    assert again.lines[-1].startswith(f"up to date: aeromancy/demo:{runtime_id[:12]}")


def test_a_noop_build_is_two_lookups_and_never_the_engines_build(
    container_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aeromancy import config
    from aeromancy.runtime.docker import DockerRuntime
    from aeromancy.runtime.engine import Engine

    settings = config.load(container_project)
    expected = DockerRuntime(container_project, settings.runtime).build()

    requests: list[str] = []
    original = Engine.request

    def counted(
        self: Engine, method: str, path: str, payload: object = None, **kw: bool
    ) -> object:
        requests.append(f"{method} {path}")
        return original(self, method, path, payload, **kw)

    def no_sdk(self: Engine) -> object:
        raise AssertionError("a no-op build must not need the SDK (nor build)")

    sdk = Engine.client
    monkeypatch.setattr(Engine, "request", counted)
    monkeypatch.setattr(Engine, "client", no_sdk)
    found = DockerRuntime(container_project, settings.runtime).build()
    assert found == expected
    assert not found.built
    tag = f"aeromancy/demo:{expected.runtime_id[:12]}"
    assert requests == [
        "GET /images/localhost/aeromancy-base:bookworm/json",
        f"GET /images/{tag}/json",
    ]

    # An image found by its label alone (retagged by someone) is still found,
    # by listing every image once.
    monkeypatch.setattr(Engine, "client", sdk)
    api = Engine().client().api
    api.tag(expected.image, "aeromancy/retagged", expected.runtime_id[:12])
    api.remove_image(tag)
    requests.clear()
    again = DockerRuntime(container_project, settings.runtime).build()
    assert (again.image, again.built) == (expected.image, False)
    assert requests[-2] == "GET /images/json"
    assert requests[-1].startswith(f"POST /images/{expected.image}/tag?")
    # Tagged again for the project: the next build is two lookups again.
    requests.clear()
    DockerRuntime(container_project, settings.runtime).build()
    assert len(requests) == 2


def test_stock_podman_sees_the_label_and_the_recorded_debian_manifest(
    container_project: Path,
) -> None:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("no podman CLI on PATH")
    add_stage(container_project, "probe", PROBE, ("probe.txt",))
    result = run_aero("repro", "probe", cwd=container_project)
    assert result.exit_code == 0, result.stderr
    runtime = records(container_project)["probe"]["fingerprint"]["runtime"]
    tag = f"aeromancy/demo:{runtime['id'][:12]}"

    label = subprocess.run(
        [podman, "image", "inspect", "--format",
         '{{index .Labels "org.aeromancy.runtime-id"}}', tag],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert label == runtime["id"]

    listed = subprocess.run(
        [podman, "run", "--rm", "--pull=never", tag, "dpkg-query", "-W", "-f",
         DPKG_FORMAT],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    stored = container_project / ".aeromancy" / "manifests"
    recorded = stored / f"debian-{runtime['debian_digest']}.txt"
    assert listed == recorded.read_text()


def test_tracked_stages_run_inside_the_image_with_the_repo_mounted(
    container_project: Path,
) -> None:
    add_stage(container_project, "probe", PROBE, ("probe.txt",))
    env = {"AERO_TEST_SETTING": "passed", "AERO_OTHER": "kept out"}
    result = run_aero("repro", cwd=container_project, env=env)

    assert result.exit_code == 0, result.stderr
    probe = (container_project / "probe.txt").read_text().splitlines()
    assert probe[:3] == [
        "from-the-hook",
        "/opt/venv/bin/python3",
        str(container_project.resolve()),
    ]
    assert "AERO_TEST_SETTING=passed" in probe
    assert not any(line.startswith("AERO_OTHER") for line in probe)
    found = records(container_project)
    assert {"prepare", "train", "evaluate", "probe"} <= set(found)
    runtime = found["train"]["fingerprint"]["runtime"]
    assert runtime["kind"] == "docker"
    assert runtime["sealed"] is True
    assert runtime["base_digest"].startswith("sha256:")
    assert containers(container_project) == []


def test_a_caller_who_is_not_root_owns_what_stages_write(
    container_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aeromancy import config
    from aeromancy.runtime import container
    from aeromancy.runtime.docker import DockerRuntime

    # This machine's tests run as root: the caller's uid is what we can vary,
    # and the caller owns the project, as a user's checkout would be.
    subprocess.run(["chown", "-R", "4321:4322", str(container_project)], check=True)
    monkeypatch.setattr(container.os, "getuid", lambda: 4321)
    monkeypatch.setattr(container.os, "getgid", lambda: 4322)
    runtime = DockerRuntime(container_project, config.load(container_project).runtime)
    with runtime.inside():
        subprocess.run(
            [os.environ["SHELL"], "-c", "id -u > owner.txt; echo $HOME >> owner.txt"],
            cwd=container_project,
            check=True,
        )
    written = container_project / "owner.txt"
    assert written.read_text().split() == ["4321", "/tmp"]
    assert (written.stat().st_uid, written.stat().st_gid) == (4321, 4322)


def test_a_failing_stage_keeps_its_exit_code(container_project: Path) -> None:
    add_stage(container_project, "broken", "echo about to fail >&2; exit 3")
    result = run_aero("repro", "broken", cwd=container_project)
    assert result.exit_code == 3
    assert "about to fail" in result.stderr
    assert result.lines[-1] == "error: stage 'broken' failed with exit code 3"
    assert records(container_project)["broken"]["status"] == "failed"


def test_debug_shell_opens_a_shell_in_the_same_container(
    container_project: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aeromancy", "repro", "--debug-shell"],
        cwd=container_project,
        input="cat /etc/aero-hook; pwd; exit 4\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert "from-the-hook" in done.stdout
    assert str(container_project.resolve()) in done.stdout
    assert containers(container_project) == []


def _start_sleeping_stage(root: Path) -> subprocess.Popen[str]:
    add_stage(root, "slow", "touch started && sleep 60", ("started",))
    process = subprocess.Popen(
        [sys.executable, "-m", "aeromancy", "repro", "slow"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (root / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (root / "started").exists(), "the stage never started"
    return process


def test_ctrl_c_reaches_the_stage_in_the_container(container_project: Path) -> None:
    process = _start_sleeping_stage(container_project)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: stage 'slow' was interrupted"
    assert records(container_project)["slow"]["status"] == "aborted"
    assert containers(container_project) == []


def test_a_container_killed_mid_stage_is_recorded_aborted(
    container_project: Path,
) -> None:
    from aeromancy.runtime.engine import Engine

    process = _start_sleeping_stage(container_project)
    [container] = containers(container_project)
    Engine().client().api.kill(container["Id"])
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 137, stderr
    assert stderr.strip().splitlines()[-1] == (
        "error: stage 'slow' was aborted: its runtime container "
        f"{container['Id'][:12]} stopped while the stage ran (killed, or out of "
        "memory)"
    )
    assert records(container_project)["slow"]["status"] == "aborted"
    assert containers(container_project) == []


# --- bad input: one line each -------------------------------------------------


def test_no_engine_says_how_to_start_one(project: Path) -> None:
    configure_runtime(project, kind="docker")
    result = run_aero(
        "build", cwd=project, env={"DOCKER_HOST": "unix:///nonexistent/engine.sock"}
    )
    assert result.exit_code == 1
    [line] = result.lines
    assert line.startswith(
        "error: no container engine reachable at unix:///nonexistent/engine.sock "
        "(No such file or directory); start one (Podman: `scripts/setup-podman`"
    )
    assert line.endswith(
        "or run on the host with `--runtime host` or `aero repro --dev`"
    )


def test_an_unknown_runtime_option_is_a_usage_error(project: Path) -> None:
    result = run_aero("repro", "--runtime", "dockr", cwd=project)
    assert result.exit_code == 2
    assert result.lines == [
        "error: Invalid value for '--runtime': 'dockr' is not one of docker, nix, "
        "host; see `aero repro -h`"
    ]


def test_debug_shell_needs_a_container_runtime(project: Path) -> None:
    result = run_aero("repro", "--debug-shell", "--runtime", "host", cwd=project)
    assert result.exit_code == 1
    assert result.lines == ["error: --debug-shell needs a container runtime, not host"]


def test_a_base_image_missing_locally_is_never_pulled(container_project: Path) -> None:
    configure_runtime(container_project, base_image="localhost/aero-no-such-base:1")
    result = run_aero("repro", cwd=container_project)
    assert result.exit_code == 1
    assert result.lines == [
        "error: base image 'localhost/aero-no-such-base:1' is not in the engine's "
        "local images, and Aeromancy never pulls; load it first (`docker pull`, "
        "`podman load`; scripts/setup-podman builds "
        "localhost/aeromancy-base:bookworm) or set "
        "tool.aeromancy.runtime.base_image to an image you have"
    ]


def _build_error(root: Path) -> str:
    result = run_aero("build", cwd=root)
    assert result.exit_code == 1, result.stderr
    line = result.lines[-1]
    log = line.rsplit("full log: ", 1)[1]
    assert (root / log).is_file()
    return line


def test_an_apt_package_that_does_not_exist(container_project: Path) -> None:
    configure_runtime(container_project, apt_packages=["aero-no-such-package"])
    line = _build_error(container_project)
    assert line.startswith(
        "error: building the runtime image failed at the apt packages step: "
        "E: Unable to locate package aero-no-such-package (exit status 100); "
        "full log: .aeromancy/build-"
    )


def test_a_failing_hook(container_project: Path) -> None:
    configure_runtime(container_project, hooks=["echo half-done", "exit 7"])
    line = _build_error(container_project)
    assert line.startswith(
        "error: building the runtime image failed at hook 2 (`exit 7`): "
        "exit status 7; full log: .aeromancy/build-"
    )


def test_a_python_lock_that_does_not_install(container_project: Path) -> None:
    (container_project / "requirements.txt").write_text("aero-no-such-dist==1.0\n")
    git(container_project, "commit", "--quiet", "-am", "a lock that cannot install")
    line = _build_error(container_project)
    assert line.startswith(
        "error: building the runtime image failed at the Python lock step "
        "(requirements.txt): ERROR: "
    )
    assert "aero-no-such-dist" in line
