"""`bench/run.py`: the harness's pure parts (no timing is asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.run import (
    Pair,
    Report,
    Result,
    Stats,
    render_json,
    render_markdown,
    render_table,
    sample,
    seconds,
    spread,
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
