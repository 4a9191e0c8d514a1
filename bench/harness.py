"""The benchmark's machinery: sandboxes, figures, targets, sampling, statistics.

`bench/run.py` lists the rows and curves and renders the report; the rows
that need an S3 server are in `bench/data_rows.py`, the scaling curves in
`bench/curves.py`. Nothing here asserts a time: a target is only a verdict in
the report.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"

Figure = Callable[[], float]
"""One sample of a figure: runs the thing once and returns its wall time (s)."""

RATIO = "ratio"
OVERHEAD = "overhead"
ABSOLUTE = "absolute"
THROUGHPUT = "throughput"
KINDS = (RATIO, OVERHEAD, ABSOLUTE, THROUGHPUT)


@dataclass(frozen=True)
class Target:
    """What a row must meet: `kind` says which figure is held to `limit`.

    - `ratio`: our median / the peer's, at most `limit`;
    - `overhead`: (our median - the peer's) / `units`, at most `limit` seconds;
    - `absolute`: our median alone, at most `limit` seconds;
    - `throughput`: the peer's median / ours (our speed relative to the
      peer's on the same work), at least `limit`: the only kind where higher
      is better.
    """

    limit: float
    kind: str = RATIO
    units: int = 1
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown target kind '{self.kind}'")
        if self.units < 1:
            raise ValueError("a target's units must be at least 1")

    def figure(self, ours: float, peer: float) -> float:
        """The figure this target holds to its limit, from the two medians."""
        if self.kind == OVERHEAD:
            return (ours - peer) / self.units
        if self.kind == ABSOLUTE:
            return ours
        if self.kind == THROUGHPUT:
            return peer / ours
        return ours / peer

    def meets(self, value: float) -> bool:
        """Whether `value`, a figure of this kind, holds the limit."""
        if self.kind == THROUGHPUT:
            return value >= self.limit
        return value <= self.limit

    @property
    def relation(self) -> str:
        return "≥" if self.kind == THROUGHPUT else "≤"

    def show(self, value: float) -> str:
        """A figure of this kind for the table: `0.61`, `+120 ms/stage`, `3 ms`."""
        if self.kind in (RATIO, THROUGHPUT):
            return f"{value:.2f}"
        sign = "+" if self.kind == OVERHEAD and value >= 0 else ""
        per = f"/{self.unit}" if self.unit else ""
        return f"{sign}{_ms(value)}{per}"


def _ms(value: float) -> str:
    """A signed duration in milliseconds, or seconds from 10 s up."""
    if abs(value) < 10:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"


@dataclass(frozen=True)
class Pair:
    """The two sides of a row: our figure and the peer's.

    `notes` gives more figures measured along with ours (name -> samples,
    warm-up included), shown under the table: e.g. a cost ours leaves out.
    `close` is called once the row is measured (e.g. to stop a server).
    """

    ours: Figure
    peer: Figure
    notes: Callable[[], dict[str, list[float]]] | None = None
    close: Callable[[], None] | None = None


def untimed(
    figure: Figure,
    before: Callable[[], object] | None = None,
    after: Callable[[], object] | None = None,
) -> Figure:
    """`figure` with steps before and after each run that are not timed: e.g.
    emptying a bucket, or waiting for a background process to finish so that
    it does not slow the peer's next run."""

    def timed() -> float:
        if before:
            before()
        took = figure()
        if after:
            after()
        return took

    return timed


@dataclass(frozen=True)
class Sandbox:
    """An isolated folder and environment (HOME, XDG dirs, no DVC analytics)."""

    root: Path
    env: dict[str, str]

    def command(self, *argv: str, cwd: Path | None = None) -> Figure:
        """A figure that runs `argv` as a subprocess here; a failure stops the run."""
        return Command(argv, cwd or self.root, self.env)

    def run(self, *argv: str, cwd: Path | None = None) -> None:
        """Run a setup step (not timed)."""
        Command(argv, cwd or self.root, self.env)()

    def with_env(self, **extra: str) -> Sandbox:
        """The same folder with more environment variables."""
        return Sandbox(self.root, {**self.env, **extra})

    def wandb_offline(self) -> Sandbox:
        """W&B offline and silent, every W&B folder inside the sandbox."""
        folder = self.root / "wandb"
        return self.with_env(
            WANDB_MODE="offline",
            WANDB_SILENT="true",
            WANDB_DIR=str(folder),
            WANDB_CACHE_DIR=str(folder / "cache"),
            WANDB_DATA_DIR=str(folder / "data"),
            WANDB_CONFIG_DIR=str(folder / "config"),
        )


@dataclass(frozen=True)
class Command:
    """A command line timed from launch to exit, its output discarded."""

    argv: Sequence[str]
    cwd: Path
    env: dict[str, str]

    def __call__(self) -> float:
        began = time.perf_counter()
        done = subprocess.run(
            list(self.argv),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        seconds = time.perf_counter() - began
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()
            raise RuntimeError(
                f"{' '.join(self.argv)} exited with {done.returncode}: {stderr}"
            )
        return seconds


@dataclass(frozen=True)
class Probe:
    """A figure a helper process measures itself, for what a command line cannot
    isolate (a library call without the interpreter's start-up).

    The process prints one JSON object of seconds; `key` is the figure, every
    other number is kept in `samples` as a note.
    """

    argv: Sequence[str]
    cwd: Path
    env: dict[str, str]
    key: str
    samples: dict[str, list[float]] = field(default_factory=dict)

    def __call__(self) -> float:
        done = subprocess.run(
            list(self.argv), cwd=self.cwd, env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(self.argv)} exited with {done.returncode}: "
                f"{done.stderr.strip()}"
            )
        figures = parse_probe(done.stdout, self.key)
        for name, value in figures.items():
            if name != self.key:
                self.samples.setdefault(name, []).append(value)
        return figures[self.key]

    def notes(self) -> dict[str, list[float]]:
        return dict(self.samples)


def parse_probe(stdout: str, key: str) -> dict[str, float]:
    """The numbers of a probe's last output line; `key` must be among them."""
    lines = stdout.strip().splitlines()
    try:
        document = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"a probe printed no JSON: {stdout[-200:]!r}") from None
    figures = {
        name: float(value)
        for name, value in document.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    if key not in figures:
        raise RuntimeError(f"a probe printed no '{key}': {lines[-1][:200]}")
    return figures


@dataclass(frozen=True)
class Row:
    """A line of the table: what is compared, its target, and how to set it up.

    `prepare` gets a fresh sandbox and returns the pair of figures to time.
    A row with `quick=False` is skipped by ``--quick``.
    """

    name: str
    ours: str
    peer: str
    target: float | Target
    prepare: Callable[[Sandbox], Pair]
    quick: bool = True

    @property
    def goal(self) -> Target:
        """The target, a bare number being a ratio."""
        target = self.target
        return target if isinstance(target, Target) else Target(target)


@dataclass(frozen=True)
class Stats:
    """Summary of one side's samples, in seconds."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples to summarise")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))


@dataclass(frozen=True)
class Result:
    """A measured row: both sides' stats, the figure its target holds, the verdict.

    `goal` defaults to a ratio target of `target`; `notes` are further figures
    measured along with ours.
    """

    name: str
    ours: str
    peer: str
    target: float
    our_stats: Stats
    peer_stats: Stats
    goal: Target | None = None
    notes: dict[str, Stats] = field(default_factory=dict)

    @property
    def kind(self) -> Target:
        return self.goal or Target(self.target)

    @property
    def ratio(self) -> float:
        return self.our_stats.median / self.peer_stats.median

    @property
    def figure(self) -> float:
        """The figure the target holds: a ratio, an overhead or our time."""
        return self.kind.figure(self.our_stats.median, self.peer_stats.median)

    @property
    def met(self) -> bool:
        return self.kind.meets(self.figure)

    def to_json(self) -> dict[str, object]:
        """The result as JSON values; times in seconds, to the microsecond."""
        goal = self.kind
        return {
            "name": self.name,
            "ours": self.ours,
            "peer": self.peer,
            "target": goal.limit,
            "target_kind": goal.kind,
            "units": goal.units,
            "our_stats": _rounded(self.our_stats),
            "peer_stats": _rounded(self.peer_stats),
            "ratio": round(self.ratio, 4),
            "figure": round(self.figure, 6),
            "met": self.met,
            "notes": {name: _rounded(stats) for name, stats in self.notes.items()},
        }


def _rounded(stats: Stats) -> dict[str, float | int]:
    return {key: round(value, 6) for key, value in asdict(stats).items()}


@dataclass
class Report:
    """Everything one run of the harness found."""

    machine: dict[str, str]
    quick: bool
    results: list[Result] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)


# --- measuring ---------------------------------------------------------------


def sample(pair: Pair, runs: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Time both figures `runs` times each, alternating which goes first.

    Warm-up runs fill the OS and bytecode caches and are dropped.
    """
    for _ in range(warmup):
        pair.ours()
        pair.peer()

    ours: list[float] = []
    peer: list[float] = []
    for index in range(runs):
        if index % 2 == 0:
            ours.append(pair.ours())
            peer.append(pair.peer())
        else:
            peer.append(pair.peer())
            ours.append(pair.ours())
    return ours, peer


def measure(row: Row, sandbox: Sandbox, runs: int, warmup: int = 1) -> Result:
    """Set the row up in `sandbox` and time it."""
    pair = row.prepare(sandbox)
    try:
        ours, peer = sample(pair, runs, warmup)
    finally:
        if pair.close:
            pair.close()
    notes = pair.notes() if pair.notes else {}
    goal = row.goal
    return Result(
        row.name,
        row.ours,
        row.peer,
        goal.limit,
        Stats.of(ours),
        Stats.of(peer),
        goal,
        {name: Stats.of(values[warmup:]) for name, values in notes.items()},
    )


def make_sandbox(root: Path) -> Sandbox:
    """An environment that sees nothing of the user's config, caches or data."""
    home = root / "home"
    home.mkdir(parents=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Aero Bench\n\temail = bench@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "WANDB_", "MLFLOW_", "DVC_", "GIT_", "AERO_"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(home / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(home / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(home / "dvc-site"),
        NO_COLOR="1",
        TERM="dumb",
    )
    return Sandbox(root, env)


class Skip(Exception):
    """Raised by a row's `prepare` when this machine cannot measure it; the
    reason is noted under the table instead of a result."""


def seconds(value: float) -> str:
    """A duration for the table: milliseconds below 10 s, else seconds."""
    if value < 10:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"


def spread(stats: Stats) -> str:
    """`min-max` of one side, e.g. ``90-150 ms``."""
    if stats.high < 10:
        return f"{stats.low * 1000:.0f}-{stats.high * 1000:.0f} ms"
    return f"{stats.low:.1f}-{stats.high:.1f} s"
