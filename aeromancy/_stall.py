"""A transfer that stops moving data fails, instead of hanging.

An S3 endpoint that stops answering without closing its connections (a
crashed proxy, a network partition, a server shut down mid-request) leaves
each read waiting out botocore's timeout, retried by botocore and again by
s3fs: minutes per object. A transfer runs in a worker thread while the caller
watches the bytes it moves; when none move for `stall_seconds()`, the caller
raises `StalledError`. The worker is abandoned: the CLI ends the process at
once on that error (`UserError.exit_now`), since the threads of boto3's
transfer manager would otherwise keep it alive until their reads time out.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from aeromancy.errors import RemoteError

__all__ = ["STALL_ENV", "StalledError", "Watch", "stall_seconds", "watched"]

T = TypeVar("T")

#: Seconds without a byte moved before a transfer is given up (default 60).
STALL_ENV = "AERO_STALL_SECONDS"


class StalledError(RemoteError):
    """A transfer moved no data for too long and was abandoned."""

    exit_now = True  # its threads may wait minutes on their sockets


class Watch:
    """When data last moved; `touch()` it from the transfer's progress."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()


def stall_seconds() -> float:
    """`AERO_STALL_SECONDS`, else 60; a bad value is a one-line error."""
    text = os.environ.get(STALL_ENV, "60")
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise RemoteError(
            f"{STALL_ENV} must be a positive number of seconds (got '{text}')"
        )
    return value


def watched(work: Callable[[], T], watch: Watch, where: str) -> T:
    """`work()`, run in a daemon thread; raises `RemoteError` naming `where`
    when `watch` sees no progress for `stall_seconds()`."""
    limit = stall_seconds()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="aero-transfer", daemon=True)
    watch.touch()
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        if worker.is_alive() and time.monotonic() - watch.last > limit:
            raise StalledError(
                f"{where} stopped answering: no data moved for {limit:g} s; "
                f"rerun the command once it answers ({STALL_ENV} sets how long "
                "to wait)"
            )
    if failure:
        raise failure[0]
    return outcome[0]
