"""Data: the DVC remote that holds datasets, stage outputs and run records.

A remote is an S3-like bucket and prefix (AWS S3, Ceph RGW, MinIO, Garage, with
an optional endpoint, region and profile) or, on one machine, a local folder.
Credentials never pass through here: boto reads them from the AWS environment
or the named profile.

Every project of a user shares one local DVC cache (`setup_cache`), linked into
the workspace so that a dataset is stored once and is read-only where it is used.
Datasets themselves live in `aeromancy.datasets`, transfers in
`aeromancy.transfer`.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aeromancy import config
from aeromancy.errors import RemoteError
from aeromancy.redact import redact_url

__all__ = [
    "CACHE_LINK_TYPES",
    "DVC_REMOTE_NAME",
    "Remote",
    "cache_dir",
    "change_remote",
    "check_reachable",
    "configure_dvc_remote",
    "default_local_remote",
    "dvc_remote_overrides",
    "explain_s3_error",
    "is_bucket_name",
    "parse_remote",
    "project_remote",
    "s3_client",
    "setup_cache",
    "shared_cache_dir",
]

DVC_REMOTE_NAME = "aeromancy"
# No link costs space. A hardlink or symlink shares the cache's read-only file;
# a copy is the last resort, for a cache on a device that allows neither.
CACHE_LINK_TYPES = "hardlink,symlink,copy"
# Where the filesystem clones files (btrfs, XFS), a reflink is better still: the
# workspace file is writable without the cache's copy changing with it. DVC tries
# the first type on `dvc add` and copies if it fails, so it goes first only
# where it works.
REFLINK_FIRST = "reflink,hardlink,symlink,copy"
# Connections one S3 client keeps open: the most parallel transfers it serves.
MAX_CONNECTIONS = 64
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Remote:
    """Where a project's data lives: `s3://bucket/prefix` or a local folder."""

    url: str
    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    @property
    def bucket(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def prefix(self) -> str:
        return urlsplit(self.url).path.strip("/")

    @property
    def shown(self) -> str:
        """The remote as messages name it: its URL, and the endpoint if any."""
        if self.endpoint:
            return f"{self.url} at {redact_url(self.endpoint)}"
        return self.url


def is_bucket_name(name: str) -> bool:
    """Whether `name` is a valid S3 bucket name (lowercase, 3-63 characters)."""
    return bool(_BUCKET.match(name))


def parse_remote(
    url: str,
    endpoint: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> Remote:
    """Check the shape of a remote URL; local paths are made absolute."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not is_bucket_name(parts.netloc):
            raise RemoteError(
                f"malformed remote URL '{url}': '{parts.netloc}' is not a valid "
                "bucket name; use s3://bucket/prefix"
            )
    elif parts.scheme:
        raise RemoteError(
            f"malformed remote URL '{url}': scheme '{parts.scheme}' is not "
            "supported; use s3://bucket/prefix or a local folder path"
        )
    elif not url.strip():
        raise RemoteError("the remote URL is empty; use s3://bucket/prefix or a path")
    else:
        url = str(Path(url).expanduser().resolve())

    if endpoint is not None:
        endpoint_parts = urlsplit(endpoint)
        if endpoint_parts.scheme not in ("http", "https") or not endpoint_parts.netloc:
            raise RemoteError(
                f"malformed endpoint '{endpoint}'; use http(s)://host[:port]"
            )
        if parts.scheme != "s3":
            raise RemoteError("--endpoint applies to s3:// remotes only")
    return Remote(url=url, endpoint=endpoint, region=region, profile=profile)


def default_local_remote(project: str) -> str:
    """A fresh local remote folder for `project` in the user's data folder."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return str(base / "aeromancy" / "remotes" / f"{project}-{uuid.uuid4().hex[:8]}")


def project_remote(root: Path) -> Remote:
    """The remote in `[tool.aeromancy.remote]` of the project at `root`."""
    settings = config.load(root).remote
    if not settings.url:
        raise RemoteError(
            "pyproject.toml: tool.aeromancy.remote.url is not set; "
            "set one with `aero data remote URL`"
        )
    return parse_remote(
        settings.url, settings.endpoint, settings.region, settings.profile
    )


def change_remote(root: Path, remote: Remote) -> None:
    """Point the project at `root` to `remote`: pyproject.toml and `.dvc/config`.

    Both files change or neither does. The data is not copied: `aero data push`
    fills the new remote from the local cache.
    """
    check_reachable(remote)
    pyproject = root / "pyproject.toml"
    before = pyproject.read_bytes()
    values = {
        "url": remote.url,
        "endpoint": remote.endpoint,
        "region": remote.region,
        "profile": remote.profile,
    }
    config.set_table_values(pyproject, f"{config.TABLE}.remote", values)
    try:
        configure_dvc_remote(root, remote)
    except Exception:
        pyproject.write_bytes(before)
        raise


def cache_dir(root: Path) -> Path | None:
    """The DVC cache the project uses (`cache.dir` of `.dvc/config.local`, then
    `.dvc/config`); None for DVC's default inside the repository."""
    from configobj import ConfigObj  # type: ignore[import-untyped]  # DVC's reader

    for name in ("config.local", "config"):
        path = root / ".dvc" / name
        if not path.is_file():
            continue
        folder = ConfigObj(str(path)).get("cache", {}).get("dir")
        if folder:
            # DVC resolves a relative cache.dir against the config's folder.
            return (root / ".dvc" / Path(folder).expanduser()).resolve()
    return None


def shared_cache_dir() -> Path:
    """The DVC cache every project of this user shares."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "aeromancy" / "dvc-cache"


def setup_cache(root: Path, cache_dir: Path | None = None) -> Path:
    """Use the shared cache for the DVC repository at `root`; return its folder.

    Written to `.dvc/config.local`, which git ignores: the cache is this user's
    business, and a clone elsewhere works with DVC's defaults. Links make the
    workspace copy of a dataset read-only, so it cannot be edited in place.
    """
    from dvc.config import Config

    folder = (cache_dir or shared_cache_dir()).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    links = REFLINK_FIRST if _reflinks(folder, root / ".dvc") else CACHE_LINK_TYPES
    conf = Config(dvc_dir=root / ".dvc", validate=False)
    with conf.edit("local") as local:
        local["cache"]["dir"] = str(folder)
        local["cache"]["type"] = links
    return folder


def _reflinks(cache: Path, workspace: Path) -> bool:
    """Whether a file in `cache` can be cloned into `workspace`."""
    from dvc_objects.fs.system import reflink

    source = cache / f".aero-reflink-{uuid.uuid4().hex[:8]}"
    target = workspace / source.name
    try:
        source.write_bytes(b"probe")
        reflink(str(source), str(target))  # type: ignore[no-untyped-call]
    except OSError:
        return False
    finally:
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
    return True


@functools.cache
def s3_client(remote: Remote) -> Any:
    """The boto3 S3 client for `remote`'s endpoint, region and profile.

    A dead endpoint fails within seconds: one retry, a short connect timeout.
    """
    from botocore.config import Config as BotoConfig

    return _session(remote.profile, remote.region).client(
        "s3",
        endpoint_url=remote.endpoint,
        config=BotoConfig(
            max_pool_connections=MAX_CONNECTIONS,
            connect_timeout=3,
            retries={"mode": "standard", "max_attempts": 2},
        ),
    )


@functools.cache
def _session(profile: str | None, region: str | None) -> Any:
    import boto3

    return boto3.session.Session(profile_name=profile, region_name=region)


def dvc_remote_overrides(remote: Remote) -> dict[str, Any] | None:
    """Settings for DVC's client of `remote` in Aeromancy's own transfers: an
    S3 endpoint that stops answering fails a read in seconds, not botocore's
    60 s retried by botocore and s3fs (`_stall.py` bounds the whole transfer)."""
    if not remote.is_s3:
        return None
    return {"connect_timeout": 3, "read_timeout": 20}


def check_reachable(remote: Remote) -> None:
    """Raise `RemoteError` with the reason when `remote` cannot be used."""
    if remote.is_s3:
        _check_s3(remote)
    else:
        _check_local(Path(remote.url))


def configure_dvc_remote(root: Path, remote: Remote) -> None:
    """Make `remote` the default DVC remote of the repository at `root`.

    Written to `.dvc/config`, which is committed, so a fresh clone pulls with the
    stock `dvc pull`. Only the URL, endpoint, region and profile are written.
    """
    from dvc.config import Config

    config = Config(dvc_dir=root / ".dvc", validate=False)
    with config.edit("repo") as conf:
        section: dict[str, str] = {"url": remote.url}
        if remote.endpoint:
            section["endpointurl"] = remote.endpoint
        if remote.region:
            section["region"] = remote.region
        if remote.profile:
            section["profile"] = remote.profile
        conf["remote"][DVC_REMOTE_NAME] = section
        conf["core"]["remote"] = DVC_REMOTE_NAME


def _check_local(path: Path) -> None:
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RemoteError(f"remote folder {path} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RemoteError(f"remote folder {path} is not writable ({existing})")


def _check_s3(remote: Remote) -> None:
    try:
        s3_client(remote).head_bucket(Bucket=remote.bucket)
    except Exception as exc:
        raise explain_s3_error(exc, remote) from None


def explain_s3_error(
    exc: BaseException, remote: Remote, bucket: str | None = None
) -> RemoteError:
    """One line saying what went wrong with an S3 request, where, and the fix.

    `bucket` names another bucket of the same endpoint (an `s3://` source).
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ProfileNotFound,
    )

    url = remote.url if bucket in (None, remote.bucket) else f"s3://{bucket}"
    bucket = bucket or remote.bucket
    where = remote.endpoint or "AWS S3"
    if isinstance(exc, ProfileNotFound):
        return RemoteError(
            f"AWS profile '{remote.profile}' is not configured; "
            "check ~/.aws/config or drop --profile"
        )
    if isinstance(exc, NoCredentialsError):
        return RemoteError(
            f"no AWS credentials for {url}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or pass --profile"
        )
    if isinstance(exc, EndpointConnectionError) or _refused(exc):
        return RemoteError(
            f"remote {url} is unreachable: cannot connect to {where}; "
            "check --endpoint and that the server is running"
        )
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            return RemoteError(
                f"bucket '{bucket}' does not exist at {where}; create it first"
            )
        if code in _DENIED:
            return RemoteError(
                f"access denied to bucket '{bucket}' at {where}; "
                "check the AWS credentials or --profile"
            )
        return RemoteError(f"{url} at {where} refused the request: {code}")
    if isinstance(exc, BotoCoreError):
        return RemoteError(f"remote {url} is unreachable: {exc}")
    if isinstance(exc, OSError):
        return RemoteError(f"remote {url} at {where} failed: {exc}")
    raise exc


_DENIED = (
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
)


def _refused(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a refused or failed TCP connection."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError) or "Cannot connect to host" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
