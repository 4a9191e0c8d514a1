"""Finding images and the engine, and what a stage sees in its container."""

from __future__ import annotations

import pytest

from aeromancy.runtime.container import default_user
from aeromancy.runtime.engine import Engine, EngineError, default_host, find_image
from aeromancy.runtime.stage_shell import environment

IMAGES = [
    {
        "Id": "sha256:aaa",
        "RepoTags": ["localhost/aeromancy-base:bookworm"],
        "RepoDigests": ["localhost/aeromancy-base@sha256:ddd"],
    },
    {"Id": "sha256:bbb", "RepoTags": ["docker.io/library/debian:bookworm-slim"]},
]


@pytest.mark.parametrize(
    ("reference", "found"),
    [
        ("localhost/aeromancy-base:bookworm", "sha256:aaa"),
        ("aeromancy-base:bookworm", "sha256:aaa"),
        ("localhost/aeromancy-base@sha256:ddd", "sha256:aaa"),
        ("debian:bookworm-slim", "sha256:bbb"),
        ("sha256:bbb", "sha256:bbb"),
        ("debian", None),
        ("localhost/aeromancy-base@sha256:eee", None),
    ],
)
def test_find_image_allows_for_registry_prefixes(
    reference: str, found: str | None
) -> None:
    image = find_image(IMAGES, reference)
    assert (image["Id"] if image else None) == found


def test_docker_host_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert default_host() == "tcp://127.0.0.1:2375"


def test_an_unreachable_engine_is_one_line_with_the_way_out() -> None:
    with pytest.raises(EngineError) as caught:
        Engine("unix:///nonexistent/docker.sock").images()
    message = caught.value.message
    assert message.startswith("no container engine reachable at unix:///nonexistent")
    assert "scripts/setup-podman" in message
    assert message.endswith("`--runtime host` or `aero repro --dev`")


def test_a_stage_sees_dvc_and_pass_env_only() -> None:
    host = {
        "DVC_ROOT": "/repo",
        "DVC_STAGE": "train",
        "MYAPP_MODE": "fast",
        "MYAPP_LEVEL": "3",
        "AWS_SECRET_ACCESS_KEY": "never",
        "HOME": "/root",
    }
    assert environment(host, "MYAPP_*,OTHER") == {
        "DVC_ROOT": "/repo",
        "DVC_STAGE": "train",
        "MYAPP_MODE": "fast",
        "MYAPP_LEVEL": "3",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.mark.parametrize(
    ("options", "uid", "user"),
    [
        (["name=seccomp,profile=default"], 1000, "1000:1000"),  # rootful Docker
        (["name=seccomp,profile=default", "name=rootless"], 1000, None),  # rootless
        (["name=seccomp,profile=default"], 0, None),  # the caller is root
        (None, 1000, "1000:1000"),
    ],
)
def test_containers_run_as_the_caller_only_where_root_would_own_the_files(
    options: list[str] | None, uid: int, user: str | None
) -> None:
    assert default_user({"SecurityOptions": options}, uid, 1000) == user
