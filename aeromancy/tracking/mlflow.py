"""The MLflow tracker: one MLflow run per executed stage.

Each run carries the stage's params (flattened to dotted keys), tags for the
fingerprint digest, each fingerprint node's digest, the commit, stage,
invocation and status, and the run record itself as the artifact
`aeromancy/run-record.json`. The default store is SQLite in
`.aeromancy/mlflow.db`; any tracking URI MLflow knows is allowed.

Importing MLflow and opening its store take seconds, so `start` checks the URI
at once (its scheme, and that an http(s) server answers) and leaves the rest to
a thread that runs while the first stage does. MLflow is an optional extra.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.util
import json
import logging
import os
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from aeromancy.config import TrackerConfig
from aeromancy.errors import ConfigError
from aeromancy.runs import ABORTED, FAILED, RunRecord
from aeromancy.tracking.base import KEY, TrackerLink, answers, redact_url

__all__ = ["MlflowTracker", "default_uri", "flatten", "run_tags"]

log = logging.getLogger(__name__)

URI_KEY = f"{KEY}.tracking_uri"
RECORD_ARTIFACT = "aeromancy/run-record.json"
REACH_TIMEOUT = 2.0
PARAM_LIMIT = 6000
BATCH = 100
# The tracking-store schemes MLflow ships (2.12 to 3.x); plugins add their own.
SCHEMES = frozenset(
    {"", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https"}
    | {"databricks", "databricks-uc", "uc"}
)
STATUSES = {FAILED: "FAILED", ABORTED: "KILLED"}
OPEN_TIMEOUT = 60.0
HTTP_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
}


def default_uri(root: Path) -> str:
    """SQLite in the project's `.aeromancy/mlflow.db`."""
    return f"sqlite:///{(root / '.aeromancy' / 'mlflow.db').resolve()}"


class MlflowTracker:
    """Logs each executed stage as one MLflow run in one experiment."""

    kind = "mlflow"

    def __init__(self, config: TrackerConfig, root: Path, project: str) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigError(
                f"`{KEY}.kind` is mlflow but MLflow is not installed; "
                "run `pip install 'aeromancy[mlflow]'`"
            )
        self._root = root
        self._project = project
        self._uri = config.tracking_uri or default_uri(root)
        self._default = not config.tracking_uri
        self._started = False
        self._ready = threading.Event()
        self._client: Any = None
        self._experiment = ""
        self._failure = ""
        self._warnings: list[str] = []

    def prepare(self) -> None:
        """Nothing to warm up ahead of `start`."""

    def check(self) -> None:
        """Refuse an unusable tracking URI (see `check_uri`)."""
        if self._default:
            (self._root / ".aeromancy").mkdir(parents=True, exist_ok=True)
        check_uri(self._uri)

    def start(self, invocation: str) -> None:
        """Check the tracking URI now; open the store in the background.

        Raises:
            ConfigError: The tracking URI is unusable (see `check_uri`).
        """
        if self._started:
            return
        if self._default:
            (self._root / ".aeromancy").mkdir(parents=True, exist_ok=True)
        check_uri(self._uri)
        self._started = True
        threading.Thread(target=self._open, name="aero-mlflow", daemon=True).start()

    def log(self, record: RunRecord) -> TrackerLink:
        """Log `record` as one finished MLflow run; the link names it."""
        if not self._started:
            self.start(record.invocation)
        if not self._ready.wait(OPEN_TIMEOUT) and not self._failure:
            self._failure = (
                f"MLflow at {self._shown} did not open within {OPEN_TIMEOUT:g} s; "
                f"no stage was logged there; check `{URI_KEY}`"
            )
        if self._failure:
            return {"kind": self.kind}
        try:
            run_id = self._log(record)
        except Exception as exc:
            log.warning("MLflow could not log run %s", record.run_id, exc_info=True)
            self._warnings.append(
                f"MLflow could not log run {record.run_id}: {_first_line(exc)}"
            )
            return {"kind": self.kind}
        return self._link(run_id)

    def finish(self) -> list[str]:
        """Nothing is buffered; return what went wrong, if anything."""
        if self._failure:
            return [self._failure, *self._warnings]
        return self._warnings

    def _open(self) -> None:
        try:
            self._client, self._experiment = open_experiment(
                self._uri, self._project, self._root
            )
        except Exception as exc:
            log.warning("MLflow store %s cannot be opened", self._shown, exc_info=True)
            self._failure = (
                f"MLflow at {self._shown} cannot be used ({_first_line(exc)}); "
                f"no stage was logged there; check `{KEY}`"
            )
        finally:
            self._ready.set()

    def _log(self, record: RunRecord) -> str:
        from mlflow.entities import Metric, Param

        client = self._client
        run = client.create_run(
            self._experiment,
            start_time=_millis(record.started),
            tags=run_tags(record),
            run_name=record.run_id,
        )
        run_id: str = run.info.run_id
        params = [Param(k, v) for k, v in flatten(record.params).items()]
        for at in range(0, len(params), BATCH):
            client.log_batch(run_id, params=params[at : at + BATCH])
        client.log_batch(run_id, metrics=self._metrics(record, Metric))
        client.log_text(run_id, record.to_json(), RECORD_ARTIFACT)
        status = STATUSES.get(record.status, "FINISHED")
        client.set_terminated(run_id, status=status, end_time=_millis(record.ended))
        return run_id

    @staticmethod
    def _metrics(record: RunRecord, metric: Any) -> list[Any]:
        stamp = _millis(record.ended) or 0
        values = {"duration_s": _seconds(record.started, record.ended)}
        if record.exit_code is not None:
            values["exit_code"] = float(record.exit_code)
        return [
            metric(name, value, stamp, 0)
            for name, value in values.items()
            if value is not None
        ]

    def _link(self, run_id: str) -> TrackerLink:
        link = {"kind": self.kind, "id": run_id, "experiment": self._experiment}
        link["uri"] = self._shown
        scheme = urllib.parse.urlsplit(self._uri).scheme
        if scheme in ("http", "https"):
            base = self._shown.rstrip("/")
            link["url"] = f"{base}/#/experiments/{self._experiment}/runs/{run_id}"
        return link

    @property
    def _shown(self) -> str:
        return redact_url(self._uri)


def check_uri(uri: str) -> None:
    """Refuse a tracking URI MLflow cannot use, in one line naming the key.

    Raises:
        ConfigError: An unknown scheme, a file store MLflow 3 refuses, an SQLite
            database in a missing folder, or an http(s) server that does not
            answer.
    """
    scheme = urllib.parse.urlsplit(uri).scheme.split("+")[0]
    shown = redact_url(uri)
    if scheme not in SCHEMES and scheme not in _plugin_schemes():
        raise ConfigError(
            f"`{URI_KEY}` = '{shown}' has a scheme MLflow does not know ('{scheme}'); "
            "use sqlite:///PATH.db or http(s)://HOST:PORT, or remove it for "
            "SQLite in .aeromancy/mlflow.db"
        )
    if scheme in ("", "file"):
        _check_file_store(shown)
    if scheme == "sqlite":
        _check_sqlite(uri, shown)
    if scheme in ("http", "https"):
        why = answers(f"{uri.rstrip('/')}/health", REACH_TIMEOUT)
        if why:
            raise ConfigError(
                f"`{URI_KEY}` = '{shown}': the MLflow server is unreachable ({why}); "
                "start it, fix the URI, or remove it for SQLite in .aeromancy/mlflow.db"
            )


def open_experiment(uri: str, project: str, root: Path) -> tuple[Any, str]:
    """An MLflow client for `uri` and the id of the experiment named `project`.

    A new experiment in a local store keeps its artifacts in
    `.aeromancy/mlflow-artifacts`, not in a `mlruns/` of the working directory.
    """
    # A slow server must not stall a tracked run for MLflow's default two minutes
    # per request; a user's own settings win.
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(project)
    if found is not None:
        return client, str(found.experiment_id)
    location = None
    if urllib.parse.urlsplit(uri).scheme in ("", "file", "sqlite"):
        location = (root / ".aeromancy" / "mlflow-artifacts").resolve().as_uri()
    return client, str(client.create_experiment(project, artifact_location=location))


def run_tags(record: RunRecord) -> dict[str, str]:
    """The tags of a stage's MLflow run: what identifies it and its fingerprint."""
    tags = {
        "aeromancy.run_id": record.run_id,
        "aeromancy.fingerprint_digest": record.fingerprint_digest,
        "aeromancy.commit": record.commit,
        "aeromancy.stage": record.stage,
        "aeromancy.invocation": record.invocation,
        "aeromancy.status": record.status,
        "aeromancy.command": record.command,
    }
    for node, value in sorted(record.fingerprint.items()):
        if isinstance(value, dict) and value.get("digest"):
            tags[f"aeromancy.fingerprint.{node}"] = str(value["digest"])
    if record.rerun_of:
        tags["aeromancy.rerun_of"] = record.rerun_of
    return tags


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow params: dotted keys, JSON values where not text."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        flat[name] = text[:PARAM_LIMIT]
    return flat


def _check_file_store(shown: str) -> None:
    allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true")
    if allowed or importlib.metadata.version("mlflow").startswith(("1.", "2.")):
        return
    raise ConfigError(
        f"`{URI_KEY}` = '{shown}' is a file store, which MLflow 3 refuses; "
        "use sqlite:///PATH.db, or remove it for SQLite in .aeromancy/mlflow.db"
    )


def _check_sqlite(uri: str, shown: str) -> None:
    # sqlite:///relative.db, sqlite:////absolute.db; in-memory has no folder.
    path = uri.split(":///", 1)[-1].split("?", 1)[0]
    if path in ("", ":memory:") or Path(path).parent.is_dir():
        return
    raise ConfigError(
        f"`{URI_KEY}` = '{shown}': the folder {Path(path).parent} does not exist; "
        "create it or point the URI elsewhere"
    )


def _plugin_schemes() -> set[str]:
    entries = importlib.metadata.entry_points(group="mlflow.tracking_store")
    return {entry.name for entry in entries}


def _millis(moment: str) -> int | None:
    try:
        return int(dt.datetime.fromisoformat(moment).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


def _seconds(started: str, ended: str) -> float | None:
    begin, end = _millis(started), _millis(ended)
    return None if begin is None or end is None else (end - begin) / 1000


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
