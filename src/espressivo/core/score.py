"""`Score`: what the composer wrote, as structured numpy arrays in beats and quarters.

``notes`` (built by :func:`score_note_dtype`), one row per written note::

    id                unicode  note id from the source (MusicXML ``n12``; ``n12-2`` = 2nd pass after unfolding)
    onset_beat        float64  onset in beats of the time signature in force (6/8: an eighth is one beat)
    duration_beat     float64
    onset_quarter     float64  onset in quarter notes from the start
    duration_quarter  float64
    pitch             int16    MIDI pitch
    voice, staff      int16    as written (0 where the source has none)
    part              int16    index of the part (instrument) in the source
    is_grace          bool     grace note (written duration 0)
    arpeggio          int8     rolled chord as marked (MusicXML ``<arpeggiate>``): 1 upwards, -1 downwards, 0 none

Markings, each a small structured array sorted by ``onset_quarter``: ``time_signatures``
(``beats``, ``beat_type``), ``key_signatures`` (``fifths``, ``mode``), ``tempo_markings``
(``qpm`` quarter notes per minute, ``text``), ``dynamics`` (``text``: pp, f, cresc., ...) and
``measures`` (``number``).  ``beat_from_quarter`` / ``quarter_from_beat`` map between the two
score time units (piecewise linear, one piece per time signature).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from espressivo.core.performance import NOTE_DTYPE, Performance
from espressivo.errors import EspressivoError

TIME_SIGNATURE_DTYPE = np.dtype([("onset_quarter", "f8"), ("onset_beat", "f8"), ("beats", "i2"), ("beat_type", "i2")])
KEY_SIGNATURE_DTYPE = np.dtype([("onset_quarter", "f8"), ("fifths", "i2"), ("mode", "U5")])
TEMPO_DTYPE = np.dtype([("onset_quarter", "f8"), ("qpm", "f8"), ("text", "U32")])
DYNAMICS_DTYPE = np.dtype([("onset_quarter", "f8"), ("text", "U32")])
MEASURE_DTYPE = np.dtype([("onset_quarter", "f8"), ("number", "i4")])
# per-note performance markings as read by partitura's note-feature functions (0..1 each; ramps for the
# spanners: 1 at a hairpin's / slur's / rit.'s start falling to 0 at its end for ``*_decr``, rising for ``*_incr``)
MARK_FIELDS = (
    "staccato", "accent", "tenuto", "fermata", "ornament", "sforzando", "slur_incr", "slur_decr",
    "crescendo", "diminuendo", "accelerando", "ritardando",
)  # fmt: skip
MARKS_DTYPE = np.dtype([(name, "f4") for name in MARK_FIELDS])

DEFAULT_QPM = 120.0
GRACE_NOTE_SEC = 0.07


def score_note_dtype(id_length: int = 16) -> np.dtype:
    return np.dtype(
        [
            ("id", f"U{max(1, id_length)}"),
            ("onset_beat", "f8"),
            ("duration_beat", "f8"),
            ("onset_quarter", "f8"),
            ("duration_quarter", "f8"),
            ("pitch", "i2"),
            ("voice", "i2"),
            ("staff", "i2"),
            ("part", "i2"),
            ("is_grace", "?"),
            ("arpeggio", "i1"),
        ]
    )


def _empty(dtype: np.dtype):
    return field(default_factory=lambda: np.zeros(0, dtype))


@dataclass(frozen=True, eq=False)
class Score:
    """A written score (see the module docstring for the arrays and their units)."""

    notes: np.ndarray
    time_signatures: np.ndarray = _empty(TIME_SIGNATURE_DTYPE)
    key_signatures: np.ndarray = _empty(KEY_SIGNATURE_DTYPE)
    tempo_markings: np.ndarray = _empty(TEMPO_DTYPE)
    dynamics: np.ndarray = _empty(DYNAMICS_DTYPE)
    measures: np.ndarray = _empty(MEASURE_DTYPE)
    title: str = ""
    unfolded: bool = False
    marks: np.ndarray | None = None  # MARKS_DTYPE per note row; None where the source has no markings (MIDI)

    def __post_init__(self) -> None:
        if self.notes.ndim != 1 or self.notes.dtype.names != score_note_dtype().names:
            raise EspressivoError("Score.notes must be a 1-D array built with score_note_dtype()")
        if self.marks is not None:
            if self.marks.dtype != MARKS_DTYPE or self.marks.shape != self.notes.shape:
                raise EspressivoError("Score.marks must be a MARKS_DTYPE array with one row per note")
            marks = np.ascontiguousarray(self.marks)
            marks.flags.writeable = False
            object.__setattr__(self, "marks", marks)
        for name in ("notes", "time_signatures", "key_signatures", "tempo_markings", "dynamics", "measures"):
            array = np.ascontiguousarray(getattr(self, name))
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.notes)

    def __repr__(self) -> str:
        return (
            f"Score(title={self.title!r}, notes={len(self.notes)}, measures={len(self.measures)}, "
            f"time_signatures={len(self.time_signatures)}, unfolded={self.unfolded})"
        )

    # ------------------------------------------------------------------ beat <-> quarter map
    def _map(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ts = self.time_signatures
        if len(ts) == 0:
            return np.zeros(1), np.zeros(1), np.ones(1)
        return ts["onset_quarter"], ts["onset_beat"], ts["beat_type"] / 4.0

    def beat_from_quarter(self, quarter: np.ndarray | float) -> np.ndarray:
        """Score position in beats (of the time signature in force) for positions in quarter notes."""
        q0, b0, rate = self._map()
        q = np.asarray(quarter, dtype=np.float64)
        k = np.clip(np.searchsorted(q0, q, side="right") - 1, 0, len(q0) - 1)
        return b0[k] + (q - q0[k]) * rate[k]

    def quarter_from_beat(self, beat: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`beat_from_quarter`."""
        q0, b0, rate = self._map()
        b = np.asarray(beat, dtype=np.float64)
        k = np.clip(np.searchsorted(b0, b, side="right") - 1, 0, len(b0) - 1)
        return q0[k] + (b - b0[k]) / rate[k]

    # ------------------------------------------------------------------ written tempo
    def seconds_from_quarter(self, quarter: np.ndarray | float, qpm: float | None = None) -> np.ndarray:
        """Clock time at the written tempo (tempo markings; ``qpm`` overrides them; 120 if none)."""
        q = np.asarray(quarter, dtype=np.float64)
        if qpm is not None:
            rate = float(qpm)
            if not (np.isfinite(rate) and rate > 0):
                raise EspressivoError(f"tempo must be a positive number of quarters per minute, got {rate}")
            return q * 60.0 / rate
        marks = self.tempo_markings[np.isfinite(self.tempo_markings["qpm"]) & (self.tempo_markings["qpm"] > 0)]
        if len(marks) == 0:
            return q * 60.0 / DEFAULT_QPM
        starts = np.concatenate([[0.0], marks["onset_quarter"][marks["onset_quarter"] > 0]])
        rates = np.concatenate([[marks["qpm"][0]], marks["qpm"][marks["onset_quarter"] > 0]])
        seconds_at_start = np.concatenate([[0.0], np.cumsum(np.diff(starts) * 60.0 / rates[:-1])])
        k = np.clip(np.searchsorted(starts, q, side="right") - 1, 0, len(starts) - 1)
        return seconds_at_start[k] + (q - starts[k]) * 60.0 / rates[k]

    def written_seconds(self, quarter: np.ndarray | float, mean_qpm: float | None = None) -> np.ndarray:
        """Clock time on the written time map (its tempo changes kept), scaled so that the notes' mean tempo is
        ``mean_qpm`` quarters per minute where given: the score as a renderer is asked to play it."""
        seconds = self.seconds_from_quarter(quarter)
        written = written_qpm(self) if mean_qpm is not None and len(self) else 0.0
        return seconds * (written / float(mean_qpm)) if written > 0 else seconds

    def to_performance(self, qpm: float | None = None, velocity: int = 64) -> Performance:
        """The deadpan performance: every note as written, at the written tempo, one velocity.

        Grace notes take :data:`GRACE_NOTE_SEC` just before their main note.
        """
        n = self.notes
        onset = self.seconds_from_quarter(n["onset_quarter"], qpm)
        offset = self.seconds_from_quarter(n["onset_quarter"] + n["duration_quarter"], qpm)
        shift = min(float(onset.min()), 0.0) if len(onset) else 0.0  # a pickup before quarter 0 starts at 0 s
        onset, offset = onset - shift, offset - shift
        grace = n["is_grace"]
        onset = np.where(grace, np.maximum(onset - GRACE_NOTE_SEC, 0.0), onset)
        offset = np.where(grace, onset + GRACE_NOTE_SEC, offset)
        notes = np.zeros(len(n), NOTE_DTYPE)
        notes["onset_sec"], notes["duration_sec"] = onset, np.maximum(offset - onset, 0.0)
        notes["pitch"], notes["velocity"], notes["track"] = n["pitch"], velocity, n["part"]
        notes["id"] = np.arange(len(n))  # index into Score.notes, not re-sorted
        return Performance(notes)

    @property
    def pickup_quarters(self) -> float:
        """The length of a pickup (a first bar shorter than its time signature), in quarters; 0.0 without one.
        A score with a pickup numbers it bar 0 (:attr:`first_bar`), as it is printed."""
        starts = np.sort(self.measures["onset_quarter"]) if len(self.measures) else np.zeros(0)
        if len(starts) < 2 or not len(self.time_signatures):
            return 0.0
        ts = self.time_signatures
        in_force = ts[ts["onset_quarter"] <= starts[0] + 1e-9]
        row = in_force[-1] if len(in_force) else ts[0]
        length = float(starts[1] - starts[0])
        return length if 0 < length < row["beats"] * 4.0 / row["beat_type"] - 1e-6 else 0.0

    @property
    def first_bar(self) -> int:
        """The number of the first bar as played: 0 for a pickup, else 1 (bars count on as played, repeats
        unfolded)."""
        return 0 if self.pickup_quarters else 1

    def index_of(self, ids: np.ndarray | list[str]) -> np.ndarray:
        """Row index in ``notes`` of each id; -1 where an id is not in the score."""
        ids = np.asarray(ids, dtype=str)
        order = np.argsort(self.notes["id"], kind="stable")
        sorted_ids = self.notes["id"][order]
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, max(len(order) - 1, 0))
        if len(order) == 0:
            return np.full(len(ids), -1)
        found = sorted_ids[pos] == ids
        return np.where(found, order[pos], -1)


def mean_qpm(quarters: np.ndarray, seconds: np.ndarray) -> float:
    """Quarter notes per minute from the first to the last onset (0 when undefined)."""
    span_q, span_t = float(quarters.max() - quarters.min()), float(seconds.max() - seconds.min())
    return 60.0 * span_q / span_t if span_q > 0 and span_t > 0 else 0.0


def written_qpm(score: Score) -> float:
    """The score's mean written tempo in quarter notes per minute."""
    q = score.notes["onset_quarter"]
    return mean_qpm(q, score.seconds_from_quarter(q))
