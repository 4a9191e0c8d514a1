"""The Nix runtime against real Nix, with local flakes that build offline.

The stock `nix` client checks what Aeromancy recorded: `nix path-info -r --json`
gives the same closure, `nix flake metadata --json` the same locked inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from aeromancy.config import RuntimeConfig
from aeromancy.manifest import NixClosure
from aeromancy.runtime import nixcli, nixshell
from aeromancy.runtime.nix import STATE, NixRuntime, current_system
from tests.conftest import git, local_flake

pytestmark = pytest.mark.nix

SETTINGS = RuntimeConfig(kind="nix")


@pytest.fixture
def flake(nix: str, tmp_path: Path) -> Path:
    """A git repository holding `LOCAL_FLAKE`, committed."""
    root = tmp_path / "flake"
    root.mkdir()
    git(root, "init", "--quiet")
    (root / "flake.nix").write_text(local_flake())
    git(root, "add", "flake.nix")
    git(root, "commit", "--quiet", "-m", "flake")
    return root


def stock(*args: str, cwd: Path) -> object:
    done = subprocess.run(
        ["nix", *args, "--json"], cwd=cwd, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def commit(root: Path, name: str, text: str) -> None:
    (root / name).write_text(text)
    git(root, "add", name)
    git(root, "commit", "--quiet", "-m", f"change {name}")


def test_the_recorded_closure_is_what_nix_path_info_says(flake: Path) -> None:
    runtime = NixRuntime(flake, SETTINGS)
    built = runtime.build()

    info = stock("path-info", "--recursive", built.image, cwd=flake)
    closure = NixClosure.from_path_info(info)
    assert runtime.manifest().nix_closure == closure
    assert {entry.name for entry in closure.entries} == {
        "aero-test-shell",
        "aero-test-tools",
    }
    assert all(e.nar_hash.startswith("sha256-") for e in closure.entries)
    # The GC root keeps the runtime alive across `nix-collect-garbage`.
    assert os.readlink(flake / STATE / "runtime") == built.image


def test_the_runtime_node_is_sealed_with_the_closure_digest(flake: Path) -> None:
    runtime = NixRuntime(flake, SETTINGS)
    node = runtime.describe()

    closure = runtime.manifest().nix_closure
    assert closure is not None
    assert node["kind"] == "nix"
    assert node["sealed"] is True
    assert node["id"] == runtime.id and len(node["id"]) == 64
    assert node["nix_digest"] == closure.digest
    assert node["debian_digest"] is None and node["python_digest"] is None
    assert node["nix_inputs"] == {}


def test_an_unchanged_flake_is_read_from_the_cache_without_nix(
    flake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = NixRuntime(flake, SETTINGS).build()
    assert first.built
    assert first.reference == f"flake.nix#devShells.{current_system()}.default"

    def no_nix(*args: object, **kwargs: object) -> None:
        raise AssertionError("nix was called for an unchanged flake")

    monkeypatch.setattr(nixcli, "run", no_nix)
    again = NixRuntime(flake, SETTINGS).build()
    assert not again.built
    assert again.runtime_id == first.runtime_id
    assert again.image == first.image


def test_a_changed_flake_is_a_new_runtime(flake: Path) -> None:
    before = NixRuntime(flake, SETTINGS).build()
    commit(flake, "flake.nix", local_flake("changed"))

    after = NixRuntime(flake, SETTINGS).build()
    assert after.built
    assert after.runtime_id != before.runtime_id


def test_a_code_commit_keeps_the_runtime_id(flake: Path) -> None:
    before = NixRuntime(flake, SETTINGS).build()
    commit(flake, "train.py", "print('trained')\n")
    for cached in (flake / STATE).glob("*.json"):
        cached.unlink()  # ask Nix again: the flake's source hash has changed

    after = NixRuntime(flake, SETTINGS).build()
    assert after.built
    assert after.runtime_id == before.runtime_id


def test_a_cached_build_whose_output_is_gone_is_built_again(flake: Path) -> None:
    first = NixRuntime(flake, SETTINGS).build()
    (cached,) = (flake / STATE).glob("*.json")
    data = json.loads(cached.read_text())
    data["out"] = "/nix/store/00000000000000000000000000000000-collected"
    cached.write_text(json.dumps(data))

    again = NixRuntime(flake, SETTINGS).build()
    assert again.built
    assert again.image == first.image


def test_locked_inputs_are_recorded_as_nix_flake_metadata_has_them(
    flake: Path, tmp_path: Path
) -> None:
    source = tmp_path / "greeting"
    source.mkdir()
    (source / "flake.nix").write_text('{ outputs = { self }: { text = "hi"; }; }\n')
    text = local_flake().replace(
        "outputs = { self }:",
        f'inputs.greeting.url = "path:{source}";\n  outputs = {{ self, greeting }}:',
    )
    commit(flake, "flake.nix", text)
    subprocess.run(["nix", "flake", "lock"], cwd=flake, check=True, capture_output=True)
    git(flake, "add", "flake.lock")
    git(flake, "commit", "--quiet", "-m", "lock")

    runtime = NixRuntime(flake, SETTINGS)
    built = runtime.build()
    assert built.warnings == ()
    locked = runtime.describe()["nix_inputs"]["greeting"]
    metadata = stock("flake", "metadata", cwd=flake)
    stock_lock = metadata["locks"]["nodes"]["greeting"]["locked"]  # type: ignore[index]
    assert locked["narHash"] == stock_lock["narHash"]
    assert locked["path"] == str(source)


def test_an_unlocked_input_is_a_warning_and_not_cached(
    flake: Path, tmp_path: Path
) -> None:
    source = tmp_path / "greeting"
    source.mkdir()
    (source / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    text = local_flake().replace(
        "outputs = { self }:",
        f'inputs.greeting.url = "path:{source}";\n  outputs = {{ self, greeting }}:',
    )
    commit(flake, "flake.nix", text)

    built = NixRuntime(flake, SETTINGS).build()
    assert built.warnings == (
        "flake.lock does not pin every input of flake.nix, so the runtime may "
        "change under the same commit (and is not cached); run `nix flake lock` "
        "and commit flake.lock",
    )
    assert not (flake / "flake.lock").exists()
    assert not list((flake / STATE).glob("*.json"))


def test_stages_see_the_shells_environment_and_only_named_variables(
    flake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AERO_TEST_TOKEN", "passed")
    monkeypatch.setenv("AERO_SECRET", "kept out")
    monkeypatch.setenv("DVC_STAGE", "train")
    result = NixRuntime(flake, SETTINGS).realise()
    command = (
        "hello; echo $AERO_FROM_SHELL; command -v python3; echo $PATH; "
        "echo ${AERO_TEST_TOKEN-unset} ${AERO_SECRET-unset} $DVC_STAGE; "
        "echo ${NIX_BUILD_TOP-unset} $TMPDIR"
    )
    with nixshell.running(result, ["AERO_TEST_*"]):
        done = subprocess.run(
            [os.environ["SHELL"], "-c", command],
            capture_output=True,
            text=True,
            check=True,
        )
    tools = result.env["PATH"]
    assert done.stdout.splitlines() == [
        "hello from nix",
        "from-the-shell",
        f"{tools}/python3",
        tools,
        "passed unset train",
        f"unset {os.environ.get('TMPDIR', '/tmp')}",
    ]
    assert "SHELL" not in os.environ or "aero-nix" not in os.environ["SHELL"]


def test_the_shell_hook_runs_before_each_stage_as_nix_develop_runs_it(
    flake: Path,
) -> None:
    hook = "export AERO_FROM_HOOK=hooked-$AERO_FROM_SHELL; echo hook ran >&2"
    commit(flake, "flake.nix", local_flake(hook=hook))
    result = NixRuntime(flake, SETTINGS).realise()
    assert result.shell_hook == hook

    with nixshell.running(result, []):
        done = subprocess.run(
            [
                os.environ["SHELL"],
                "-c",
                "echo $AERO_FROM_HOOK ${AEROMANCY_SHELL_HOOK-gone}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    assert done.stdout == "hooked-from-the-shell gone\n"
    assert done.stderr == "hook ran\n"


def test_no_nix_on_path_is_one_line_naming_the_fix(
    flake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(nixcli.NixMissingError) as caught:
        NixRuntime(flake, SETTINGS).build()
    assert caught.value.message == (
        "the Nix runtime needs Nix, and there is no `nix` on PATH: install it "
        "(`apt-get install nix-bin` on Debian and Ubuntu) or use --runtime host"
    )


def test_a_flake_that_does_not_evaluate_shows_nix_s_key_line(flake: Path) -> None:
    commit(flake, "flake.nix", local_flake().replace("inherit system;", "x = y;", 1))
    with pytest.raises(nixcli.FlakeEvalError) as caught:
        NixRuntime(flake, SETTINGS).build()
    assert caught.value.message.startswith(
        "flake.nix does not evaluate: undefined variable 'y' (at flake.nix:"
    )
    assert "\n" not in caught.value.message


def test_a_flake_without_the_runtime_output_names_the_convention(flake: Path) -> None:
    commit(flake, "flake.nix", "{ outputs = { self }: { }; }\n")
    with pytest.raises(nixcli.FlakeEvalError) as caught:
        NixRuntime(flake, SETTINGS).build()
    message = caught.value.message
    assert "does not provide attribute" in message
    assert message.endswith(
        "; the Nix runtime is devShells.<system>.default in flake.nix"
    )


def test_an_untracked_flake_nix_says_to_git_add_it(nix: str, tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")
    (tmp_path / "README").write_text("x\n")
    git(tmp_path, "add", "README")
    git(tmp_path, "commit", "--quiet", "-m", "x")
    (tmp_path / "flake.nix").write_text(local_flake())
    with pytest.raises(nixcli.FlakeEvalError) as caught:
        NixRuntime(tmp_path, SETTINGS).build()
    assert caught.value.message.endswith("`git add flake.nix`")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("path:/nonexistent/aero-input", "getting status of '/nonexistent/aero-input'"),
        ("http://127.0.0.1:9/input.tar.gz", "unable to download"),
    ],
)
def test_an_input_that_cannot_be_fetched_is_named(
    flake: Path, url: str, said: str
) -> None:
    text = local_flake().replace(
        "outputs = { self }:",
        f'inputs.tools.url = "{url}";\n  outputs = {{ self, tools }}:',
    )
    commit(flake, "flake.nix", text)
    with pytest.raises(nixcli.FlakeInputError) as caught:
        NixRuntime(flake, SETTINGS).build()
    message = caught.value.message
    assert message.startswith(f"flake input 'tools' ({url}) cannot be fetched: ")
    assert said in message
    assert message.endswith("fix inputs.tools.url in flake.nix, or use --runtime host")


def test_a_derivation_that_fails_names_it_and_its_log(flake: Path) -> None:
    text = local_flake().replace("/bin/chmod +x $out/bin/hello", "exit 7")
    commit(flake, "flake.nix", text)
    with pytest.raises(nixcli.NixBuildError) as caught:
        NixRuntime(flake, SETTINGS).build()
    message = caught.value.message
    assert message.startswith(
        "building the Nix runtime failed: aero-test-tools failed with exit code 7; "
        "`nix log /nix/store/"
    )
    assert message.endswith("-aero-test-tools.drv` shows its log")


def test_failure_without_an_error_line_keeps_nix_s_last_line() -> None:
    error = nixcli.failure("warning: something\nKilled\n", Path("/nonexistent"))
    assert error.message == "nix failed: Killed"
