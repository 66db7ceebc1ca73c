"""Atomic file writing: a reader never sees a half-written file, a crash never leaves one; and no file this
process read as input is ever written over.

While a command runs (:func:`guarding_inputs`, entered by the CLI for each command), every reader checks its file
with :func:`espressivo.io.safety.check_file`, which records it here (:func:`note_input`), and every writer goes
through :func:`check_output` (``atomic_write_bytes`` does), which refuses a path that was read as input, whatever
name led to it (``-o``, a numbered variation, a derived ``.wav``/``.png``, a symlink).  Commands still check their
planned outputs before any work; this is the net under them.  A command that updates its own state files (a
corpus index it re-reads) writes them with ``own=True``; a long-running server that reads and rewrites its own
store turns the guard off (:func:`protect_inputs`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from espressivo.errors import EspressivoError

_INPUTS: set[str] = set()
_PROTECT = [False]  # on while a CLI command runs


def _key(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def note_input(path: str | os.PathLike) -> None:
    """Remember ``path`` as an input of this process."""
    if _PROTECT[0]:
        _INPUTS.add(_key(path))


def protect_inputs(on: bool) -> None:
    """Switch the input guard on or off for this process (off: a server writing its own store)."""
    _PROTECT[0] = on
    if not on:
        _INPUTS.clear()


class guarding_inputs:
    """The input guard on for the block (one command), forgotten after it."""

    def __enter__(self):
        _INPUTS.clear()
        _PROTECT[0] = True
        return self

    def __exit__(self, *exc):
        _PROTECT[0] = False
        _INPUTS.clear()
        return False


def check_output(path: str | os.PathLike) -> None:
    """Refuse, in one line, to write over a file this process read as input."""
    if _PROTECT[0] and _key(path) in _INPUTS:
        raise EspressivoError(f"{path}: that is an input; write the result to another file")


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes, own: bool = False) -> None:
    """Write ``data`` to ``path`` atomically; ``own``: the file is the command's own state (it may have read it)."""
    path = Path(path)
    if not own:
        check_output(path)
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
        raise EspressivoError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:  # whatever stopped the write (an error, Ctrl-C, SIGTERM): no partial file is left
        Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
