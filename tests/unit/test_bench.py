"""`bench/run.py`: the harness's pure parts (no timing is asserted here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bench.run import (
    ABSOLUTE,
    OVERHEAD,
    RATIO,
    Pair,
    Report,
    Result,
    Row,
    Sandbox,
    Stats,
    Target,
    measure,
    parse_probe,
    render_json,
    render_markdown,
    render_notes,
    render_table,
    sample,
    seconds,
    select_rows,
    spread,
    verdict,
)


def _result(ours: float, peer: float, target: float = 1.0) -> Result:
    return Result(
        "start-up",
        "aero --help",
        "dvc --version",
        target,
        Stats(ours, ours * 0.9, ours * 1.5, 5),
        Stats(peer, peer * 0.9, peer * 1.5, 7),
    )


def test_stats_of_samples() -> None:
    stats = Stats.of([0.3, 0.1, 0.2, 0.5, 0.4])
    assert stats == Stats(median=0.3, low=0.1, high=0.5, n=5)


def test_stats_of_an_even_count_takes_the_middle_mean() -> None:
    assert Stats.of([1.0, 2.0, 4.0, 3.0]).median == 2.5


def test_stats_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        Stats.of([])


def test_ratio_and_verdict() -> None:
    assert _result(0.08, 0.1, target=0.8).ratio == pytest.approx(0.8)
    assert _result(0.08, 0.1, target=0.8).met
    assert not _result(0.09, 0.1, target=0.8).met


def test_seconds_switch_unit_at_ten() -> None:
    assert seconds(0.1234) == "123 ms"
    assert seconds(9.9994) == "9999 ms"
    assert seconds(12.34) == "12.3 s"


def test_spread_is_min_to_max() -> None:
    assert spread(Stats(0.2, 0.1, 0.35, 5)) == "100-350 ms"
    assert spread(Stats(12.0, 9.5, 14.25, 5)) == "9.5-14.2 s"


def test_table_has_a_header_and_one_line_per_result() -> None:
    table = render_table([_result(0.1, 0.2), _result(0.3, 0.2)]).splitlines()
    assert len(table) == 4
    assert table[0].startswith("| figure | ours | peer |")
    assert table[2] == (
        "| start-up | `aero --help` | `dvc --version` | 100 ms | 200 ms "
        "| 0.50 (≤ 1.00 ok) | 90-150 ms | 180-300 ms | 5 |"
    )
    assert "1.50 (≤ 1.00 MISSED)" in table[3]


def test_markdown_names_the_mode_and_the_machine() -> None:
    report = Report({"cpus": "2", "dvc": "3.67.1"}, quick=True)
    report.results.append(_result(0.1, 0.2))
    text = render_markdown(report)
    assert text.startswith("# Benchmark (quick run)")
    assert "- cpus: 2\n- dvc: 3.67.1" in text


def test_json_round_trips_the_figures() -> None:
    report = Report({"cpus": "2"}, quick=False, results=[_result(0.1, 0.2)])
    document = json.loads(render_json(report))
    row = document["results"][0]
    assert (document["quick"], row["ratio"], row["met"]) == (False, 0.5, True)
    assert row["our_stats"] == {"median": 0.1, "low": 0.09, "high": 0.15, "n": 5}


def test_sample_interleaves_and_drops_the_warm_up() -> None:
    calls: list[str] = []

    def figure(name: str) -> float:
        calls.append(name)
        return float(len(calls))

    ours, peer = sample(Pair(lambda: figure("o"), lambda: figure("p")), runs=3)
    assert calls == ["o", "p", "o", "p", "p", "o", "o", "p"]
    assert (len(ours), len(peer)) == (3, 3)


def test_results_folder_is_beside_the_harness() -> None:
    from bench import run

    assert Path(run.__file__).parent / "results" == run.RESULTS


def test_an_overhead_target_holds_the_difference_per_unit() -> None:
    goal = Target(0.25, OVERHEAD, units=3, unit="stage")
    assert goal.figure(ours=2.0, peer=1.1) == pytest.approx(0.3)
    assert goal.show(0.3) == "+300 ms/stage"
    assert goal.show(-0.02) == "-20 ms/stage"


def test_an_absolute_target_holds_our_time_alone() -> None:
    goal = Target(0.05, ABSOLUTE)
    assert goal.figure(ours=0.004, peer=3.9) == 0.004
    assert goal.show(0.004) == "4 ms"


def test_a_bare_number_is_a_ratio_target() -> None:
    row = Row("start-up", "aero --help", "dvc --version", 0.8, lambda box: _pair())
    assert row.goal == Target(0.8, RATIO)
    assert row.goal.show(0.61) == "0.61"


@pytest.mark.parametrize(("kind", "units"), [("median", 1), (RATIO, 0), (OVERHEAD, -1)])
def test_a_target_refuses_an_unknown_kind_or_no_units(kind: str, units: int) -> None:
    with pytest.raises(ValueError):
        Target(1.0, kind, units=units)


def test_verdict_of_an_overhead_row() -> None:
    goal = Target(0.25, OVERHEAD, units=3, unit="stage")
    ok = replace(_result(2.4, 1.8), goal=goal, target=0.25)
    missed = replace(_result(3.0, 1.8), goal=goal, target=0.25)
    assert verdict(ok) == "+200 ms/stage (≤ +250 ms/stage ok)"
    assert verdict(missed) == "+400 ms/stage (≤ +250 ms/stage MISSED)"


def test_json_names_the_target_kind_the_figure_and_the_notes() -> None:
    result = replace(
        _result(0.004, 3.9),
        target=0.05,
        goal=Target(0.05, ABSOLUTE),
        notes={"Repo open": Stats(0.2, 0.1, 0.3, 5)},
    )
    row = json.loads(render_json(Report({}, quick=True, results=[result])))["results"][
        0
    ]
    assert (row["target_kind"], row["figure"], row["met"]) == ("absolute", 0.004, True)
    assert row["notes"]["Repo open"]["median"] == 0.2


def test_notes_are_listed_under_the_table() -> None:
    result = replace(_result(0.1, 0.2), notes={"Repo open": Stats(0.2, 0.1, 0.3, 5)})
    assert render_notes([result, _result(0.1, 0.2)]) == (
        "- start-up, Repo open: 200 ms median, 100-300 ms, n 5"
    )
    report = Report({"cpus": "2"}, quick=True, results=[result])
    assert "## Notes\n\n- start-up, Repo open" in render_markdown(report)
    assert "## Notes" not in render_markdown(Report({}, quick=True))


def test_parse_probe_takes_the_last_line_and_keeps_numbers_only() -> None:
    out = 'warming up\n{"fingerprint": 0.004, "Repo open": 0.2, "note": "x"}\n'
    assert parse_probe(out, "fingerprint") == {"fingerprint": 0.004, "Repo open": 0.2}


@pytest.mark.parametrize("out", ["", "not json\n", '{"other": 1}\n'])
def test_parse_probe_refuses_output_without_the_figure(out: str) -> None:
    with pytest.raises(RuntimeError, match="probe"):
        parse_probe(out, "fingerprint")


def test_measure_drops_the_warm_up_from_the_notes() -> None:
    calls = iter(range(100))
    kept: dict[str, list[float]] = {"Repo open": []}

    def ours() -> float:
        kept["Repo open"].append(float(next(calls)))
        return 1.0

    row = Row("r", "a", "b", Target(1.0, ABSOLUTE), lambda box: _pair(ours, kept))
    result = measure(row, Sandbox(Path("."), {}), runs=3)
    assert result.notes["Repo open"] == Stats(2.0, 1.0, 3.0, 3)
    assert result.met


def test_select_rows_quick_and_only() -> None:
    rows = [
        Row("start-up", "", "", 1.0, lambda box: _pair()),
        Row("tracked repro", "", "", 1.0, lambda box: _pair(), quick=False),
    ]
    assert [r.name for r in select_rows(rows, quick=True, only=[])] == ["start-up"]
    assert [r.name for r in select_rows(rows, False, ["TRACKED"])] == ["tracked repro"]
    assert select_rows(rows, quick=True, only=["tracked"]) == []


def test_the_issue_rows_are_listed_with_their_targets() -> None:
    from bench import run

    goals = {row.name: row.goal for row in run.ROWS}
    assert goals["tracked repro, 3 trivial stages"] == Target(
        0.25, OVERHEAD, units=3, unit="stage"
    )
    assert goals["fingerprint, 1 GiB input in dvc.lock"] == Target(0.05, ABSOLUTE)


def test_trivial_stages_are_three_chained_stages() -> None:
    import yaml

    from bench.run import TRIVIAL_STAGES

    stages = yaml.safe_load(TRIVIAL_STAGES)["stages"]
    assert list(stages) == ["one", "two", "three"]
    assert stages["three"]["deps"] == ["two.txt"]


def test_bytes_read_counts_what_this_process_reads(tmp_path: Path) -> None:
    from bench.fingerprint_probe import bytes_read

    if not Path("/proc/self/io").exists():
        pytest.skip("no /proc/self/io here")
    (tmp_path / "f").write_bytes(b"x" * 100_000)
    before = bytes_read()
    (tmp_path / "f").read_bytes()
    assert bytes_read() - before >= 100_000


def _pair(
    ours: Callable[[], float] | None = None,
    notes: dict[str, list[float]] | None = None,
) -> Pair:
    return Pair(ours or (lambda: 1.0), lambda: 2.0, (lambda: notes) if notes else None)
