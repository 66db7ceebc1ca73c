"""The data model every part of espressivo uses: Performance, Score, Alignment."""

from espressivo.core.alignment import Alignment
from espressivo.core.performance import (
    CONTROL_DTYPE,
    NOTE_DTYPE,
    PIANO_MAX_PITCH,
    PIANO_MIN_PITCH,
    SOFT,
    SOSTENUTO,
    SUSTAIN,
    Performance,
)
from espressivo.core.score import Score
from espressivo.core.timemap import TimeMap

__all__ = [
    "CONTROL_DTYPE",
    "NOTE_DTYPE",
    "PIANO_MAX_PITCH",
    "PIANO_MIN_PITCH",
    "SOFT",
    "SOSTENUTO",
    "SUSTAIN",
    "Alignment",
    "Performance",
    "Score",
    "TimeMap",
]
