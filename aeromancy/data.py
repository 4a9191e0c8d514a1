"""Data: the DVC remote that holds datasets, stage outputs and run records.

A remote is an S3-like bucket and prefix (AWS S3, Ceph RGW, MinIO, Garage, with
an optional endpoint, region and profile) or, on one machine, a local folder.
Credentials never pass through here: boto reads them from the AWS environment
or the named profile.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aeromancy.errors import RemoteError

__all__ = [
    "DVC_REMOTE_NAME",
    "Remote",
    "check_reachable",
    "configure_dvc_remote",
    "default_local_remote",
    "parse_remote",
]

DVC_REMOTE_NAME = "aeromancy"
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


def parse_remote(
    url: str,
    endpoint: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> Remote:
    """Check the shape of a remote URL; local paths are made absolute."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not _BUCKET.match(parts.netloc):
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
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ProfileNotFound,
    )

    where = remote.endpoint or "AWS S3"
    try:
        session = boto3.session.Session(
            profile_name=remote.profile, region_name=remote.region
        )
        client = session.client(
            "s3",
            endpoint_url=remote.endpoint,
            config=BotoConfig(
                connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}
            ),
        )
        client.head_bucket(Bucket=remote.bucket)
    except ProfileNotFound:
        raise RemoteError(
            f"AWS profile '{remote.profile}' is not configured; "
            "check ~/.aws/config or drop --profile"
        ) from None
    except NoCredentialsError:
        raise RemoteError(
            f"no AWS credentials for {remote.url}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or pass --profile"
        ) from None
    except EndpointConnectionError:
        raise RemoteError(
            f"remote {remote.url} is unreachable: cannot connect to {where}; "
            "check --endpoint and that the server is running"
        ) from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            raise RemoteError(
                f"bucket '{remote.bucket}' does not exist at {where}; create it first"
            ) from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId"):
            raise RemoteError(
                f"access denied to bucket '{remote.bucket}' at {where}; "
                "check the AWS credentials or --profile"
            ) from None
        raise RemoteError(f"remote {remote.url} refused access: {code}") from None
    except BotoCoreError as exc:
        raise RemoteError(f"remote {remote.url} is unreachable: {exc}") from None
