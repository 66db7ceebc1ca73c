"""What a listener hears in generated piano music, as numbers set beside the same numbers for real music.

Per performance (a generated sample, a continuation, a real window), over ``[start, end)`` seconds:

==========================  ===========================================================================
``notes_per_sec``           notes struck per second
``polyphony_keys``          keys held down at once, on average over the time anything sounds or is held
``polyphony_pedal``         the same with the sustain pedal applied (notes sound until the pedal lifts)
``long_notes_share``        share of notes whose key is held >= 4 s (without the pedal)
``median_note_sec``         median key-down time
``pedal_per_min``           sustain presses a minute
``velocity_sd``             spread of the velocities
``mean_pitch``              mean MIDI pitch (the register)
``pitch_classes``           how often each of the 12 pitch classes is struck (duration-weighted)
``ioi_hist``                histogram of the times between successive onsets (0 for chord notes, then
                            log-spaced bins to 5 s)
==========================  ===========================================================================

Comparisons: the Jensen-Shannon distance between two sets' pooled IOI histograms, the correlation of two
pitch-class profiles, ratios of onset rates and pedalling, register shifts.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import SUSTAIN, Performance
from espressivo.evaluate.lm import js_distance  # noqa: F401  (music.js_distance: the comparisons use it)

LONG_NOTE_SEC = 4.0
GRID_SEC = 0.05
IOI_EDGES = np.concatenate([[0.0, 0.01], np.geomspace(0.02, 5.0, 24), [np.inf]])


def window(perf: Performance, start: float, end: float) -> Performance:
    """The notes struck in ``[start, end)`` and the pedal there (state restated at ``start``), rebased to 0."""
    return perf.slice(start, end, clip=False)


def stats(perf: Performance, seconds: float | None = None) -> dict:
    """The table above for one performance; ``seconds`` is its length (default: up to its last onset)."""
    notes = perf.notes
    length = float(seconds if seconds else (notes["onset_sec"].max() if len(notes) else 0.0)) or 1e-9
    onset, duration = notes["onset_sec"], notes["duration_sec"]
    out = {"notes": len(notes), "seconds": round(length, 3), "notes_per_sec": len(notes) / length}
    out["polyphony_keys"] = _polyphony(onset, duration, length)
    pedalled = perf.apply_sustain()
    out["polyphony_pedal"] = _polyphony(onset, pedalled.notes["duration_sec"], length)
    out["long_notes_share"] = float(np.mean(duration >= LONG_NOTE_SEC)) if len(notes) else 0.0
    out["median_note_sec"] = float(np.median(duration)) if len(notes) else 0.0
    down, _ = perf.pedal_intervals(SUSTAIN)
    out["pedal_per_min"] = float(np.count_nonzero(down > 1e-6)) / length * 60.0  # a state restated at 0 is no press
    out["velocity_sd"] = float(np.std(notes["velocity"])) if len(notes) > 1 else 0.0
    out["mean_pitch"] = float(np.mean(notes["pitch"])) if len(notes) else float("nan")
    weights = np.minimum(duration, 2.0) + 0.05
    out["pitch_classes"] = np.bincount(notes["pitch"] % 12, weights=weights, minlength=12).tolist()
    order = np.sort(onset)
    out["ioi_hist"] = np.histogram(np.diff(order), IOI_EDGES)[0].tolist()
    return out


def _polyphony(onset: np.ndarray, duration: np.ndarray, length: float) -> float:
    """Mean number of notes sounding at grid points where at least one does, up to ``length`` s."""
    if len(onset) == 0:
        return 0.0
    grid = np.arange(0.0, length, GRID_SEC)
    starts = np.searchsorted(grid, onset, side="left")
    ends = np.searchsorted(grid, onset + duration, side="left")
    counts = np.zeros(len(grid) + 1)
    np.add.at(counts, starts, 1)
    np.add.at(counts, ends, -1)
    sounding = np.cumsum(counts)[: len(grid)]
    busy = sounding > 0
    return float(sounding[busy].mean()) if busy.any() else 0.0


def pitch_class_r(a: dict, b: dict) -> float:
    x, y = np.asarray(a["pitch_classes"]), np.asarray(b["pitch_classes"])
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


SCALARS = ("notes_per_sec", "polyphony_keys", "polyphony_pedal", "long_notes_share", "median_note_sec",
           "pedal_per_min", "velocity_sd", "mean_pitch")  # fmt: skip


def summary(rows: list[dict]) -> dict:
    """Means of the scalar statistics over performances, and their pooled IOI histogram."""
    if not rows:
        return {}
    out = {k: round(float(np.nanmean([r[k] for r in rows])), 4) for k in SCALARS}
    out["count"] = len(rows)
    out["ioi_hist"] = np.sum([r["ioi_hist"] for r in rows], axis=0).tolist()
    return out


def relation(prompt: dict, after: dict) -> dict:
    """How a continuation (or a gap) relates to the music before it."""
    rate = prompt["notes_per_sec"]
    pedal = prompt["pedal_per_min"]
    return {
        "pitch_class_r": pitch_class_r(prompt, after),
        "onset_rate_ratio": after["notes_per_sec"] / rate if rate > 0 else float("nan"),
        "register_shift": after["mean_pitch"] - prompt["mean_pitch"],
        "pedal_ratio": after["pedal_per_min"] / pedal if pedal > 0 else float("nan"),
    }


def relations_summary(rows: list[dict]) -> dict:
    if not rows:
        return {}
    out = {}
    for key in ("pitch_class_r", "onset_rate_ratio", "pedal_ratio"):
        values = np.array([r[key] for r in rows], np.float64)
        out[key] = round(float(np.nanmedian(values)), 4) if np.isfinite(values).any() else None
    shifts = np.array([r["register_shift"] for r in rows], np.float64)
    out["register_shift_mean_abs"] = round(float(np.nanmean(np.abs(shifts))), 3)
    out["register_shift_mean"] = round(float(np.nanmean(shifts)), 3)
    out["count"] = len(rows)
    return out
