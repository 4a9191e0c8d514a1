"""The copy of Aeromancy a kernel inside a runtime imports.

Only `aeromancy.notebook` runs there, and with the data broker it needs the
standard library alone, so the copy is the package's Python files: no DVC and
none of Aeromancy's dependencies enter the runtime's environment. The copy is
named by the digest of its files, so a kernel built from one Aeromancy keeps
working while another is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

__all__ = ["digest", "files", "package_copy"]

_SKIPPED = {"__pycache__", "_templates"}


def files() -> dict[str, bytes]:
    """`{path under the copy: content}`: `aeromancy/**/*.py` and `py.typed`."""
    package = Path(__file__).resolve().parent.parent
    found = {}
    for folder, subfolders, names in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED)
        for name in sorted(names):
            if name.endswith(".py") or name == "py.typed":
                path = Path(folder, name)
                relative = path.relative_to(package.parent).as_posix()
                found[relative] = path.read_bytes()
    return found


def digest(contents: dict[str, bytes]) -> str:
    """sha256 (hex) over the copy's paths and contents."""
    total = hashlib.sha256()
    for name, data in sorted(contents.items()):
        total.update(f"{name}\0{len(data)}\0".encode())
        total.update(data)
    return total.hexdigest()


def package_copy(folder: Path) -> Path:
    """A copy of the package under `folder/client-<digest>/`; the folder to put
    on the kernel's `sys.path`. Made once per digest."""
    contents = files()
    target = folder / f"client-{digest(contents)[:16]}"
    if target.is_dir():
        return target
    partial = target.with_name(f".{target.name}.part")
    shutil.rmtree(partial, ignore_errors=True)
    for name, data in contents.items():
        path = partial / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    try:
        partial.rename(target)
    except OSError:  # another export made it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
        if not target.is_dir():
            raise
    return target
