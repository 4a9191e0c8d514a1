"""Tracked runs: `aero repro` with every executed stage fingerprinted, pushed,
recorded and logged.

The order for each stage that DVC executes, before the next one starts:
fingerprint (from DVC's objects, nothing re-hashed), push its cached outputs
to the remote, log it to the tracker, write the run record locally and to the
remote. A failing or interrupted stage is recorded as failed or aborted and
nothing of it is pushed. At the end, the `dvc.lock` and DVC `.gitignore`
changes are committed with a message naming the runs, so the next tracked run
starts from a clean tree.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aeromancy import __version__, config, data, fingerprint, gitstate, pipeline, runs
from aeromancy._dvc import open_repo
from aeromancy.errors import RemoteError, UserError
from aeromancy.redact import capture_env, redact_argv, redact_value
from aeromancy.runtime import select
from aeromancy.runtime.base import Runtime

__all__ = ["StageRun", "TrackedRun", "repro"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRun:
    """What a tracked run did with one stage: its result and, if it executed,
    its record; for an up-to-date stage, the run that made its outputs."""

    result: pipeline.StageResult
    record: runs.RunRecord | None = None
    made_by: str | None = None


@dataclass
class TrackedRun:
    """One `aero repro`: its invocation id, each stage, warnings, the lock commit."""

    invocation: str
    stages: list[StageRun] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    commit: str | None = None

    @property
    def records(self) -> list[runs.RunRecord]:
        return [s.record for s in self.stages if s.record is not None]


def repro(
    root: Path,
    targets: Sequence[str] = (),
    *,
    force: bool = False,
    runtime: Runtime | None = None,
    rerun_of: str | None = None,
    on_start: pipeline.Hook | None = None,
    on_stage: Any = None,
) -> TrackedRun:
    """Reproduce `targets` tracked; `on_stage(StageRun)` sees each stage as it ends.

    `runtime` is what the stages run in (the configured one when None);
    `rerun_of` links every record to the run this one repeats.

    Raises:
        DirtyTreeError: the tree has uncommitted changes.
        StageFailedError: a stage failed (after its record was written).
    """
    from aeromancy.tracking.base import open_tracker

    settings = config.load(root)
    runtime = runtime or select(settings)
    tracker = open_tracker(settings.tracker, root, root.name, remote=settings.remote)
    tracker.prepare()  # warms up while DVC opens and the first stage runs
    try:
        tracker.check()
        session = _Session(root, settings, runtime, rerun_of)
    except BaseException:
        tracker.finish()  # ends a prepared tracker, without waiting
        raise
    started: list[bool] = []

    def stage_done(stage: Any, result: pipeline.StageResult) -> None:
        if result.status != pipeline.UP_TO_DATE and not started:
            # A run with nothing to execute never pays for the tracker.
            tracker.start(session.run.invocation)
            started.append(True)
        stage_run, failure = session.handle(stage, result, tracker)
        session.run.stages.append(stage_run)  # so its dvc.lock is committed
        if on_stage:
            on_stage(stage_run)
        if failure is not None:
            raise failure

    try:
        with session.runtime.inside():
            pipeline.reproduce(
                root,
                targets,
                force=force,
                on_start=on_start,
                on_stage=stage_done,
                repo=session.repo,
            )
    finally:
        # Also ends a prepared tracker that never started, without waiting.
        warnings = tracker.finish()
        if started:
            session.run.warnings.extend(warnings)
        session.commit_lock()
        session.close()
    session.warn_unpushed()
    return session.run


class _Session:
    """The state one tracked `aero repro` shares across its stages."""

    def __init__(
        self,
        root: Path,
        settings: config.Config,
        runtime: Runtime,
        rerun_of: str | None,
    ) -> None:
        self.root = root
        self.settings = settings
        self.remote = _remote(settings)
        self.run = TrackedRun(invocation=runs.new_run_id())
        # One DVC repository for the clean-tree check and the pipeline.
        overrides = data.dvc_remote_overrides(self.remote) if self.remote else None
        self.repo = open_repo(root, overrides)
        try:
            gitstate.require_clean(root, repo=self.repo)
            self.code = gitstate.code_state(root)
            self._check_pushed()
        except BaseException:
            self.close()
            raise
        self.runtime = runtime
        self.runtime_node = runtime.describe()
        self.rerun_of = rerun_of
        self._manifests_saved = False
        self.environment = capture_env(os.environ, settings.runtime.pass_env)
        self._history: list[runs.RunRecord] | None = None
        self._indexes: dict[str, Any] = {}  # what each remote is known to hold

    def close(self) -> None:
        """Close the DVC repository."""
        self.repo.close()

    def handle(
        self, stage: Any, result: pipeline.StageResult, tracker: Any
    ) -> tuple[StageRun, RemoteError | None]:
        """Record an executed stage (push, record, tracker) or name the run that
        made an up-to-date one's outputs. A remote that fails is returned, once
        the record is kept: the stage ran, and its record says what was pushed.
        """
        inputs = fingerprint.stage_inputs(stage.repo, stage)
        inputs = dataclasses.replace(inputs, cmd=_redact_command(inputs.cmd))
        tree = redact_value(
            fingerprint.build(inputs, self.code.node(), self.runtime_node).tree
        )
        print_ = fingerprint.Fingerprint(tree)
        outputs = _outputs(stage)
        if result.status == pipeline.UP_TO_DATE:
            return StageRun(result, made_by=self._made_by(result.name, outputs)), None

        status = {
            pipeline.RAN: runs.SUCCEEDED,
            pipeline.FAILED: runs.FAILED,
            pipeline.ABORTED: runs.ABORTED,
        }[result.status]
        failure: RemoteError | None = None
        if status == runs.SUCCEEDED:
            try:
                _push(stage, outputs, self.remote, self._indexes)
            except RemoteError as exc:
                failure = exc  # recorded with its outputs marked not pushed
        record = self._record(stage, result, status, print_, outputs)
        record.tracker = tracker.log(record)
        for save in (
            lambda: runs.save(self.root, record, self.remote),
            self._save_manifests,
        ):
            try:
                save()
            except RemoteError as exc:  # the local copy is kept either way
                failure = failure or exc
        return StageRun(result, record=record), failure

    def _record(
        self,
        stage: Any,
        result: pipeline.StageResult,
        status: str,
        print_: fingerprint.Fingerprint,
        outputs: dict[str, dict[str, Any]],
    ) -> runs.RunRecord:
        ended = runs.now()
        started = _iso_before(result.seconds)
        params = print_.tree.get("params", {})
        return runs.RunRecord(
            run_id=runs.new_run_id(),
            invocation=self.run.invocation,
            project=self.root.name,
            stage=result.name,
            command=str(print_.tree["stage"].get("cmd") or ""),
            status=status,
            started=started,
            ended=ended,
            fingerprint=print_.tree,
            fingerprint_digest=print_.digest,
            node_digests=print_.node_digests,
            exit_code=0 if status == runs.SUCCEEDED else result.exit_code,
            params=params,
            outputs=outputs,
            environment=self.environment,
            rerun_of=self.rerun_of,
            aeromancy_version=__version__,
        )

    def _made_by(self, stage: str, outputs: dict[str, dict[str, Any]]) -> str | None:
        """The latest successful run of `stage` whose outputs are these ones."""
        hashes = {path: entry["hash"] for path, entry in outputs.items()}
        if not hashes:
            return None
        if self._history is None:
            self._history = runs.list_runs(self.root, None)
        for record in self._history:
            if (
                record.stage == stage
                and record.status == runs.SUCCEEDED
                and {p: e["hash"] for p, e in record.outputs.items()} == hashes
            ):
                return record.run_id
        return None

    def _save_manifests(self) -> None:
        """Store the runtime's full package lists once, for `aero runs diff`."""
        if self._manifests_saved:
            return
        manifests = self.runtime.manifest()
        for kind, manifest in (
            ("debian", manifests.debian),
            ("python", manifests.python),
            ("nix", manifests.nix_closure),
        ):
            if manifest is not None:
                runs.save_manifest(
                    self.root, self.remote, kind, manifest.text(), manifest.digest
                )
        self._manifests_saved = True

    def _check_pushed(self) -> None:
        if self.code.on_remote or not self.settings.require_pushed:
            return
        raise UserError(
            f"commit {self.code.commit[:12]} is on no remote branch and "
            "tool.aeromancy.require_pushed is true; `git push` it first"
        )

    def warn_unpushed(self) -> None:
        """Say so when runs were recorded from a commit no one else can fetch."""
        if self.code.on_remote or not self.run.records:
            return
        self.run.warnings.append(
            f"commit {self.code.commit[:12]} is on no remote branch: no one else "
            "can rerun these runs until you `git push` it"
        )

    def commit_lock(self) -> None:
        """Commit what DVC changed (dvc.lock, .gitignore files) naming the runs."""
        records = self.run.records
        # Outputs DVC does not cache (metrics, plots) belong in git.
        uncached = {
            path
            for record in records
            if record.status == runs.SUCCEEDED
            for path, entry in record.outputs.items()
            if not entry["cached"]
        }
        changed = _dvc_bookkeeping(self.root, uncached)
        if not changed or not records:
            return
        names = ", ".join(f"{r.stage} ({r.run_id})" for r in records)
        message = f"aero repro: record runs {names}"
        self.run.commit = gitstate.commit_paths(self.root, message, changed)


def _redact_command(cmd: str | list[str] | None) -> str | list[str] | None:
    """A stage command with secret-looking arguments (`--token X`) redacted."""
    if isinstance(cmd, list):
        return [str(_redact_command(part)) for part in cmd]
    if not cmd:
        return cmd
    try:
        argv = shlex.split(cmd)
    except ValueError:  # unbalanced quotes: DVC's shell will complain, not us
        return cmd
    redacted = redact_argv(argv)
    return cmd if redacted == argv else shlex.join(redacted)


def _remote(settings: config.Config) -> data.Remote | None:
    remote = settings.remote
    if not remote.url:
        return None
    return data.parse_remote(remote.url, remote.endpoint, remote.region, remote.profile)


def _outputs(stage: Any) -> dict[str, dict[str, Any]]:
    """Each output of `stage` with the hash and size DVC computed for it."""
    found: dict[str, dict[str, Any]] = {}
    for out in stage.outs:
        path = Path(os.path.relpath(out.fs_path, stage.repo.root_dir)).as_posix()
        info = out.hash_info
        meta = out.meta
        found[path] = {
            "hash": f"{info.name}:{info.value}" if info and info.value else None,
            "size": getattr(meta, "size", None),
            "nfiles": getattr(meta, "nfiles", None),
            "cached": bool(out.use_cache),
            "pushed": False,
        }
    return found


def _push(
    stage: Any,
    outputs: dict[str, dict[str, Any]],
    remote: data.Remote | None,
    indexes: dict[str, Any],
) -> None:
    """Push a stage's cached outputs; mark each pushed only once it is there.

    `indexes` keeps DVC's index of each remote open across the stages of a run.
    """
    from dvc.exceptions import DvcException

    cached = [out for out in stage.outs if out.use_cache and out.hash_info]
    if not cached or remote is None:
        return
    try:
        _send(stage.repo, cached, indexes)
    except DvcException as exc:
        raise RemoteError(
            f"outputs of stage '{stage.name}' were not pushed to {remote.url}: "
            f"{exc}; run `aero data push` once the remote is reachable"
        ) from exc
    except Exception as exc:  # botocore, aiohttp, OSError: the endpoint is gone
        why = data.explain_s3_error(exc, remote).message if remote.is_s3 else exc
        raise RemoteError(
            f"outputs of stage '{stage.name}' were not pushed: {why}; run "
            "`aero data push` once the remote is reachable"
        ) from exc
    for entry in outputs.values():
        entry["pushed"] = entry["cached"]


def _send(repo: Any, outs: list[Any], indexes: dict[str, Any]) -> None:
    """Send the objects of `outs` from the cache to the default DVC remote.

    Straight through DVC's object transfer: `Repo.push` would collect the whole
    index again (parsing dvc.yaml and dvc.lock) for every stage, about 0.15 s
    each. Cloud-versioned remotes (files kept under their paths) and DVC 2
    hashes still go through `Repo.push`.

    Raises:
        DvcException: the remote is unusable, or some objects failed or were
            missing from the cache (`UploadError`).
    """
    from dvc.exceptions import UploadError
    from dvc_data.hashfile.db import get_index

    remote = repo.cloud.get_remote(None, "push")
    hashes = [out.hash_info for out in outs]
    if (
        remote.worktree
        or remote.fs.version_aware
        or any(info.name != "md5" for info in hashes)
    ):
        repo.push(targets=[out.fs_path for out in outs])
        return
    cache = repo.cache.local
    if remote.path not in indexes:
        indexes[remote.path] = get_index(remote.odb)
    missing: list[Any] = []
    result = repo.cloud.transfer(
        cache,
        remote.odb,
        hashes,
        dest_index=indexes[remote.path],
        cache_odb=cache,
        validate_status=lambda status: missing.extend(status.missing),
    )
    if result.failed or missing:
        raise UploadError(len(result.failed) + len(missing))


def _dvc_bookkeeping(root: Path, uncached: set[str]) -> list[str]:
    """What a run changed that git should keep: `dvc.lock`, DVC's `.gitignore`
    entries, and the outputs DVC does not cache."""
    status = gitstate.git(root, "status", "--porcelain", "-z", "--untracked-files=all")
    paths = [entry[3:] for entry in status.split("\0") if len(entry) > 3]
    return sorted(
        p
        for p in paths
        if Path(p).name in ("dvc.lock", ".gitignore")
        or any(p == u or p.startswith(f"{u}/") for u in uncached)
    )


def _iso_before(seconds: float) -> str:
    import datetime as dt

    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds")
