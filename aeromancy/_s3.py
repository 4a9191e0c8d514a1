"""Pushing a DVC cache's objects to an S3 remote with boto3's transfer manager.

DVC's own S3 client (s3fs) sends a large file in waves of parts and costs a
second client stack to import; boto3's transfer manager keeps every connection
busy, across files and across the parts of one file. The objects go to the
keys DVC itself uses under the remote's prefix (`files/md5/ab/cdef...`), so DVC
and a stock `dvc pull` find them. Files go first; a directory's listing goes
last, and only once every file it lists is in the remote, because DVC reads a
listing in the remote as the promise that its files are there too. An
interrupted push therefore leaves nothing that claims more than is there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy import data
from aeromancy._objects import listing
from aeromancy._stall import Watch, watched
from aeromancy.errors import RemoteError

__all__ = ["Pushed", "push_objects"]

log = logging.getLogger(__name__)

# boto3's and the AWS CLI's own defaults: 8 MiB parts, sent in parallel, above
# 8 MiB. Measured against moto, they beat 64 MiB parts (0.79x vs 0.64x of a
# plain boto3 upload script, 256 MiB); one PUT up to 512 MiB was faster still
# against a server on the same machine, but a single stream is slower over a
# real link and restarts from zero when it breaks. `multipart_threshold` and
# `multipart_chunksize` in the `s3` section of the profile in ~/.aws/config
# override both, as for `aws s3 cp`.
MULTIPART_THRESHOLD = 8 * 2**20
PART_SIZE = 8 * 2**20
# Above this many objects one listing of the prefix beats a HEAD for each.
_LIST_ABOVE = 500


@dataclass(frozen=True)
class Pushed:
    """What `push_objects` sent: file objects and their bytes, and what it could not."""

    files: int
    nbytes: int
    missing: int


def push_objects(
    remote: data.Remote,
    cache: Any,
    odb: Any,
    objs: set[Any],
    jobs: int,
    progress: Any = None,
) -> Pushed:
    """Send the objects of `objs` the remote lacks; directory listings last.

    `cache` and `odb` are DVC's local cache and the remote's object database
    (for their paths only); `objs` holds file and directory hashes, directories
    already expanded into their files.
    """
    client = data.s3_client(remote)
    keys = {h.value: _key(odb, h.value) for h in objs}
    present = _existing(client, remote, odb, keys, jobs)

    files = [h for h in objs if not h.isdir and h.value not in present]
    local = {h.value: cache.oid_to_path(h.value) for h in files}
    sizes = {oid: _size(path) for oid, path in local.items()}
    absent = {oid for oid, size in sizes.items() if size is None}
    send = [h for h in files if h.value not in absent]
    nbytes = sum(sizes[h.value] or 0 for h in send)
    if progress:
        progress.start(len(send), nbytes)

    jobs_ = [(h.value, local[h.value], keys[h.value]) for h in send]
    failed = _upload(client, remote, jobs_, jobs, progress)
    there = (present | {h.value for h in send}) - set(failed)
    listings = [h for h in objs if h.isdir and h.value not in present]
    complete = [h for h in listings if _members(cache, h) <= there]
    jobs_ = [(h.value, cache.oid_to_path(h.value), keys[h.value]) for h in complete]
    failed.update(_upload(client, remote, jobs_, jobs, None))
    if failed:
        first = next(iter(failed.values()))
        log.debug("push failed", exc_info=first)
        raise _explain(first, remote, len(failed), len(send) + len(complete))
    return Pushed(len(send), nbytes, len(absent))


def push_workspace(
    root: Path, remote: data.Remote, jobs: int, progress: Any = None
) -> Pushed | None:
    """The S3 push of the whole workspace, its objects read from the DVC files
    (`_objects.py`) instead of an opened DVC repository; None when DVC must
    be asked (a layout `_objects` does not read, a remote DVC sees otherwise)."""
    from aeromancy import _objects
    from aeromancy._dvc_transfer import dvc_errors

    if not _dvc_remote_is(root, remote):
        return None
    cache = _objects.LocalCache(data.cache_dir(root) or root / ".dvc" / "cache")
    objs = _objects.workspace_objects(root, cache.path)
    if objs is None:
        return None
    bucket_path = f"{remote.bucket}/{remote.prefix}".rstrip("/")
    odb = _objects.RemoteLayout(bucket_path)
    with dvc_errors(remote):
        return push_objects(remote, cache, odb, objs, jobs, progress)


def _dvc_remote_is(root: Path, remote: data.Remote) -> bool:
    """Whether DVC's default remote is `remote` as Aeromancy configured it: the
    same URL, and no options that change where objects go."""
    from configobj import ConfigObj  # type: ignore[import-untyped]  # DVC's reader

    merged: dict[str, Any] = {}
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        if path.is_file():
            found = ConfigObj(str(path))
            merged.setdefault("core", {}).update(found.get("core", {}))
            for section, values in found.items():
                if section.startswith("remote "):
                    merged.setdefault(section, {}).update(values)
    name = merged.get("core", {}).get("remote")
    section = merged.get(f'remote "{name}"', {})
    if section.get("url") != remote.url:
        return False
    layout = ("version_aware", "worktree")
    return not any(str(section.get(key, "")).lower() == "true" for key in layout)


def _key(odb: Any, oid: str) -> str:
    # The database's path is "bucket/prefix/files/md5"; a key has no bucket.
    return str(odb.oid_to_path(oid)).split("/", 1)[1]


def _existing(
    client: Any, remote: data.Remote, odb: Any, keys: dict[str, str], jobs: int
) -> set[str]:
    """The object ids among `keys` that the remote has."""
    if len(keys) > _LIST_ABOVE:
        listed = set(_list(client, remote.bucket, _key(odb, "00").rsplit("/", 1)[0]))
        return {oid for oid, key in keys.items() if key in listed}

    def exists(item: tuple[str, str]) -> str | None:
        from botocore.exceptions import ClientError

        oid, key = item
        try:
            client.head_object(Bucket=remote.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                return None
            raise
        return oid

    try:
        with ThreadPoolExecutor(max_workers=min(jobs, data.MAX_CONNECTIONS)) as pool:
            return {oid for oid in pool.map(exists, keys.items()) if oid}
    except Exception as exc:
        raise data.explain_s3_error(exc, remote) from None


def _list(client: Any, bucket: str, prefix: str) -> Iterable[str]:
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix.rstrip('/')}/"
    )
    for page in pages:
        for entry in page.get("Contents", []):
            yield entry["Key"]


def _upload(
    client: Any,
    remote: data.Remote,
    items: list[tuple[str, str, str]],
    jobs: int,
    progress: Any,
) -> dict[str, BaseException]:
    """Upload each (object id, local path, key); return the failures by object id."""
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    if not items:
        return {}
    settings = TransferConfig(
        **{
            "multipart_threshold": MULTIPART_THRESHOLD,
            "multipart_chunksize": PART_SIZE,
            "max_concurrency": min(jobs, data.MAX_CONNECTIONS),
            **_profile_settings(client),
        }
    )
    watch = Watch()
    subscribers = [_subscriber(progress, watch)]
    failures: dict[str, BaseException] = {}

    def upload_all() -> None:
        with create_transfer_manager(client, settings) as manager:
            futures = [
                (oid, manager.upload(path, remote.bucket, key, subscribers=subscribers))
                for oid, path, key in items
            ]
            for oid, future in futures:
                try:
                    future.result()
                except Exception as exc:
                    failures[oid] = exc

    watched(upload_all, watch, remote.shown)
    return failures


def _profile_settings(client: Any) -> dict[str, int]:
    """Part settings from the `s3` section of the client's AWS profile.

    The keys and units are the AWS CLI's: `multipart_threshold = 64MB`.
    """
    section = getattr(client.meta.config, "s3", None) or {}
    return {
        key: _bytes(section[key])
        for key in ("multipart_threshold", "multipart_chunksize")
        if key in section
    }


def _bytes(value: Any) -> int:
    text = str(value).strip().upper().removesuffix("B")
    for suffix, factor in (("KI", 2**10), ("MI", 2**20), ("GI", 2**30)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    for suffix, factor in (("K", 2**10), ("M", 2**20), ("G", 2**30)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def _subscriber(progress: Any, watch: Watch) -> Any:
    from s3transfer.subscribers import BaseSubscriber  # type: ignore[import-untyped]

    class Subscriber(BaseSubscriber):  # type: ignore[misc]
        def on_progress(self, future: Any, bytes_transferred: int, **_: Any) -> None:
            watch.touch()
            if progress:
                progress.advance(bytes_transferred)

    return Subscriber()


def _members(cache: Any, hash_info: Any) -> set[str]:
    try:
        return listing(cache, hash_info.value)
    except (OSError, ValueError, KeyError, TypeError):
        return {"<listing missing>"}


def _explain(
    exc: BaseException, remote: data.Remote, failed: int, tried: int
) -> RemoteError:
    try:
        return data.explain_s3_error(exc, remote)
    except Exception:
        return RemoteError(
            f"{failed} of {tried} objects did not reach {remote.url} "
            f"({type(exc).__name__}: {exc}); rerun `aero data push`"
        )


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None
