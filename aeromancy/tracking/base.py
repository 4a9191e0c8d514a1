"""Trackers: where each executed stage's run record is logged.

One protocol, three backends (`wandb`, `mlflow`, `none`). A tracker lives for one
`aero repro`: `start` once with the invocation id, as early as possible (W&B and
MLflow warm up in the background meanwhile), `log` once per executed stage,
`finish` at the end, also after a failure or Ctrl-C. Only `open_tracker` and
`start` raise, for a misconfigured tracker, before any stage has run; after that
logging never fails a run: a tracker that cannot reach its service keeps what
it can locally and says so in the warnings `finish` returns. Backends are
imported only when chosen, so `aero --help` never loads W&B or MLflow.
"""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Protocol

from aeromancy.config import RemoteConfig, TrackerConfig
from aeromancy.errors import ConfigError
from aeromancy.redact import redact_url
from aeromancy.runs import RunRecord

__all__ = [
    "Tracker",
    "TrackerLink",
    "answers",
    "open_tracker",
    "reachable",
    "redact_url",
    "sync",
]

# What `log` returns and the run record keeps: "kind", "id", and where there is
# one, "url" (the run's page) and "dir" (local files still to be synced).
TrackerLink = dict[str, str]

KEY = "tool.aeromancy.tracker"


class Tracker(Protocol):
    """What every tracker backend does for one `aero repro`."""

    kind: str

    def prepare(self) -> None:
        """Warm up before it is known that any stage will execute; `finish`
        without `start` ends a prepared tracker without waiting."""

    def check(self) -> None:
        """Refuse a misconfiguration cheaply, before any stage runs.

        Raises:
            ConfigError: The tracker is misconfigured (e.g. a bad tracking URI).
        """

    def start(self, invocation: str) -> None:
        """Begin an invocation; `invocation` groups its stage runs.

        Raises:
            ConfigError: The tracker is misconfigured (e.g. a bad tracking URI).
        """

    def log(self, record: RunRecord) -> TrackerLink:
        """Log one executed stage's (already redacted) run record."""

    def finish(self) -> list[str]:
        """Hand over everything logged; return warnings for the user, one line
        each. W&B's worker may still be writing after this returns: its
        warnings come from the next run's `finish`."""


def open_tracker(
    config: TrackerConfig,
    root: Path,
    project_name: str,
    *,
    remote: RemoteConfig | None = None,
) -> Tracker:
    """The tracker `config` names, ready to `start`.

    Args:
        config: The project's `[tool.aeromancy.tracker]` table.
        root: The project's root folder; local tracker files go under `.aeromancy/`.
        project_name: The W&B project or MLflow experiment when `config.project`
            is unset.
        remote: The DVC remote, so W&B artifacts can reference the stored data.

    Raises:
        ConfigError: The kind is unknown or the backend is not installed.
    """
    project = config.project or project_name or root.resolve().name
    if config.kind == "none":
        from aeromancy.tracking.none import NoneTracker

        return NoneTracker()
    if config.kind == "wandb":
        from aeromancy.tracking.wandb import WandbTracker

        return WandbTracker(config, root, project, remote or RemoteConfig())
    if config.kind == "mlflow":
        from aeromancy.tracking.mlflow import MlflowTracker

        return MlflowTracker(config, root, project)
    raise ConfigError(
        f"`{KEY}.kind` must be one of wandb, mlflow, none (got '{config.kind}')"
    )


def sync(config: TrackerConfig, root: Path, *, dry_run: bool = False) -> list[str]:
    """Upload the runs a tracker kept offline; return the run folders it handled.

    Only W&B keeps runs offline; MLflow and `none` have nothing to sync.
    """
    if config.kind != "wandb":
        return []
    from aeromancy.tracking import wandb

    return wandb.sync(root, dry_run=dry_run)


def reachable(url: str, timeout: float = 2.0) -> str | None:
    """Whether a TCP connection to `url`'s host opens within `timeout` seconds.

    Returns None when it does, otherwise why not (one short phrase). Name lookup
    runs in a daemon thread, so a resolver with no network cannot stretch the wait.
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return f"no host in '{redact_url(url)}'"
    default = 443 if parts.scheme == "https" else 80
    try:
        address = (parts.hostname, parts.port or default)
    except ValueError:
        return f"bad port in '{redact_url(url)}'"

    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc.strerror or type(exc).__name__)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.2)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def answers(url: str, timeout: float = 2.0) -> str | None:
    """Whether an HTTP server at `url` answers within `timeout` seconds.

    Any answer counts, an error status or a TLS handshake included: only silence,
    a refused connection or an unknown host do not. Returns None when it answers,
    otherwise why not (one short phrase).
    """
    why = reachable(url, timeout)
    if why:
        return why
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return None
        return str(exc.reason)
    except (TimeoutError, OSError) as exc:
        return str(exc) or f"no answer within {timeout:g} s"
    return None
