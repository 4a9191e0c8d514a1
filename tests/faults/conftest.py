"""The fault and bad-input suite: its categories, counted, and its closing line.

Every test here carries one of the markers `fault`, `bad_input` or `secrets`.
At the end of a session that ran any of them, the terminal summary says

    faults: N survived of N; bad inputs: N clean of N; secrets found: 0

A fault survived and a bad input was clean when its test passed; an xfail
counts as neither. A secrets test reports how many leaks it found with
`record_property("leaks", n)`; a failing one that reported none counts as one.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CATEGORIES = ("fault", "bad_input", "secrets")


@dataclass
class _Outcome:
    category: str
    passed: bool = True
    ran: bool = False
    leaks: int = 0


@dataclass
class _Tally:
    outcomes: dict[str, _Outcome] = field(default_factory=dict)

    def add(self, report: pytest.TestReport) -> None:
        category = next((c for c in CATEGORIES if c in report.keywords), None)
        if category is None:
            return
        outcome = self.outcomes.setdefault(report.nodeid, _Outcome(category))
        if report.when == "call" or report.failed or _xfail(report):
            outcome.ran = outcome.ran or not (report.skipped and not _xfail(report))
        if report.failed or _xfail(report):
            outcome.passed = False
        for name, value in report.user_properties:
            if name == "leaks":
                outcome.leaks += int(value)

    def line(self) -> str | None:
        ran = [o for o in self.outcomes.values() if o.ran]
        if not ran:
            return None

        def count(category: str) -> tuple[int, int]:
            mine = [o for o in ran if o.category == category]
            return sum(o.passed for o in mine), len(mine)

        leaks = sum(
            o.leaks or (0 if o.passed else 1) for o in ran if o.category == "secrets"
        )
        faults, bad = count("fault"), count("bad_input")
        return (
            f"faults: {faults[0]} survived of {faults[1]}; "
            f"bad inputs: {bad[0]} clean of {bad[1]}; secrets found: {leaks}"
        )


def _xfail(report: pytest.TestReport) -> bool:
    return hasattr(report, "wasxfail")


_tally = _Tally()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _tally.add(report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    line = _tally.line()
    if line is not None:
        terminalreporter.write_line(line)


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
