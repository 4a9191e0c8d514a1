"""`[tool.aeromancy]`: validation errors name the file and the exact key."""

from __future__ import annotations

from pathlib import Path

import pytest

from aeromancy import config
from aeromancy.errors import ConfigError, ProjectError


def write(root: Path, text: str) -> Path:
    (root / "pyproject.toml").write_text(text)
    return root


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_full_table_is_typed(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
[tool.aeromancy]
require_pushed = true
[tool.aeromancy.tracker]
kind = "mlflow"
tracking_uri = "sqlite:///x.db"
[tool.aeromancy.remote]
url = "s3://bucket/prefix"
endpoint = "http://127.0.0.1:9000"
[tool.aeromancy.runtime]
kind = "nix"
apt_packages = ["git", "curl=7.88.1-10"]
build_args = {PIP_INDEX_URL = "https://mirror"}
pass_env = ["HF_TOKEN"]
""",
    )
    loaded = config.load(tmp_path)
    assert loaded.require_pushed is True
    assert loaded.tracker.kind == "mlflow"
    assert loaded.tracker.tracking_uri == "sqlite:///x.db"
    assert loaded.remote.endpoint == "http://127.0.0.1:9000"
    assert loaded.runtime.kind == "nix"
    assert loaded.runtime.apt_packages == ("git", "curl=7.88.1-10")
    assert loaded.runtime.build_args == {"PIP_INDEX_URL": "https://mirror"}
    assert loaded.runtime.pass_env == ("HF_TOKEN",)


def test_defaults_fill_an_empty_table(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, "[tool.aeromancy]\n"))
    assert (loaded.tracker.kind, loaded.tracker.mode) == ("wandb", "offline")
    assert loaded.runtime.kind == "docker"
    assert loaded.require_pushed is False


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[tool.aeromancy.runtime]\nkind = "dockr"\n',
            "pyproject.toml: tool.aeromancy.runtime.kind must be one of docker, nix, "
            'host (got "dockr")',
        ),
        (
            "[tool.aeromancy.runtime]\napt_packages = [1, 2]\n",
            "pyproject.toml: tool.aeromancy.runtime.apt_packages must be a list of "
            "strings (got [1, 2])",
        ),
        (
            '[tool.aeromancy]\nrequire_pushed = "yes"\n',
            "pyproject.toml: tool.aeromancy.require_pushed must be true or false "
            '(got "yes")',
        ),
        (
            '[tool.aeromancy.tracker]\nkind = "wandb"\nprojet = "x"\n',
            "pyproject.toml: tool.aeromancy.tracker.projet is not a known key "
            "(known: kind, project, entity, mode, tracking_uri)",
        ),
        (
            '[tool.aeromancy]\nremote = "s3://b"\n',
            'pyproject.toml: tool.aeromancy.remote must be a table (got "s3://b")',
        ),
        (
            "[tool.aeromancy.tracker]\nkind = 3\n",
            "pyproject.toml: tool.aeromancy.tracker.kind must be a string (got 3)",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, toml))
    assert caught.value.message == message


def test_malformed_toml_names_line_and_column(tmp_path: Path) -> None:
    write(tmp_path, '[project]\nname = "x"\n[tool.aeromancy\nkind = 1\n')
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)
    assert caught.value.message.startswith("pyproject.toml:3:")
    assert "malformed TOML" in caught.value.message
    assert "\n" not in caught.value.message


def test_missing_table_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"no \[tool.aeromancy\] table; run `aero init`"
    ):
        config.load(write(tmp_path, '[project]\nname = "x"\n'))


def test_find_root_walks_up(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    write(tmp_path, "[tool.aeromancy]\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert config.find_root(deep) == tmp_path.resolve()


def test_find_root_outside_a_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not inside an Aeromancy project"):
        config.find_root(tmp_path)


def test_find_root_in_plain_dvc_repo_suggests_adopting(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    with pytest.raises(ProjectError, match="run `aero init` there to adopt it"):
        config.find_root(tmp_path)


def test_append_table_keeps_every_existing_byte(tmp_path: Path) -> None:
    original = '# my project\n[project]\nname = "x"  # keep this comment\n'
    path = tmp_path / "pyproject.toml"
    path.write_text(original)
    block = '[tool.aeromancy.tracker]\nkind = "none"\n'

    assert config.append_table(path, block) is True
    text = path.read_text()
    assert text.startswith(original)
    assert config.load(tmp_path).tracker.kind == "none"

    assert config.append_table(path, block) is False
    assert path.read_text() == text
