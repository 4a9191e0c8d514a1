"""The `none` tracker: the run record alone, nothing logged anywhere else."""

from __future__ import annotations

from aeromancy.runs import RunRecord
from aeromancy.tracking.base import TrackerLink

__all__ = ["NoneTracker"]


class NoneTracker:
    """Logs nothing; every run's record is all there is."""

    kind = "none"

    def prepare(self) -> None:
        """Nothing to warm up ahead of `start`."""

    def check(self) -> None:
        """Nothing to check."""

    def start(self, invocation: str) -> None:
        """Nothing to begin."""

    def log(self, record: RunRecord) -> TrackerLink:
        """Log nothing; the link says so."""
        return {"kind": self.kind}

    def finish(self) -> list[str]:
        """Nothing to flush, nothing to warn about."""
        return []
