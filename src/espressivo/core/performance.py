"""`Performance`: what a pianist played, as structured numpy arrays in seconds.

A performance is two arrays:

``notes`` (:data:`NOTE_DTYPE`), one row per key press::

    onset_sec     float64  key down, seconds from the start
    duration_sec  float64  key held (sound-off minus onset), seconds; >= 0
    pitch         int16    MIDI pitch 0..127 (the piano's keys are 21..108)
    velocity      int16    MIDI velocity 1..127
    track         int16    source track (after merging several tracks into one performance; MIDI
                           files: symusic's numbering of the tracks that hold notes, or the file's
                           own track number with ``pairing="partitura"``)
    id            int32    note id; for MIDI files this is partitura's ``n<id>`` numbering, which is
                           what the (n)ASAP alignment files refer to

``controls`` (:data:`CONTROL_DTYPE`), the pedals, sorted by time::

    time_sec      float64
    controller    int16    64 sustain, 66 sostenuto, 67 soft (una corda)
    value         int16    0..127; a pedal counts as down at value >= 64

Both arrays are read-only: every operation returns a new :class:`Performance`.  No operation
loops over notes in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from espressivo.errors import EspressivoError

SUSTAIN, SOSTENUTO, SOFT = 64, 66, 67
PEDAL_CONTROLLERS = (SUSTAIN, SOSTENUTO, SOFT)
PEDAL_THRESHOLD = 64
PIANO_MIN_PITCH, PIANO_MAX_PITCH = 21, 108  # A0 .. C8

NOTE_DTYPE = np.dtype(
    [
        ("onset_sec", "f8"),
        ("duration_sec", "f8"),
        ("pitch", "i2"),
        ("velocity", "i2"),
        ("track", "i2"),
        ("id", "i4"),
    ]
)
CONTROL_DTYPE = np.dtype([("time_sec", "f8"), ("controller", "i2"), ("value", "i2")])


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


def _validate_notes(notes: np.ndarray) -> None:
    if notes.dtype != NOTE_DTYPE or notes.ndim != 1:
        raise EspressivoError(f"notes must be a 1-D array of NOTE_DTYPE, got {notes.dtype} with ndim {notes.ndim}")
    if len(notes) == 0:
        return
    onset, duration = notes["onset_sec"], notes["duration_sec"]
    if not (np.isfinite(onset).all() and np.isfinite(duration).all()):
        raise EspressivoError("note onsets and durations must be finite")
    if onset.min() < 0 or duration.min() < 0:
        raise EspressivoError("note onsets and durations must be >= 0")
    if notes["pitch"].min() < 0 or notes["pitch"].max() > 127:
        raise EspressivoError("note pitches must lie in 0..127")
    if notes["velocity"].min() < 1 or notes["velocity"].max() > 127:
        raise EspressivoError("note velocities must lie in 1..127")


def _validate_controls(controls: np.ndarray) -> None:
    if controls.dtype != CONTROL_DTYPE or controls.ndim != 1:
        raise EspressivoError(f"controls must be a 1-D array of CONTROL_DTYPE, got {controls.dtype}")
    if len(controls) == 0:
        return
    if not np.isfinite(controls["time_sec"]).all() or controls["time_sec"].min() < 0:
        raise EspressivoError("control times must be finite and >= 0")
    if controls["value"].min() < 0 or controls["value"].max() > 127:
        raise EspressivoError("control values must lie in 0..127")
    if np.any(np.diff(controls["time_sec"]) < 0):
        raise EspressivoError("controls must be sorted by time")


def pedal_intervals(
    controls: np.ndarray, controller: int = SUSTAIN, end_sec: float = np.inf, threshold: int = PEDAL_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(down_sec, up_sec)``: the intervals during which ``controller`` is held down.

    A pedal still down at the end is released at ``end_sec``.
    """
    events = controls[controls["controller"] == controller]
    down = (events["value"] >= threshold).astype(np.int8)
    change = np.diff(np.concatenate([[0], down]))
    starts = events["time_sec"][change == 1]
    ends = events["time_sec"][change == -1]
    if len(ends) < len(starts):
        ends = np.concatenate([ends, [max(end_sec, starts[-1])]])
    return starts.astype(np.float64), ends.astype(np.float64)


@dataclass(frozen=True, eq=False)
class Performance:
    """A piano performance: notes and pedal controls in seconds (see the module docstring)."""

    notes: np.ndarray
    controls: np.ndarray = field(default_factory=lambda: np.zeros(0, CONTROL_DTYPE))

    def __post_init__(self) -> None:
        _validate_notes(self.notes)
        _validate_controls(self.controls)
        object.__setattr__(self, "notes", _frozen(self.notes))
        object.__setattr__(self, "controls", _frozen(self.controls))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        onset_sec: Sequence[float] | np.ndarray,
        duration_sec: Sequence[float] | np.ndarray,
        pitch: Sequence[int] | np.ndarray,
        velocity: Sequence[int] | np.ndarray | int = 64,
        *,
        track: Sequence[int] | np.ndarray | int = 0,
        controls: Iterable[tuple[float, int, int]] | np.ndarray = (),
    ) -> Performance:
        """Build a performance from plain arrays; notes are put in canonical order and numbered.

        ``controls`` is an iterable of ``(time_sec, controller, value)`` or a CONTROL_DTYPE array.
        """
        onset = np.asarray(onset_sec, dtype=np.float64)
        n = onset.shape[0] if onset.ndim == 1 else -1
        if n < 0:
            raise EspressivoError("onset_sec must be one-dimensional")
        notes = np.zeros(n, NOTE_DTYPE)
        try:
            notes["onset_sec"] = onset
            notes["duration_sec"] = np.asarray(duration_sec, dtype=np.float64)
            notes["pitch"] = _as_int_column(pitch, "pitch")
            notes["velocity"] = _as_int_column(velocity, "velocity")
            notes["track"] = _as_int_column(track, "track")
        except ValueError as err:  # shape mismatch
            raise EspressivoError(f"note arrays do not fit together: {err}") from None
        return cls(canonical_order(notes), make_controls(controls))

    @classmethod
    def empty(cls) -> Performance:
        return cls(np.zeros(0, NOTE_DTYPE))

    # ------------------------------------------------------------------ basic facts
    def __len__(self) -> int:
        return len(self.notes)

    def __repr__(self) -> str:
        return f"Performance(notes={len(self.notes)}, controls={len(self.controls)}, end_sec={self.end_sec:.3f})"

    @property
    def offset_sec(self) -> np.ndarray:
        """Key-release times (onset + duration)."""
        return self.notes["onset_sec"] + self.notes["duration_sec"]

    @property
    def end_sec(self) -> float:
        """Time of the last event (note release or pedal change); 0 for an empty performance."""
        ends = [0.0]
        if len(self.notes):
            ends.append(float(self.offset_sec.max()))
        if len(self.controls):
            ends.append(float(self.controls["time_sec"].max()))
        return max(ends)

    def pedal_intervals(self, controller: int = SUSTAIN) -> tuple[np.ndarray, np.ndarray]:
        """``(down_sec, up_sec)`` of each press of ``controller`` (value >= 64 counts as down)."""
        return pedal_intervals(self.controls, controller, end_sec=self.end_sec)

    def pedal_value_at(self, times_sec: np.ndarray | Sequence[float], controller: int = SUSTAIN) -> np.ndarray:
        """The controller's value (0..127) in force at each time (sample and hold; 0 before any event)."""
        times = np.asarray(times_sec, dtype=np.float64)
        events = self.controls[self.controls["controller"] == controller]
        idx = np.searchsorted(events["time_sec"], times, side="right") - 1
        values = np.concatenate([[0], events["value"]]).astype(np.int16)
        return values[idx + 1]

    # ------------------------------------------------------------------ operations (all return new objects)
    def apply_sustain(self, threshold: int = PEDAL_THRESHOLD) -> Performance:
        """Fold the sustain pedal into note durations, as Performance RNN does (Oore et al., sec. 6.1.3).

        A key released while the pedal is down keeps sounding until the pedal is released, or until
        the same key is struck again, whichever comes first.  Notes never get shorter.  The pedal
        events themselves are kept.
        """
        notes = self.notes.copy()
        if len(notes) == 0:
            return self
        down, up = pedal_intervals(self.controls, SUSTAIN, end_sec=self.end_sec, threshold=threshold)
        if len(down) == 0:
            return self
        onset, offset = notes["onset_sec"], self.offset_sec
        k = np.searchsorted(down, offset, side="right") - 1
        held = (k >= 0) & (offset < up[np.maximum(k, 0)])
        new_offset = np.where(held, up[np.maximum(k, 0)], offset)
        # the same key struck again while its earlier note is only held by the pedal ends that note
        order = np.lexsort((onset, notes["pitch"]))
        p_sorted, on_sorted = notes["pitch"][order], onset[order]
        key_sorted = _pitch_time_key(p_sorted, on_sorted)
        j = np.searchsorted(key_sorted, _pitch_time_key(notes["pitch"], offset), side="left")
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        j = np.where(j == position, j + 1, j)  # a zero-length note does not re-strike itself
        j_safe = np.minimum(j, len(order) - 1)
        restrike = (j < len(order)) & (p_sorted[j_safe] == notes["pitch"]) & held
        new_offset = np.where(restrike, np.minimum(new_offset, on_sorted[j_safe]), new_offset)
        notes["duration_sec"] = np.maximum(new_offset, offset) - onset
        return Performance(notes, self.controls)

    def transpose(self, semitones: int) -> tuple[Performance, np.ndarray]:
        """Shift every pitch by ``semitones``; return ``(performance, dropped)``.

        Notes that would leave the 88 piano keys (21..108) are removed from the performance and
        returned, untransposed, in ``dropped`` so the caller can report or count them.
        """
        semitones = int(semitones)
        new_pitch = self.notes["pitch"].astype(np.int32) + semitones
        keep = (new_pitch >= PIANO_MIN_PITCH) & (new_pitch <= PIANO_MAX_PITCH)
        notes = self.notes[keep].copy()
        notes["pitch"] = new_pitch[keep]
        return Performance(notes, self.controls), self.notes[~keep].copy()

    def time_stretch(self, factor: float) -> Performance:
        """Multiply every time and duration by ``factor`` (> 1 is slower)."""
        factor = float(factor)
        if not np.isfinite(factor) or factor <= 0:
            raise EspressivoError(f"time-stretch factor must be a positive number, got {factor}")
        notes, controls = self.notes.copy(), self.controls.copy()
        notes["onset_sec"] *= factor
        notes["duration_sec"] *= factor
        controls["time_sec"] *= factor
        return Performance(notes, controls)

    def adjust_velocity(self, scale: float = 1.0, shift: float = 0.0) -> Performance:
        """``velocity * scale + shift``, rounded and clamped to 1..127."""
        if not (np.isfinite(scale) and np.isfinite(shift)) or scale < 0:
            raise EspressivoError(f"velocity scale must be >= 0 and shift finite, got {scale}, {shift}")
        notes = self.notes.copy()
        notes["velocity"] = np.clip(np.rint(notes["velocity"] * float(scale) + float(shift)), 1, 127)
        return Performance(notes, self.controls)

    def slice(
        self, start_sec: float, end_sec: float | None = None, *, clip: bool = True, rebase: bool = True
    ) -> Performance:
        """The notes with onsets in ``[start_sec, end_sec)``.

        ``clip`` cuts notes sounding past ``end_sec``; ``rebase`` moves ``start_sec`` to time 0.
        Pedals down at ``start_sec`` stay down: their state is restated at the start of the slice.
        """
        end = np.inf if end_sec is None else float(end_sec)
        start = float(start_sec)
        if not (np.isfinite(start) and start >= 0 and end > start):
            raise EspressivoError(f"slice needs 0 <= start < end, got start={start_sec}, end={end_sec}")
        on = self.notes["onset_sec"]
        notes = self.notes[(on >= start) & (on < end)].copy()
        if clip and np.isfinite(end):
            notes["duration_sec"] = np.minimum(notes["onset_sec"] + notes["duration_sec"], end) - notes["onset_sec"]
        t = self.controls["time_sec"]
        inside = self.controls[(t > start) & (t < end)]
        state = np.zeros(len(PEDAL_CONTROLLERS), CONTROL_DTYPE)
        state["time_sec"] = start
        state["controller"] = PEDAL_CONTROLLERS
        state["value"] = [self.pedal_value_at([start], c)[0] for c in PEDAL_CONTROLLERS]
        controls = np.concatenate([state[state["value"] > 0], inside])
        if rebase:
            notes["onset_sec"] -= start
            controls["time_sec"] -= start
        return Performance(notes, controls)

    def deduplicate(self, tolerance_sec: float = 0.001) -> Performance:
        """Resolve overlapping notes of the same pitch, deterministically.

        A key cannot sound twice at once: notes of one pitch starting within ``tolerance_sec`` of
        each other are one key press (the loudest, then longest, is kept), and a note still held
        when its key is struck again is cut at the new onset.
        """
        if len(self.notes) < 2:
            return self
        notes = self.notes
        by_key = notes[np.lexsort((notes["onset_sec"], notes["pitch"]))]
        # presses of one key closer than the tolerance (chained) form one group
        new_group = np.concatenate(
            [[True], (by_key["pitch"][1:] != by_key["pitch"][:-1]) | (np.diff(by_key["onset_sec"]) > tolerance_sec)]
        )
        group = np.cumsum(new_group)
        # keep the loudest, then longest, then earliest press of each group
        pick = np.lexsort((by_key["onset_sec"], -by_key["duration_sec"], -by_key["velocity"], group))
        first = np.concatenate([[True], group[pick][1:] != group[pick][:-1]])
        s = by_key[np.sort(pick[first])].copy()
        nxt_same = np.concatenate([s["pitch"][1:] == s["pitch"][:-1], [False]])
        nxt_onset = np.concatenate([s["onset_sec"][1:], [np.inf]])
        offset = s["onset_sec"] + s["duration_sec"]
        cut = nxt_same & (offset > nxt_onset)
        s["duration_sec"] = np.where(cut, nxt_onset - s["onset_sec"], s["duration_sec"])
        return Performance(canonical_order(s, renumber=False), self.controls)

    @staticmethod
    def merge(performances: Sequence[Performance]) -> Performance:
        """Merge several performances (e.g. one per MIDI track) into one, keeping them apart by ``track``.

        Each input's tracks are offset past the previous ones; notes are re-numbered in canonical order.
        """
        notes, controls, next_track = [], [], 0
        for perf in performances:
            part = perf.notes.copy()
            part["track"] += next_track
            next_track = int(part["track"].max()) + 1 if len(part) else next_track + 1
            notes.append(part)
            controls.append(perf.controls)
        if not notes:
            return Performance.empty()
        return Performance(canonical_order(np.concatenate(notes)), sort_controls(np.concatenate(controls)))

    def sorted(self) -> Performance:
        """Notes in canonical order (onset, pitch, offset, track), re-numbered from 0."""
        return Performance(canonical_order(self.notes.copy()), self.controls)


# ---------------------------------------------------------------------- helpers


def _as_int_column(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise EspressivoError(f"{name} must be finite")
        array = np.rint(array)
    if array.dtype.kind not in "iuf" and not (array.dtype.kind == "b"):
        raise EspressivoError(f"{name} must be numeric")
    if array.size and (array.min() < -32768 or array.max() > 32767):
        raise EspressivoError(f"{name} out of range")
    return array.astype(np.int16)


def _pitch_time_key(pitch: np.ndarray, time_sec: np.ndarray) -> np.ndarray:
    """One sortable float per (pitch, time): pitches are 1e7 s apart, far beyond any performance."""
    return pitch.astype(np.float64) * 1e7 + time_sec


def canonical_order(notes: np.ndarray, renumber: bool = True) -> np.ndarray:
    """Sort notes by (onset, pitch, offset, track) — partitura's order — and number them 0..n-1."""
    offset = notes["onset_sec"] + notes["duration_sec"]
    notes = notes[np.lexsort((notes["track"], offset, notes["pitch"], notes["onset_sec"]))].copy()
    if renumber:
        notes["id"] = np.arange(len(notes))
    return notes


def sort_controls(controls: np.ndarray) -> np.ndarray:
    return controls[np.argsort(controls["time_sec"], kind="stable")]


def make_controls(controls: Iterable[tuple[float, int, int]] | np.ndarray) -> np.ndarray:
    """A CONTROL_DTYPE array, sorted by time, from ``(time_sec, controller, value)`` triples."""
    if isinstance(controls, np.ndarray) and controls.dtype == CONTROL_DTYPE:
        return sort_controls(controls.copy())
    rows = list(controls)
    array = np.zeros(len(rows), CONTROL_DTYPE)
    if rows:
        try:
            cols = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise EspressivoError("controls must be (time_sec, controller, value) triples") from None
        if cols.ndim != 2 or cols.shape[1] != 3:
            raise EspressivoError("controls must be (time_sec, controller, value) triples")
        array["time_sec"], array["controller"], array["value"] = cols[:, 0], cols[:, 1], cols[:, 2]
    return sort_controls(array)
