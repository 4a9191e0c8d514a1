"""Runs: the run record of one executed stage, and where records are kept.

A run record is a JSON document: the stage's fingerprint tree and digest, its
outputs with their DVC hashes, params, command, timings, exit status and the
tracker's link. It is written to the project's local index (`.aeromancy/runs/`)
and to the remote next to the data (`<remote>/aeromancy/runs/<id>.json`), so a
fresh clone on another machine can find every run.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aeromancy.errors import UserError

__all__ = [
    "ABORTED",
    "FAILED",
    "SUCCEEDED",
    "RunRecord",
    "UnknownRunError",
    "new_run_id",
    "now",
]

SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
SCHEMA = 1
LOCAL_INDEX = Path(".aeromancy") / "runs"
REMOTE_PREFIX = "aeromancy/runs"


class UnknownRunError(UserError):
    """No run record has the id the user gave."""


@dataclass
class RunRecord:
    """Everything known about one executed stage; enough to rerun it.

    `fingerprint` is the nested tree (code, runtime, data, params, stage) and
    `fingerprint_digest` its canonical digest; `outputs` maps each output path to
    its DVC hash and size; `tracker` holds the tracker's kind, run id and link.
    """

    run_id: str
    invocation: str
    project: str
    stage: str
    command: str
    status: str
    started: str
    ended: str
    fingerprint: dict[str, Any]
    fingerprint_digest: str
    exit_code: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracker: dict[str, str] = field(default_factory=dict)
    rerun_of: str | None = None
    aeromancy_version: str = ""
    schema: int = SCHEMA

    @property
    def commit(self) -> str:
        return str(self.fingerprint.get("code", {}).get("commit", ""))

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, two-space indent, UTF-8, trailing newline."""
        return (
            json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False)
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str, where: str = "run record") -> RunRecord:
        """Parse a record; a damaged one is a user error naming where it came from."""
        try:
            raw = json.loads(text)
            known = {
                name: raw[name] for name in cls.__dataclass_fields__ if name in raw
            }
            return cls(**known)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where} is not a valid run record: {exc}") from None


def new_run_id(when: dt.datetime | None = None) -> str:
    """A run id that sorts by time and is safe in W&B, MLflow, S3 keys and paths."""
    moment = when or dt.datetime.now(dt.timezone.utc)
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def now() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
