"""The time map of a performance: score position -> seconds.

A performance of a score plays each distinct score onset at some time; its notes' mean onset is the point of
the map there (chord asynchrony averages out), and between points the map is linear.  Score positions are
equal to 1e-4 (beats or quarters, whichever unit is given).  Every layer that needs "where in the score is
this second" or "what tempo is played here" reads it from here: re-timing and rolled chords (``render/``), the
phrase renderer's beat curves (``features/phrase.py``), the editable tempo-mapped MIDI, the evaluation's
micro-timing.

>>> tm = TimeMap.of(onset_beat, onset_sec)      # one point per distinct onset, non-decreasing in time
>>> tm(np.arange(4.0))                          # seconds at beats 0..3
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def onset_keys(position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct positions, the group of each note), positions equal to 1e-4."""
    key = np.rint(np.asarray(position, dtype=np.float64) * 1e4).astype(np.int64)
    unique, group = np.unique(key, return_inverse=True)
    return unique / 1e4, group.reshape(-1)


@dataclass(frozen=True)
class TimeMap:
    position: np.ndarray  # distinct score positions, increasing
    seconds: np.ndarray  # the mean onset of their notes (non-decreasing when ``monotone``)
    count: np.ndarray  # notes at each position
    group: np.ndarray  # the point of each note the map was made from

    @classmethod
    def of(cls, position: np.ndarray, onset_sec: np.ndarray, monotone: bool = True) -> TimeMap:
        """The map of notes at score ``position`` played at ``onset_sec``; ``monotone``: a point earlier than
        the one before it is raised to it (a running maximum), so the map can be inverted."""
        unique, group = onset_keys(position)
        count = np.bincount(group)
        seconds = np.bincount(group, weights=np.asarray(onset_sec, dtype=np.float64)) / count
        return cls(unique, np.maximum.accumulate(seconds) if monotone else seconds, count, group)

    def __call__(self, position: np.ndarray | float) -> np.ndarray:
        """Seconds at score positions (held constant beyond the first and last point)."""
        return np.interp(position, self.position, self.seconds)

    def slope(self) -> np.ndarray:
        """Seconds per unit of score position between consecutive points."""
        return np.diff(self.seconds) / np.maximum(np.diff(self.position), 1e-6)
