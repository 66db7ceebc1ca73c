"""Where the studio keeps uploaded scores and rendered takes: one folder, bounded in size and age.

Every file lives at ``root/<id>/<name>`` where ``id`` is a random 16-hex-digit name the store made and
``name`` one of a fixed set (:data:`NAMES`); nothing else is ever read or served, so a request cannot reach
outside the store whatever it names.  :meth:`Store.prune` drops entries older than ``max_age_sec`` and then the
oldest ones until the store is under ``max_bytes`` (entries in use are kept).
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import time
from pathlib import Path

from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes

ID = re.compile(r"^[0-9a-f]{16}$")
NAMES = frozenset({"score", "performance.mid", "tempo-mapped.mid", "audio.wav"})
PAGE = re.compile(r"^notation-[1-9][0-9]{0,2}\.svg$")  # a score's engraved pages (studio/notation.py)


class Store:
    def __init__(self, root: Path, max_bytes: int = 512 * 2**20, max_age_sec: float = 24 * 3600):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise EspressivoError(f"{self.root}: the studio's store must be a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EspressivoError(f"{self.root}: cannot make the studio's store ({err.strerror or err})") from None
        self.max_bytes, self.max_age_sec = int(max_bytes), float(max_age_sec)
        self.lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(8)

    def path(self, entry: str, name: str) -> Path:
        """The file ``name`` of entry ``entry``; anything but a store id and a known name is refused."""
        if not isinstance(entry, str) or not ID.match(entry) or not (name in NAMES or PAGE.match(str(name))):
            raise EspressivoError("no such file in the studio")
        return self.root / entry / name

    def write(self, entry: str, name: str, data: bytes) -> Path:
        path = self.path(entry, name)
        atomic_write_bytes(path, data)
        return path

    def remove(self, entry: str) -> None:
        """Entry ``entry`` and all its files (a store id only)."""
        if isinstance(entry, str) and ID.match(entry):
            shutil.rmtree(self.root / entry, ignore_errors=True)

    def prune(self, in_use: set[str]) -> list[str]:
        """Bound the store by what it keeps: entries older than the age bound go; over the size bound, the audio
        of the least recently heard takes goes first (it is made again when asked for, from the take's MIDI), and
        only then, should the MIDI and scores alone exceed the bound, the oldest entries.  Returns the ids dropped
        whole."""
        with self.lock:
            entries = sorted((_age(p), p) for p in self.root.iterdir() if p.is_dir() and ID.match(p.name))
            dropped, now = [], time.time()
            sizes = {p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for _, p in entries}
            total = sum(sizes.values())
            for mtime, p in entries:
                if p.name not in in_use and now - mtime > self.max_age_sec:
                    shutil.rmtree(p, ignore_errors=True)
                    total -= sizes.pop(p)
                    dropped.append(p.name)
            audio = sorted((f.stat().st_atime, f) for p in sizes if p.name not in in_use
                           for f in [p / "audio.wav"] if f.is_file())  # fmt: skip
            for _, f in audio:
                if total <= self.max_bytes:
                    break
                size = f.stat().st_size
                f.unlink(missing_ok=True)
                total -= size
                sizes[f.parent] -= size
            for _, p in entries:
                if total <= self.max_bytes:
                    break
                if p in sizes and p.name not in in_use:
                    shutil.rmtree(p, ignore_errors=True)
                    total -= sizes.pop(p)
                    dropped.append(p.name)
            return dropped


def _age(entry: Path) -> float:
    """When an entry was last written: its newest file but the audio (removing audio for room touches the folder)."""
    times = [f.stat().st_mtime for f in entry.iterdir() if f.is_file() and f.name != "audio.wav"]
    return max(times) if times else entry.stat().st_mtime
