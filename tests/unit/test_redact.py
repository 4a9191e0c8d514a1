"""Secrets: recognisable canary values never survive capture or redaction."""

from __future__ import annotations

import json

import pytest

from aeromancy.redact import (
    REDACTED,
    capture_env,
    is_secret_name,
    redact_argv,
    redact_text,
    redact_url,
    redact_value,
    secret_values,
)

CANARY_AWS = "CANARY-aws-Wq9zXv1"
CANARY_WANDB = "CANARY-wandb-77a1b2"
CANARY_TOKEN = "CANARY-token-c0ffee"
CANARY_URL_PASSWORD = "CANARY-urlpass-5e5e"
CANARY_ARG = "CANARY-argv-f00d42"
CANARIES = (CANARY_AWS, CANARY_WANDB, CANARY_TOKEN, CANARY_URL_PASSWORD, CANARY_ARG)

ENVIRON = {
    "AWS_SECRET_ACCESS_KEY": CANARY_AWS,
    "WANDB_API_KEY": CANARY_WANDB,
    "HF_TOKEN": CANARY_TOKEN,
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "4",
    "PATH": "/usr/bin",
    "HOME": "/home/someone",
    "DATABASE_URL": f"postgres://app:{CANARY_URL_PASSWORD}@db.local/x",
    "TOKENIZERS_PARALLELISM": "false",
    "SHORT_TOKEN": "abc",
}


def assert_no_canary(obj: object) -> None:
    text = json.dumps(obj)
    for canary in CANARIES:
        assert canary not in text


@pytest.mark.parametrize(
    "name",
    [
        "AWS_SECRET_ACCESS_KEY",
        "WANDB_API_KEY",
        "HF_TOKEN",
        "GITHUB_TOKEN",
        "MLFLOW_TRACKING_PASSWORD",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "client_secret",
        "--password",
        "--api-key",
        "accessToken",
        "apiKey",
        "db.passwd",
        "X-Amz-Signature",
        "Authorization",
        "token",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "LANG",
        "PATH",
        "PWD",
        "TOKENIZERS_PARALLELISM",
        "max_tokens",
        "author",
        "key",
        "keyboard",
        "monkey",
        "passes",
        "",
    ],
)
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_capture_env_is_default_deny() -> None:
    captured = capture_env(ENVIRON)
    assert captured == {
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "4",
        "TOKENIZERS_PARALLELISM": "false",
    }


def test_capture_env_pass_through_names_and_patterns() -> None:
    captured = capture_env(
        {**ENVIRON, "MYAPP_MODE": "fast", "MYAPP_SEED": "7"},
        pass_through=["HOME", "MYAPP_*", "DATABASE_URL", "HF_TOKEN", "ABSENT"],
    )
    assert captured == {
        "DATABASE_URL": "postgres://db.local/x",
        "HF_TOKEN": REDACTED,
        "HOME": "/home/someone",
        "LANG": "C.UTF-8",
        "MYAPP_MODE": "fast",
        "MYAPP_SEED": "7",
        "OMP_NUM_THREADS": "4",
        "TOKENIZERS_PARALLELISM": "false",
    }
    assert_no_canary(captured)


def test_capture_env_hides_secret_values_under_ordinary_names() -> None:
    captured = capture_env(
        {**ENVIRON, "MYAPP_MODE": f"use {CANARY_WANDB} here"}, pass_through=["MYAPP_*"]
    )
    assert captured["MYAPP_MODE"] == f"use {REDACTED} here"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"https://bob:{CANARY_URL_PASSWORD}@git.example/x.git",
            "https://git.example/x.git",
        ),
        ("https://bob@git.example/x.git", "https://git.example/x.git"),
        (
            f"s3://bucket/key?X-Amz-Signature={CANARY_ARG}&versionId=3#frag",
            f"s3://bucket/key?X-Amz-Signature={REDACTED}&versionId=3#frag",
        ),
        (
            f"https://api.example/v1?token={CANARY_TOKEN}&page=2",
            f"https://api.example/v1?token={REDACTED}&page=2",
        ),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("not a url", "not a url"),
        ("https://host/a@b", "https://host/a@b"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_argv() -> None:
    argv = [
        "python",
        "train.py",
        "--password",
        CANARY_ARG,
        f"--token={CANARY_TOKEN}",
        f"API_KEY={CANARY_ARG}",
        "--remote",
        f"https://u:{CANARY_URL_PASSWORD}@h.example/r",
        f"--note=saw {CANARY_AWS} in the logs",
        "--lr=0.1",
        "--epochs",
        "3",
    ]
    redacted = redact_argv(argv, ENVIRON)
    assert redacted == [
        "python",
        "train.py",
        "--password",
        REDACTED,
        f"--token={REDACTED}",
        f"API_KEY={REDACTED}",
        "--remote",
        "https://h.example/r",
        f"--note=saw {REDACTED} in the logs",
        "--lr=0.1",
        "--epochs",
        "3",
    ]


def test_redact_argv_reads_this_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", CANARY_TOKEN)
    assert redact_argv(["echo", CANARY_TOKEN]) == ["echo", REDACTED]


def test_short_secret_values_are_not_hunted() -> None:
    assert "abc" not in secret_values(ENVIRON)
    assert redact_text("abcdef abc", secret_values(ENVIRON)) == "abcdef abc"


def test_redact_value_walks_nested_config() -> None:
    config = {
        "tracker": {"kind": "wandb", "api_key": CANARY_WANDB, "entity": "team"},
        "remote": {"url": f"https://u:{CANARY_URL_PASSWORD}@s3.example/b"},
        "stages": [{"cmd": f"train --secret {CANARY_AWS}"}, ("keep", 3, None)],
        "Password": None,
        "max_tokens": 512,
        7: "numeric keys are kept",
    }
    redacted = redact_value(config, ENVIRON)
    assert redacted == {
        "tracker": {"kind": "wandb", "api_key": REDACTED, "entity": "team"},
        "remote": {"url": "https://s3.example/b"},
        "stages": [{"cmd": f"train --secret {REDACTED}"}, ("keep", 3, None)],
        "Password": REDACTED,
        "max_tokens": 512,
        7: "numeric keys are kept",
    }
    assert_no_canary({str(k): v for k, v in redacted.items()})
    assert config["tracker"]["api_key"] == CANARY_WANDB  # the input is untouched
