"""Aeromancy's benchmark: our figures against the peer tool's, as ratios.

Run ``python bench/run.py [--quick]``. Each row times one of our commands and the
peer's equivalent as subprocesses launched the same way (the console scripts on
PATH), interleaved so that drift in the machine's speed hits both sides alike,
and reports both medians, their ratio and whether the ratio meets its target.
Results go to ``bench/results/latest.md`` and ``bench/results/latest.json``.

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


@dataclass(frozen=True)
class Pair:
    """The two sides of a row: our figure and the peer's."""

    ours: Figure
    peer: Figure


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
class Row:
    """A line of the table: what is compared, its target, and how to set it up.

    `prepare` gets a fresh sandbox and returns the pair of figures to time.
    A row with `quick=False` is skipped by ``--quick``.
    """

    name: str
    ours: str
    peer: str
    target: float
    prepare: Callable[[Sandbox], Pair]
    quick: bool = True


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
    """A measured row: both sides' stats, their ratio and the verdict."""

    name: str
    ours: str
    peer: str
    target: float
    our_stats: Stats
    peer_stats: Stats

    @property
    def ratio(self) -> float:
        return self.our_stats.median / self.peer_stats.median

    @property
    def met(self) -> bool:
        return self.ratio <= self.target

    def to_json(self) -> dict[str, object]:
        """The result as JSON values; times in seconds, to the microsecond."""
        return {
            "name": self.name,
            "ours": self.ours,
            "peer": self.peer,
            "target": self.target,
            "our_stats": _rounded(self.our_stats),
            "peer_stats": _rounded(self.peer_stats),
            "ratio": round(self.ratio, 4),
            "met": self.met,
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


def measure(row: Row, sandbox: Sandbox, runs: int) -> Result:
    """Set the row up in `sandbox` and time it."""
    ours, peer = sample(row.prepare(sandbox), runs)
    return Result(
        row.name, row.ours, row.peer, row.target, Stats.of(ours), Stats.of(peer)
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


ROWS: tuple[Row, ...] = (
    Row("start-up", "aero --help", "dvc --version", 0.8, _help_row),
    Row(
        "no-op repro",
        "aero repro --dev",
        "dvc repro",
        1.15,
        _noop_repro_row,
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
    mark = "ok" if result.met else "MISSED"
    return f"{result.ratio:.2f} (≤ {result.target:.2f} {mark})"


def render_table(results: Iterable[Result]) -> str:
    """The results as a Markdown table, one row per figure."""
    lines = [
        "| figure | ours | peer | our median | peer median | ratio (target) "
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


def render_markdown(report: Report) -> str:
    """The whole report: the table, then the machine it ran on."""
    mode = "quick" if report.quick else "full"
    machine = "\n".join(f"- {key}: {value}" for key, value in report.machine.items())
    parts = [
        f"# Benchmark ({mode} run)\n",
        "Median wall time of each command launched as a subprocess; ratio = ours "
        "/ peer, lower is better. Runs interleave ours and the peer's.\n",
        render_table(report.results) + "\n",
        "## Machine\n",
        machine + "\n",
    ]
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
            report.results.append(measure(row, box, runs))
        if not quick:
            report.extra.update(companions(base.env))
    return report


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
    args = parser.parse_args(argv)

    runs = max(5, args.runs or (5 if args.quick else 15))
    rows = [row for row in ROWS if row.quick or not args.quick]
    report = run(rows, runs, args.quick)
    write(report, args.out)
    print(render_table(report.results))
    missed = [r.name for r in report.results if not r.met]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
