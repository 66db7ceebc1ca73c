"""Unaligned performance MIDI: any folder of ``.mid`` files, and SUPRA (Welte-Mignon piano rolls).

Files are found once (sorted, so the order is stable) and read only when asked for.  Unreadable
files raise :class:`EspressivoError` on load; :meth:`MidiFolder.iter_performances` skips and counts them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from espressivo.core import Performance
from espressivo.data.paths import default_data_root, existing_dir
from espressivo.errors import EspressivoError
from espressivo.io import read_midi

MIDI_SUFFIXES = (".mid", ".midi")


@dataclass(frozen=True)
class MidiFile:
    path: Path
    name: str

    def load_performance(self) -> Performance:
        return read_midi(self.path)


class MidiFolder:
    def __init__(self, root: str | os.PathLike, *, recursive: bool = True):
        self.root = existing_dir(root, "MIDI")
        pattern = self.root.rglob("*") if recursive else self.root.glob("*")
        paths = sorted(p for p in pattern if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
        self.items = [MidiFile(p, str(p.relative_to(self.root))) for p in paths]
        self.failed: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[MidiFile]:
        return iter(self.items)

    def iter_performances(self) -> Iterator[tuple[MidiFile, Performance]]:
        """Yield ``(file, performance)`` for every readable file; failures go to ``self.failed``."""
        self.failed = []
        for item in self.items:
            try:
                yield item, item.load_performance()
            except EspressivoError as err:
                self.failed.append((item.name, str(err)))


def supra(root: str | os.PathLike | None = None) -> MidiFolder:
    """The SUPRA expression MIDI files (``midi-exp``): 456 historic piano-roll performances with pedal."""
    base = Path(root) if root is not None else default_data_root() / "supra"
    return MidiFolder(existing_dir(base, "SUPRA") / "midi-exp" if (base / "midi-exp").is_dir() else base)
