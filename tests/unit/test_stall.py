"""`aeromancy._stall`: a transfer that moves nothing is given up, in one line."""

from __future__ import annotations

import threading

import pytest

from aeromancy._stall import StalledError, Watch, stall_seconds, watched
from aeromancy.errors import RemoteError


def test_work_that_moves_nothing_is_given_up_and_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AERO_STALL_SECONDS", "0.3")
    never = threading.Event()
    with pytest.raises(StalledError) as raised:
        watched(never.wait, Watch(), "s3://bucket/prefix")
    never.set()  # let the abandoned worker end
    assert raised.value.exit_now
    assert raised.value.message == (
        "s3://bucket/prefix stopped answering: no data moved for 0.3 s; rerun the "
        "command once it answers (AERO_STALL_SECONDS sets how long to wait)"
    )


def test_work_that_ends_gives_its_result_or_its_error() -> None:
    assert watched(lambda: 42, Watch(), "here") == 42

    def fails() -> None:
        raise RemoteError("the remote refused")

    with pytest.raises(RemoteError, match="the remote refused"):
        watched(fails, Watch(), "here")


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_wait_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AERO_STALL_SECONDS", value)
    with pytest.raises(RemoteError) as raised:
        stall_seconds()
    assert raised.value.message == (
        f"AERO_STALL_SECONDS must be a positive number of seconds (got '{value}')"
    )
