"""The fault and bad-input suite's closing line: its categories, counted.

Every test of the suite carries one of the markers `fault`, `bad_input` or
`secrets` (the tracker canary in `tests/functional` carries `secrets` too).
At the end of a session that ran any of them, the terminal summary says

    faults: N survived of N; bad inputs: N clean of N; secrets found: 0

A fault survived and a bad input was clean when its test passed; an xfail
counts as neither. A secrets test reports how many leaks it found with
`record_property("leaks", n)`; a failing one that reported none counts as one.
The hooks are imported by the top `tests/conftest.py`, so that they see every
test of the session, wherever it lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["pytest_runtest_logreport", "pytest_terminal_summary"]

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
        for name, value in report.user_properties if report.when == "call" else ():
            if name == "leaks":  # every later report repeats the properties
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
