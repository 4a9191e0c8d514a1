"""The data broker, in process: every `aeromancy.notebook` call made through it
answers what the host reader answers, errors included, on a real project."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import aeromancy.notebook as an
from aeromancy.errors import UserError
from aeromancy.kernel import broker
from aeromancy.notebook import NotTrackedError
from tests.conftest import Result


@pytest.fixture
def pinned(project: Path, aero: type[Result], monkeypatch: pytest.MonkeyPatch) -> Path:
    result = aero("repro", cwd=project)
    assert result.exit_code == 0, result.stderr
    monkeypatch.setenv(an.PIN_ENV, an.pin_for(project).to_json())
    return project


@pytest.fixture
def through_broker(
    pinned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """While open, the notebook reads through a broker serving from this process."""
    folder = tmp_path / "broker"
    folder.mkdir()
    with broker.serving(folder) as address:
        monkeypatch.setenv(an.BROKER_ENV, str(address))
        yield pinned
        monkeypatch.delenv(an.BROKER_ENV)


def test_every_call_answers_as_the_host_reader_does(through_broker: Path) -> None:
    root = through_broker
    assert an.load("build/model.json") == (root / "build/model.json").read_bytes()
    prepared = an.load("build/prepared")
    assert isinstance(prepared, dict) and sorted(prepared) == ["test.csv", "train.csv"]
    with an.open("build/metrics.json", mode="r") as handle:
        assert json.load(handle) == json.loads(
            (root / "build/metrics.json").read_text()
        )
    local = an.path("build/predictions.csv")
    assert local.read_bytes() == (root / "build/predictions.csv").read_bytes()
    lineage = an.lineage("build/model.json")
    assert isinstance(lineage, an.Lineage)
    assert lineage.path == "build/model.json" and lineage.made_by

    with pytest.raises(NotTrackedError) as raised:
        an.load("src/train.py")
    assert "'src/train.py' is not tracked by DVC at commit " in raised.value.message
    with pytest.raises(UserError, match="'build/prepared' is a directory"):
        an.open("build/prepared")


def test_a_broker_that_is_gone_or_asked_nonsense_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(an.BROKER_ENV, str(tmp_path / "gone.sock"))
    with pytest.raises(UserError) as raised:
        an.load("build/model.json")
    assert raised.value.message == (
        f"the kernel's data broker at {tmp_path / 'gone.sock'} does not answer "
        "(No such file or directory); restart the kernel"
    )
    assert broker.answer(b'{"op": "delete"}') == {
        "error": {
            "type": "UserError",
            "message": "the data broker has no call 'delete'",
        }
    }
    assert broker.answer(b"not json")["error"]["type"] == "UserError"
