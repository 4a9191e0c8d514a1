"""What the fault and bad-input suite shares: tree snapshots, a free port, an
S3 endpoint a test can stop and start. Its closing line is `summary.py`'s."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

# Helpers shared by the suite -------------------------------------------------


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under `roots` by its sha256, plus git's view of the first root.

    DVC's own scratch folder (`.dvc/tmp`: locks, its index) is left out; git's
    internals are represented by HEAD and the status.
    """
    found: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = [
                d
                for d in dirs
                if not (d == ".git" or (here.name == ".dvc" and d == "tmp"))
            ]
            for name in files:
                path = here / name
                if path.is_symlink():
                    found[str(path)] = f"-> {os.readlink(path)}"
                else:
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    first = roots[0]
    for args in (("rev-parse", "HEAD"), ("status", "--porcelain", "--ignored")):
        found[f"git {' '.join(args)}"] = subprocess.run(
            ["git", *args], cwd=first, capture_output=True, text=True, check=False
        ).stdout
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RestartableS3:
    """A moto S3 server on a fixed port that a test can stop and start again.

    moto keeps its buckets in the process, so what was stored before a stop is
    there after the start, as with a real endpoint that restarts.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(
            ip_address="127.0.0.1", port=self.port, verbose=False
        )
        self.running = False

    def start(self) -> None:
        self._server.start()
        self.running = True

    def stop(self) -> None:
        self._server.stop()
        self.running = False

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in pages.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]


@pytest.fixture
def restartable_s3() -> Any:
    """A `RestartableS3`, started, holding an empty bucket `aero-faults`."""
    server = RestartableS3()
    server.start()
    server.client().create_bucket(Bucket="aero-faults")
    try:
        yield server
    finally:
        if server.running:
            server.stop()
