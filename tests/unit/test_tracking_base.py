"""The tracker protocol's factory, the `none` tracker and the shared helpers."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aeromancy.config import TrackerConfig
from aeromancy.errors import ConfigError
from aeromancy.runs import RunRecord
from aeromancy.tracking.base import answers, open_tracker, reachable, redact_url, sync


def test_none_logs_nothing(tmp_path: Path) -> None:
    tracker = open_tracker(TrackerConfig(kind="none"), tmp_path, "demo")
    record = RunRecord(
        run_id="r",
        invocation="i",
        project="demo",
        stage="s",
        command="true",
        status="succeeded",
        started="",
        ended="",
        fingerprint={},
        fingerprint_digest="",
    )

    tracker.start("i")

    assert tracker.kind == "none"
    assert tracker.log(record) == {"kind": "none"}
    assert tracker.finish() == []
    assert list(tmp_path.iterdir()) == []


def test_unknown_kind_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        open_tracker(TrackerConfig(kind="neptune"), tmp_path, "demo")

    assert "tool.aeromancy.tracker.kind" in caught.value.message
    assert "neptune" in caught.value.message


def test_only_wandb_has_anything_to_sync(tmp_path: Path) -> None:
    assert sync(TrackerConfig(kind="none"), tmp_path) == []
    assert sync(TrackerConfig(kind="mlflow"), tmp_path) == []
    assert sync(TrackerConfig(kind="wandb"), tmp_path) == []


def test_reachable() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert reachable(f"http://127.0.0.1:{port}") is None

    began = time.perf_counter()
    assert reachable("http://127.0.0.1:9", timeout=1) is not None
    assert time.perf_counter() - began < 1.5
    assert reachable("not a url") is not None


def test_redact_url() -> None:
    assert redact_url("https://me:secret@host:5000/x") == "https://host:5000/x"
    assert redact_url("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never says a word."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP server that answers 404 to everything."""
    server = http.server.HTTPServer(
        ("127.0.0.1", 0), http.server.BaseHTTPRequestHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_answers_counts_any_http_status_but_not_silence(
    http_server: str, silent_server: str
) -> None:
    assert answers(f"{http_server}/health") is None

    began = time.perf_counter()
    assert answers(f"{silent_server}/health", timeout=1) is not None
    assert time.perf_counter() - began < 2.5
    assert answers("http://127.0.0.1:9/health", timeout=1) is not None


def test_project_falls_back_to_the_folder_name(tmp_path: Path) -> None:
    from aeromancy.tracking.mlflow import MlflowTracker

    pytest.importorskip("mlflow")
    root = tmp_path / "my-project"
    root.mkdir()

    tracker = open_tracker(TrackerConfig(kind="mlflow"), root / ".", "")

    assert isinstance(tracker, MlflowTracker)
    assert tracker._project == "my-project"
