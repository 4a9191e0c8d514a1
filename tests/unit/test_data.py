"""Data: names, sizes, summaries, S3 error lines, config edits, the shared cache,
and changes made in place to a dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ProfileNotFound

from aeromancy import config, data, datasets, transfer
from aeromancy._s3 import _bytes
from aeromancy.errors import ConfigError, RemoteError

REMOTE = data.Remote(url="s3://bucket/prefix", endpoint="http://127.0.0.1:9000")


@pytest.mark.parametrize("name", ["census", "census-2020", "a.b_c", "X1"])
def test_plain_names_are_accepted(name: str) -> None:
    assert datasets.check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "..", "../x", "a/b", "a\\b", ".hidden", "-x", "x.dvc", "a..b", "é"]
)
def test_path_tricks_are_refused(name: str) -> None:
    with pytest.raises(datasets.DatasetError, match="invalid dataset name"):
        datasets.check_name(name)


def test_default_name_comes_from_the_source() -> None:
    assert datasets._default_name("/tmp/Census 2020.csv") == "Census-2020"
    assert datasets._default_name("s3://bucket/raw/images/") == "images"


@pytest.mark.parametrize(
    ("nbytes", "shown"),
    [(0, "0 B"), (999, "999 B"), (12_400_000, "12.4 MB"), (3 * 10**12, "3.0 TB")],
)
def test_sizes_read_like_transfer_tools(nbytes: int, shown: str) -> None:
    assert transfer.human_size(nbytes) == shown


def test_summary_says_what_moved_and_where() -> None:
    pushed = transfer.Moved("pushed", 3, 12_400_000, "s3://b/p")
    pulled = transfer.Moved("pulled", 1, 10, "s3://b/p")

    assert pushed.summary() == "pushed 3 files, 12.4 MB to s3://b/p"
    assert pulled.summary() == "pulled 1 file, 10 B from s3://b/p"
    assert transfer.Moved("pushed", 0, 0, "/r").summary() == (
        "nothing to push: everything is already in /r"
    )
    assert transfer.Moved("pulled", 0, 0, "/r").summary() == (
        "nothing to pull: everything is already in the cache"
    )


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": ""}}, "HeadBucket")


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9000"),
            "remote s3://bucket/prefix is unreachable: cannot connect to "
            "http://127.0.0.1:9000; check --endpoint and that the server is running",
        ),
        (
            client_error("NoSuchBucket"),
            "bucket 'bucket' does not exist at http://127.0.0.1:9000; create it first",
        ),
        (
            client_error("403"),
            "access denied to bucket 'bucket' at http://127.0.0.1:9000; "
            "check the AWS credentials or --profile",
        ),
        (
            client_error("InvalidAccessKeyId"),
            "access denied to bucket 'bucket' at http://127.0.0.1:9000; "
            "check the AWS credentials or --profile",
        ),
        (
            ProfileNotFound(profile="nobody"),
            "AWS profile 'None' is not configured; check ~/.aws/config or "
            "drop --profile",
        ),
    ],
)
def test_s3_errors_become_one_line(exc: Exception, line: str) -> None:
    assert data.explain_s3_error(exc, REMOTE).message == line


def test_a_source_bucket_is_named_instead_of_the_remote() -> None:
    error = data.explain_s3_error(client_error("NoSuchBucket"), REMOTE, "incoming")
    assert error.message.startswith("bucket 'incoming' does not exist")


def test_set_table_values_keeps_comments_and_drops_none(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[project]\nname = "x"  # the name\n\n'
        "[tool.aeromancy.remote]\n# where data lives\n"
        'url = "s3://a/b"\nendpoint = "http://old"\n'
    )

    config.set_table_values(
        path, "tool.aeromancy.remote", {"url": "/data", "endpoint": None}
    )

    text = path.read_text()
    assert 'name = "x"  # the name' in text
    assert "# where data lives" in text
    assert 'url = "/data"' in text
    assert "endpoint" not in text


def test_set_table_values_adds_a_missing_table(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n')

    config.set_table_values(path, "tool.aeromancy.remote", {"url": "/data"})

    assert 'url = "/data"' in path.read_text()
    assert config.read_document(path)["tool"]["aeromancy"]["remote"]["url"] == "/data"


def test_set_table_values_refuses_a_key_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool]\naeromancy = "x"\n')

    with pytest.raises(ConfigError, match=r"tool\.aeromancy must be a table"):
        config.set_table_values(path, "tool.aeromancy", {"url": "/data"})


def test_part_sizes_read_like_the_aws_cli() -> None:
    assert _bytes("64MB") == 64 * 2**20
    assert _bytes("8MiB") == 8 * 2**20
    assert _bytes(1024) == 1024


def test_shared_cache_is_written_to_the_local_config(dvc_repo: Path) -> None:
    folder = data.setup_cache(dvc_repo)

    local = (dvc_repo / ".dvc" / "config.local").read_text()
    assert folder == data.shared_cache_dir().resolve()
    assert str(folder) in local
    assert "hardlink,symlink,copy" in local
    assert (dvc_repo / ".dvc" / ".gitignore").read_text().count("/config.local")


def test_project_without_remote_url_is_refused(project: Path) -> None:
    config.set_table_values(
        project / "pyproject.toml", "tool.aeromancy.remote", {"url": None}
    )
    with pytest.raises(RemoteError, match=r"remote\.url is not set"):
        data.project_remote(project)


def test_change_made_in_place_is_found(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "census"
    source.mkdir()
    (source / "rows.csv").write_text("a,b\n1,2\n")
    datasets.ingest(project, str(source))
    assert datasets.check_unchanged(project) == []

    rows = project / "data" / "census" / "rows.csv"
    assert rows.stat().st_mode & 0o222 == 0
    rows.unlink()  # as an editor saving a new file over the old one would
    rows.write_text("a,b\n1,3\n")

    assert datasets.check_unchanged(project) == ["census"]
