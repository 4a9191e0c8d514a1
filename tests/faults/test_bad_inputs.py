"""Bad inputs across config, CLI arguments, dataset names, URLs and run ids.

Each is refused with exit code 1 or 2 and one line on stderr, no traceback, and
writes nothing: the project's files, git's view of it and its local remote are
the same before and after. One project serves the whole module; each case
restores what it changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from aeromancy import config
from tests.conftest import run_aero
from tests.faults.conftest import snapshot

pytestmark = pytest.mark.bad_input

_shared: dict[str, Path] = {}


@pytest.fixture
def shared_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scaffolded project (host, no tracker, local remote) for the module,
    with a source folder to ingest next to it."""
    if "root" not in _shared:
        base = tmp_path_factory.mktemp("bad-inputs")
        made = run_aero(
            "init", str(base / "demo"), "--runtime", "host", "--tracker", "none"
        )
        assert made.exit_code == 0, made.stderr
        source = base / "source"
        source.mkdir()
        for index in range(2):
            digest = hashlib.sha256(str(index).encode()).hexdigest()
            (source / f"part-{index}.csv").write_text(f"a,b\n{digest},1\n")
        _shared["root"] = base / "demo"
        _shared["remote"] = Path(config.load(base / "demo").remote.url)
    return _shared["root"]


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


#: (case id, edit of pyproject.toml, aero arguments, what the one line says)
CONFIG = [
    (
        "runtime-kind",
        replace('kind = "host"', 'kind = "dockr"'),
        ["repro"],
        "tool.aeromancy.runtime.kind must be one of",
    ),
    (
        "tracker-kind",
        replace('kind = "none"', 'kind = "neptune"'),
        ["repro"],
        "tool.aeromancy.tracker.kind must be one of",
    ),
    (
        "tracker-kind-type",
        replace('kind = "none"', "kind = 3"),
        ["data", "status"],
        "tool.aeromancy.tracker.kind must be a string",
    ),
    (
        "unknown-key",
        replace("require_pushed = false", "require_pushed = false\ncolour = 1"),
        ["repro", "--dev"],
        "tool.aeromancy.colour is not a known key",
    ),
    (
        "bool-as-string",
        replace("require_pushed = false", 'require_pushed = "yes"'),
        ["repro"],
        "tool.aeromancy.require_pushed must be true or false",
    ),
    (
        "list-as-string",
        replace("apt_packages = []", 'apt_packages = "curl"'),
        ["build"],
        "tool.aeromancy.runtime.apt_packages must be a list of strings",
    ),
    (
        "list-of-ints",
        replace("apt_packages = []", "apt_packages = [1, 2]"),
        ["repro"],
        "must be a list of strings (got [1, 2])",
    ),
    (
        "table-of-ints",
        replace("pass_env = []", "pass_env = []\nbuild_args = {A = 1}"),
        ["repro"],
        "tool.aeromancy.runtime.build_args must be a table of strings",
    ),
    (
        "wandb-mode",
        replace('kind = "none"', 'kind = "wandb"\nmode = "sometimes"'),
        ["runs", "list"],
        "tool.aeromancy.tracker.mode must be one of offline, online",
    ),
    (
        "malformed-toml",
        lambda text: text + "\n[tool.aeromancy\n",
        ["repro"],
        "malformed TOML",
    ),
    (
        "duplicate-key",
        replace('kind = "host"', 'kind = "host"\nkind = "nix"'),
        ["repro"],
        'malformed TOML: Key "kind" already exists',
    ),
    (
        "no-table",
        lambda text: text.split("# Aeromancy:")[0],
        ["repro", "--dev"],
        "(no [tool.aeromancy] in pyproject.toml)",
    ),
    (
        "mlflow-uri",
        replace('kind = "none"', 'kind = "mlflow"\ntracking_uri = "htp://x"'),
        ["repro"],
        "has a scheme MLflow does not know",
    ),
    # URLs in the config
    (
        "remote-scheme",
        replace('url = "/', 'url = "ftp://host/'),
        ["data", "status"],
        "scheme 'ftp' is not supported",
    ),
    (
        "remote-bucket",
        replace('url = "/', 'url = "s3://Bad_Bucket/'),
        ["runs", "list"],
        "'Bad_Bucket' is not a valid bucket name",
    ),
    (
        "endpoint-local",
        replace('url = "/', 'endpoint = "http://127.0.0.1:9"\nurl = "/'),
        ["data", "push"],
        "--endpoint applies to s3:// remotes only",
    ),
    (
        "endpoint-shape",
        replace('url = "/', 'endpoint = "nohost"\nurl = "s3://aero-x/'),
        ["data", "status"],
        "malformed endpoint 'nohost'",
    ),
]


@pytest.mark.parametrize(
    ("edit", "args", "says"),
    [pytest.param(e, a, s, id=i) for i, e, a, s in CONFIG],
)
def test_bad_config_is_one_line_and_writes_nothing(
    shared_project: Path, edit: Callable[[str], str], args: list[str], says: str
) -> None:
    pyproject = shared_project / "pyproject.toml"
    good = pyproject.read_text()
    pyproject.write_text(edit(good))
    try:
        refused_cleanly(shared_project, args, says)
    finally:
        pyproject.write_text(good)


#: (case id, aero arguments with {source} for the dataset source, the line says)
ARGUMENTS = [
    # CLI arguments: usage errors (exit 2) and refused values (exit 1)
    (
        "runtime-choice",
        ["repro", "--runtime", "dockr"],
        "'dockr' is not one of docker, nix, host; see `aero repro -h`",
    ),
    ("unknown-option", ["repro", "--bogus"], "No such option: --bogus"),
    ("unknown-command", ["nosuchcommand"], "No such command 'nosuchcommand'"),
    ("unknown-subcommand", ["runs", "nosuch"], "see `aero runs -h`"),
    ("jobs-zero", ["data", "push", "--jobs", "0"], "'--jobs' / '-j'"),
    ("jobs-text", ["data", "push", "--jobs", "abc"], "'--jobs' / '-j'"),
    (
        "tracker-choice",
        ["init", "{base}/new", "--tracker", "neptune"],
        "'neptune' is not one of wandb, mlflow, none",
    ),
    (
        "unknown-stage",
        ["repro", "nosuchstage"],
        "unknown stage 'nosuchstage' in dvc.yaml",
    ),
    (
        "dev-with-runtime",
        ["repro", "--dev", "--runtime", "docker"],
        "--dev runs on the host, untracked; drop --runtime",
    ),
    ("not-an-output", ["data", "push", "nope/x"], "nope/x is not a tracked output"),
    # dataset names
    (
        "name-escapes",
        ["data", "ingest", "{source}", "--name", "../escape"],
        "invalid dataset name '../escape'",
    ),
    (
        "name-slash",
        ["data", "ingest", "{source}", "--name", "a/b"],
        "invalid dataset name 'a/b'",
    ),
    (
        "name-empty",
        ["data", "ingest", "{source}", "--name", ""],
        "invalid dataset name ''",
    ),
    (
        "name-dvc",
        ["data", "ingest", "{source}", "--name", "x.dvc"],
        "invalid dataset name 'x.dvc'",
    ),
    (
        "name-hidden",
        ["data", "ingest", "{source}", "--name", ".hidden"],
        "invalid dataset name '.hidden'",
    ),
    (
        "versions-escapes",
        ["data", "versions", "../etc"],
        "invalid dataset name '../etc'",
    ),
    (
        "versions-unknown",
        ["data", "versions", "nosuch"],
        "no dataset 'nosuch' in the history",
    ),
    ("source-missing", ["data", "ingest", "{base}/nowhere.csv"], "does not exist"),
    # URLs: remotes, endpoints, sources
    (
        "remote-scheme",
        ["data", "remote", "ftp://host/x"],
        "scheme 'ftp' is not supported",
    ),
    (
        "remote-bucket",
        ["data", "remote", "s3://A_B/x"],
        "'A_B' is not a valid bucket name",
    ),
    ("remote-empty", ["data", "remote", ""], "the remote URL is empty"),
    (
        "endpoint-shape",
        ["data", "remote", "s3://aero-x/p", "--endpoint", "notaurl"],
        "malformed endpoint 'notaurl'",
    ),
    (
        "endpoint-local",
        ["data", "remote", "{base}/x", "--endpoint", "http://127.0.0.1:9"],
        "--endpoint applies to s3:// remotes only",
    ),
    (
        "endpoint-dead",
        ["data", "remote", "s3://aero-x/p", "--endpoint", "http://127.0.0.1:9"],
        "is unreachable: cannot connect to http://127.0.0.1:9",
    ),
    ("source-bucket", ["data", "ingest", "s3:///x"], "malformed source 's3:///x'"),
    (
        "source-scheme",
        ["data", "ingest", "http://example.invalid/x.csv"],
        "does not exist",
    ),
    (
        "init-remote",
        ["init", "{base}/new", "--remote", "ftp://h/x"],
        "scheme 'ftp' is not supported",
    ),
    # run ids
    (
        "run-unknown",
        ["runs", "show", "nope"],
        "no run 'nope' in .aeromancy/runs or the remote",
    ),
    ("run-path", ["runs", "show", "../../etc/passwd"], "no run '../../etc/passwd'"),
    ("run-empty", ["runs", "show", ""], "no run ''"),
    ("diff-unknown", ["runs", "diff", "nope", "nada"], "no run 'nope'"),
    (
        "rerun-unknown",
        ["rerun", "20240101-000000-abcdef"],
        "no run '20240101-000000-abcdef'",
    ),
    (
        "rerun-set",
        ["rerun", "nope", "--set", "garbage"],
        "--set 'garbage' is not KEY=VALUE",
    ),
]


@pytest.mark.parametrize(
    ("args", "says"), [pytest.param(a, s, id=i) for i, a, s in ARGUMENTS]
)
def test_bad_argument_is_one_line_and_writes_nothing(
    shared_project: Path, args: list[str], says: str
) -> None:
    base = shared_project.parent
    filled = [a.format(source=base / "source", base=base) for a in args]
    refused_cleanly(shared_project, filled, says)
    assert not (base / "new").exists()
    assert not (shared_project / "data" / "escape").exists()


def refused_cleanly(root: Path, args: list[str], says: str) -> None:
    """`aero ARGS` in `root` exits 1 or 2 with one line saying `says`, and
    leaves the project and its local remote as they were."""
    watched = [root, _shared["remote"]]
    before = snapshot(*watched)

    result = run_aero(*args, cwd=root)

    assert result.exit_code in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.lines) == 1, result.stderr
    assert result.lines[0].startswith("error: "), result.lines
    assert says in result.lines[0]
    assert result.stdout == ""
    assert snapshot(*watched) == before
