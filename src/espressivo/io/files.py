"""Atomic file writing: a reader never sees a half-written file, a crash never leaves one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from espressivo.errors import EspressivoError


def make_parent(path: Path) -> None:
    """Create ``path``'s folder, or refuse in one line (``path`` a folder, a file where a folder should be)."""
    if path.is_dir():
        raise EspressivoError(f"{path}: is a directory")
    blocking = next((p for p in path.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise EspressivoError(f"{path}: cannot write ({blocking} is a file, not a folder)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EspressivoError(f"{path}: cannot write ({err.strerror or err})") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise EspressivoError(f"{path}: cannot write ({err.strerror or err})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise EspressivoError(f"{path}: cannot write ({err.strerror or err})") from None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
