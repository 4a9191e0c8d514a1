"""DVC's Python API, opened the way Aeromancy needs it.

Importing dvc installs handlers that print its INFO chatter to stdout, which is
reserved for data here. `open_repo` takes them off once, so that DVC's warnings
reach stderr through the root logger and its info only shows with `-v`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

__all__ = ["open_repo", "quiet"]


@functools.cache
def quiet() -> None:
    """Import dvc and route its loggers through ours."""
    import dvc  # noqa: F401  (its import installs the handlers we take off)

    for name in ("dvc", "dvc_objects", "dvc_data"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def open_repo(root: Path, remote_config: dict[str, Any] | None = None) -> Any:
    """A `dvc.repo.Repo` for the project at `root`; use it as a context manager.

    `remote_config` overrides settings of the default remote for this repo only.
    """
    quiet()
    from dvc.repo import Repo

    return Repo(str(root), remote_config=remote_config)
