"""Secrets: what may leave the machine in a run record or a tracker, and what not.

Environment capture is default-deny: only an explicit allowlist of variables that
change how code behaves (locale, thread counts, visible devices, hash seeds) plus
the names a project configures is recorded, and a name that looks like a secret
is recorded as `<redacted>` even when configured. Argv, URLs and config values
are scrubbed of credentials: URL userinfo, secret-looking query parameters,
options and `NAME=value` pairs with secret-looking names, and any literal value
of a secret-named variable of the current environment.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ENV_ALLOWLIST",
    "REDACTED",
    "capture_env",
    "is_secret_name",
    "redact_argv",
    "redact_text",
    "redact_url",
    "redact_value",
    "secret_values",
]

REDACTED = "<redacted>"

#: Variables recorded by default: they change results or speed, never grant access.
ENV_ALLOWLIST = frozenset(
    {
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_COLLATE",
        "LC_CTYPE",
        "LC_NUMERIC",
        "LC_TIME",
        "TZ",
        "SOURCE_DATE_EPOCH",
        "PYTHONHASHSEED",
        "PYTHONUTF8",
        "PYTHONIOENCODING",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        "CUBLAS_WORKSPACE_CONFIG",
        "NVIDIA_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "PYTORCH_CUDA_ALLOC_CONF",
        "TF_DETERMINISTIC_OPS",
        "TF_CUDNN_DETERMINISTIC",
        "TOKENIZERS_PARALLELISM",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    }
)

#: Shorter values of secret-named variables are not hunted for inside text:
#: they would match ordinary words.
MIN_SECRET_LENGTH = 6

# A name is secret when one of these appears anywhere in it...
_SECRET_PARTS = (
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "APIKEY",
    "PRIVATEKEY",
)
# ...or one of these is a whole word of it (`max_tokens` and `author` are not)...
_SECRET_WORDS = frozenset(
    {"TOKEN", "AUTH", "AUTHORIZATION", "PASS", "COOKIE", "SIG", "SIGNATURE"}
)
# ...or it ends in `_KEY` (`AWS_SECRET_ACCESS_KEY`, `api-key`; a bare `key` is not).
_LAST_WORDS = frozenset({"KEY"})

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def is_secret_name(name: str) -> bool:
    """Whether a variable, option, query parameter or config key looks secret.

    Args:
        name: `WANDB_API_KEY`, `--password`, `accessToken`, `db.passwd`...
    """
    spaced = _CAMEL.sub(r"\1_\2", name).upper()
    words = [word for word in re.split(r"[^A-Z0-9]+", spaced) if word]
    if not words:
        return False
    joined = "".join(words)
    if any(part in joined for part in _SECRET_PARTS):
        return True
    if _SECRET_WORDS.intersection(words):
        return True
    return len(words) > 1 and words[-1] in _LAST_WORDS


def secret_values(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Values of the secret-named variables of `environ` (default: this process's),
    long enough to be searched for inside other text."""
    env = os.environ if environ is None else environ
    return frozenset(
        value
        for name, value in env.items()
        if len(value) >= MIN_SECRET_LENGTH and is_secret_name(name)
    )


def capture_env(
    environ: Mapping[str, str], pass_through: Iterable[str] = ()
) -> dict[str, str]:
    """The part of `environ` a run record may keep, sorted by name.

    Args:
        environ: the environment a stage runs with.
        pass_through: names (or `fnmatch` patterns such as `MYAPP_*`) the project
            configured on top of `ENV_ALLOWLIST`.

    Returns:
        Allowed names with their values; a secret-looking name keeps its name but
        its value is `<redacted>`, and URL credentials inside values are removed.
    """
    patterns = tuple(pass_through)
    secrets = secret_values(environ)
    captured: dict[str, str] = {}
    for name in sorted(environ):
        if name not in ENV_ALLOWLIST and not _matches(name, patterns):
            continue
        if is_secret_name(name):
            captured[name] = REDACTED
        else:
            captured[name] = redact_text(environ[name], secrets)
    return captured


def redact_url(url: str) -> str:
    """`url` without userinfo (`https://user:pass@host` → `https://host`) and with
    the values of secret-looking query parameters (`?token=`, `X-Amz-Signature=`)
    replaced by `<redacted>`. Text that is not a URL comes back unchanged."""
    url = _USERINFO.sub(r"\1", url)
    head, mark, rest = url.partition("?")
    if not mark:
        return url
    query, hash_mark, fragment = rest.partition("#")
    pairs = []
    for pair in query.split("&"):
        key, equals, _ = pair.partition("=")
        pairs.append(f"{key}={REDACTED}" if equals and is_secret_name(key) else pair)
    return f"{head}?{'&'.join(pairs)}{hash_mark}{fragment}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL in it passed through `redact_url` and every
    occurrence of one of `secrets` replaced by `<redacted>`."""
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_argv(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """A command line fit for a record.

    Redacts the value of `--password x`, `--token=x` and `API_KEY=x` (any
    secret-looking option or name), credentials in URLs, and any value of a
    secret-named variable of `environ` (default: this process's) wherever it
    appears.
    """
    secrets = secret_values(environ)
    redacted: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            redacted.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        name, equals, _ = arg.partition("=")
        if equals and is_secret_name(name):
            redacted.append(f"{name}={REDACTED}")
        elif arg.startswith("-") and not equals and is_secret_name(arg):
            redacted.append(arg)
            hide_next = True
        else:
            redacted.append(redact_text(arg, secrets))
    return redacted


def redact_value(obj: Any, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of `obj` (dicts, lists and tuples walked recursively) with values
    under secret-looking keys replaced by `<redacted>` and every string passed
    through `redact_text` with the secrets of `environ` (default: this
    process's). Other values are returned as they are."""
    return _walk(obj, secret_values(environ))


def _walk(obj: Any, secrets: frozenset[str]) -> Any:
    if isinstance(obj, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and is_secret_name(key)
            else _walk(value, secrets)
            for key, value in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        items = [_walk(item, secrets) for item in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    return obj


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
