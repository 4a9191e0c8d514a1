"""Aeromancy's benchmark: our figures against the peer tool's, as ratios.

Run ``python bench/run.py [--quick]``. Each row times one of our commands and the
peer's equivalent as subprocesses launched the same way (the console scripts on
PATH), interleaved so that drift in the machine's speed hits both sides alike,
and reports both medians, their ratio and whether the ratio meets its target.
Results go to ``bench/results/latest.md`` and ``bench/results/latest.json``.

A row's target is one of three kinds: a ratio ours / peer, an overhead per
unit ((ours - peer) / units, e.g. per executed stage), or an absolute time of
ours alone; the peer's figure is shown beside it either way.

To add a row, write a function that prepares a sandbox and returns a `Pair` of
figures (see `_help_row`), and list it in `ROWS`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"

Figure = Callable[[], float]
"""One sample of a figure: runs the thing once and returns its wall time (s)."""

RATIO = "ratio"
OVERHEAD = "overhead"
ABSOLUTE = "absolute"


@dataclass(frozen=True)
class Target:
    """What a row must meet: `kind` says which figure is held to `limit`.

    - `ratio`: our median / the peer's, at most `limit`;
    - `overhead`: (our median - the peer's) / `units`, at most `limit` seconds;
    - `absolute`: our median alone, at most `limit` seconds.
    """

    limit: float
    kind: str = RATIO
    units: int = 1
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in (RATIO, OVERHEAD, ABSOLUTE):
            raise ValueError(f"unknown target kind '{self.kind}'")
        if self.units < 1:
            raise ValueError("a target's units must be at least 1")

    def figure(self, ours: float, peer: float) -> float:
        """The figure this target holds to its limit, from the two medians."""
        if self.kind == OVERHEAD:
            return (ours - peer) / self.units
        if self.kind == ABSOLUTE:
            return ours
        return ours / peer

    def show(self, value: float) -> str:
        """A figure of this kind for the table: `0.61`, `+120 ms/stage`, `3 ms`."""
        if self.kind == RATIO:
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
    """

    ours: Figure
    peer: Figure
    notes: Callable[[], dict[str, list[float]]] | None = None


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
        return self.figure <= self.kind.limit

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
    ours, peer = sample(pair, runs, warmup)
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


# --- rows --------------------------------------------------------------------


def _help_row(box: Sandbox) -> Pair:
    return Pair(box.command("aero", "--help"), box.command("dvc", "--version"))


def _noop_repro_row(box: Sandbox) -> Pair:
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "host", "--tracker", "none")
    box.run("aero", "repro", "--dev", cwd=project)
    return Pair(
        box.command("aero", "repro", "--dev", cwd=project),
        box.command("dvc", "repro", cwd=project),
    )


TRIVIAL_STAGES = """\
stages:
  one:
    cmd: echo one > one.txt
    outs:
      - one.txt
  two:
    cmd: cp one.txt two.txt
    deps:
      - one.txt
    outs:
      - two.txt
  three:
    cmd: cp two.txt three.txt
    deps:
      - two.txt
    outs:
      - three.txt
"""
"""Three stages that do next to nothing: what is left is each tool's overhead."""


def _tracked_repro_row(box: Sandbox) -> Pair:
    box = box.wandb_offline()
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "host", "--tracker", "wandb")
    (project / "dvc.yaml").write_text(TRIVIAL_STAGES, encoding="utf-8")
    box.run(
        "git",
        "commit",
        "--quiet",
        "-m",
        "three trivial stages",
        "dvc.yaml",
        cwd=project,
    )
    # Locks the stages and commits dvc.lock; --force then reruns all three and
    # leaves the tree clean, since the outputs come out the same.
    box.run("aero", "repro", cwd=project)
    return Pair(
        box.command("aero", "repro", "--force", cwd=project),
        box.command("dvc", "repro", "--force", cwd=project),
    )


GIB = 1024**3


def _fingerprint_row(box: Sandbox) -> Pair:
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "host", "--tracker", "none")
    big = project / "data" / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(GIB)  # sparse: quick to make, as long to hash as any
    box.run("dvc", "add", "--quiet", str(big), cwd=project)
    box.run(
        "dvc",
        "stage",
        "add",
        "--quiet",
        "-n",
        "size",
        "-d",
        "data/big.bin",
        "-o",
        "size.txt",
        "wc -c < data/big.bin > size.txt",
        cwd=project,
    )
    box.run("dvc", "repro", "--quiet", "size", cwd=project)
    box.run("git", "add", "--all", cwd=project)
    box.run("git", "commit", "--quiet", "-m", "a stage reading 1 GiB", cwd=project)
    probe = Probe(
        [sys.executable, str(BENCH / "fingerprint_probe.py"), str(project), "size"],
        project,
        box.env,
        "fingerprint",
    )
    return Pair(probe, box.command("md5sum", str(big)), probe.notes)


class Skip(Exception):
    """Raised by a row's `prepare` when this machine cannot measure it; the
    reason is noted under the table instead of a result."""


BASE_IMAGE = "localhost/aeromancy-base:bookworm"
"""The base image `scripts/setup-podman` imports."""


def _noop_build_row(box: Sandbox) -> Pair:
    """`aero build` with nothing changed against the engine's own fully cached
    build of the same Dockerfile and context (timed in-process, so the peer pays
    no interpreter start)."""
    from aeromancy import config
    from aeromancy.errors import UserError
    from aeromancy.runtime import image
    from aeromancy.runtime.docker import DockerRuntime
    from aeromancy.runtime.engine import Engine

    engine = Engine(box.env.get("DOCKER_HOST"))
    try:
        engine.images()
    except UserError as exc:
        raise Skip(f"no container engine: {exc.message}") from None
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "docker", "--tracker", "none")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'base_image = "debian:bookworm-slim"', f'base_image = "{BASE_IMAGE}"'
        )
    )
    box.run("git", "commit", "--quiet", "-am", "local base image", cwd=project)
    box.run("aero", "build", cwd=project)  # builds once, or finds the image

    runtime = DockerRuntime(project, config.load(project).runtime, engine)
    spec = runtime.resolve(engine.images())
    context = box.root / "context"
    context.mkdir()
    for name, data in {**spec.files, "Dockerfile": spec.dockerfile().encode()}.items():
        (context / name).write_bytes(data)

    def cached_build() -> float:
        began = time.perf_counter()
        for _ in engine.client().api.build(path=str(context), pull=False, decode=True):
            pass
        return time.perf_counter() - began

    assert image.LABEL in spec.dockerfile()
    return Pair(box.command("aero", "build", cwd=project), cached_build)


ROWS: tuple[Row, ...] = (
    Row("start-up", "aero --help", "dvc --version", 0.8, _help_row),
    Row(
        "no-op repro",
        "aero repro --dev",
        "dvc repro",
        1.15,
        _noop_repro_row,
    ),
    Row(
        "tracked repro, 3 trivial stages",
        "aero repro --force (W&B offline)",
        "dvc repro --force",
        Target(0.25, OVERHEAD, units=3, unit="stage"),
        _tracked_repro_row,
    ),
    Row(
        "fingerprint, 1 GiB input in dvc.lock",
        "stage_inputs + build (in-process)",
        "md5sum of the file",
        Target(0.05, ABSOLUTE),
        _fingerprint_row,
    ),
    Row(
        "no-op build (container runtime)",
        "aero build, nothing changed",
        "engine build, every layer cached",
        Target(0.3, ABSOLUTE),
        _noop_build_row,
    ),
)


# --- rendering ---------------------------------------------------------------


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


def verdict(result: Result) -> str:
    """The held figure, its limit and whether it is met: `0.61 (≤ 0.80 ok)`."""
    goal = result.kind
    mark = "ok" if result.met else "MISSED"
    return f"{goal.show(result.figure)} (≤ {goal.show(goal.limit)} {mark})"


def render_table(results: Iterable[Result]) -> str:
    """The results as a Markdown table, one row per figure."""
    lines = [
        "| figure | ours | peer | our median | peer median | result (target) "
        "| our min-max | peer min-max | n |",
        "|---|---|---|---:|---:|---|---|---|---:|",
    ]
    for r in results:
        cells = (
            r.name,
            f"`{r.ours}`",
            f"`{r.peer}`",
            seconds(r.our_stats.median),
            seconds(r.peer_stats.median),
            verdict(r),
            spread(r.our_stats),
            spread(r.peer_stats),
            str(min(r.our_stats.n, r.peer_stats.n)),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_notes(results: Iterable[Result]) -> str:
    """The further figures of each row, one line each; empty when there are none."""
    return "\n".join(
        f"- {r.name}, {name}: {seconds(stats.median)} median, {spread(stats)}, "
        f"n {stats.n}"
        for r in results
        for name, stats in r.notes.items()
    )


def render_markdown(report: Report) -> str:
    """The whole report: the table, then the machine it ran on."""
    mode = "quick" if report.quick else "full"
    machine = "\n".join(f"- {key}: {value}" for key, value in report.machine.items())
    parts = [
        f"# Benchmark ({mode} run)\n",
        "Median wall time of each command launched as a subprocess (or, where "
        "the row says so, of a library call timed in its own process). The result "
        "is the ratio ours / peer, the overhead (ours - peer) per unit, or our "
        "time alone, as the target says; lower is better. Runs interleave ours "
        "and the peer's.\n",
        render_table(report.results) + "\n",
    ]
    notes = render_notes(report.results)
    if notes:
        parts += ["## Notes\n", notes + "\n"]
    parts += ["## Machine\n", machine + "\n"]
    parts += [
        f"## {title}\n\n```\n{text.strip()}\n```\n"
        for title, text in report.extra.items()
    ]
    return "\n".join(parts)


def render_json(report: Report) -> str:
    document = {
        "quick": report.quick,
        "machine": report.machine,
        "results": [r.to_json() for r in report.results],
        "extra": report.extra,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- the machine -------------------------------------------------------------


def describe_machine(env: dict[str, str]) -> dict[str, str]:
    """CPU count and model, Python, DVC and OS, and which launchers were timed."""
    path = env.get("PATH")
    return {
        "cpus": str(os.cpu_count()),
        "cpu model": _cpu_model(),
        "python": platform.python_version(),
        "dvc": _output(["dvc", "--version"], env),
        "os": platform.platform(),
        "load average (1 min) at start": _load(),
        "aero launcher": shutil.which("aero", path=path) or "not found",
        "dvc launcher": shutil.which("dvc", path=path) or "not found",
    }


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _output(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"exit {done.returncode}"


# --- optional companions -----------------------------------------------------


def companions(env: dict[str, str]) -> dict[str, str]:
    """Output of standalone benchmarks that live next to this one, when present.

    `data_push.py` (data push against boto3) needs an S3 server and is slow, so it
    only runs in a full run, and its failure is reported, not raised.
    """
    script = BENCH / "data_push.py"
    if not script.exists():
        return {}
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    text = done.stdout if done.returncode == 0 else f"failed:\n{done.stderr}"
    return {"data push (bench/data_push.py)": text}


# --- entry point -------------------------------------------------------------


def run(rows: Sequence[Row], runs: int, quick: bool) -> Report:
    """Measure `rows`, each in its own sandbox under one temporary folder."""
    with tempfile.TemporaryDirectory(prefix="aero-bench-") as tmp:
        base = make_sandbox(Path(tmp) / "machine")
        report = Report(describe_machine(base.env), quick)
        for index, row in enumerate(rows):
            box = make_sandbox(Path(tmp) / f"row{index}")
            print(f"measuring {row.name} ({runs} runs each)...", file=sys.stderr)
            try:
                report.results.append(measure(row, box, runs))
            except Skip as exc:
                report.extra[f"{row.name}: skipped"] = str(exc)
        if not quick:
            report.extra.update(companions(base.env))
    return report


def select_rows(rows: Sequence[Row], quick: bool, only: Sequence[str]) -> list[Row]:
    """The rows a run measures: quick ones for ``--quick``, and with ``--only``
    those whose name contains one of the texts given."""
    return [
        row
        for row in rows
        if (row.quick or not quick)
        and (not only or any(text.lower() in row.name.lower() for text in only))
    ]


def write(report: Report, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.md").write_text(render_markdown(report), encoding="utf-8")
    (folder / "latest.json").write_text(render_json(report), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs a figure")
    parser.add_argument("--runs", type=int, help="runs a figure (at least 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target is missed"
    )
    parser.add_argument(
        "--only", action="append", metavar="TEXT", help="rows whose name has TEXT"
    )
    args = parser.parse_args(argv)

    runs = max(5, args.runs or (5 if args.quick else 15))
    rows = select_rows(ROWS, args.quick, args.only or [])
    report = run(rows, runs, args.quick)
    write(report, args.out)
    print(render_table(report.results))
    missed = [r.name for r in report.results if not r.met]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
