"""Per-note score features for renderers (vectorised; one row per ``Score.notes`` row).

=====================  ==========================================================================
``pitch``              MIDI pitch
``duration_beat``      written duration in beats (0 for grace notes)
``ioi_beat``           beats to the next later onset (the last onset: its longest duration)
``beat_in_measure``    onset position within its measure, in beats from the barline
``measure_position``   the same as a fraction of the measure (0 = downbeat)
``is_downbeat``        onset on a barline
``ts_beats``           time signature numerator and denominator in force
``ts_beat_type``
``key_fifths``         key signature in force (sharps > 0, flats < 0) and mode (1 major, 0 minor, -1 unknown)
``key_mode``
``voice``, ``staff``   as written
``chord_size``         notes sharing the onset
``chord_rank``         0 = lowest note of its chord ... chord_size - 1 = highest
``is_top``             highest note of its onset (often the melody)
``is_grace``           grace note
``dynamic``            dynamics marking in force, -4 (pppp) .. +4 (ffff), 0 where none; mp = -0.5, mf = +0.5
``written_qpm``        metronome marking in force (quarters per minute), NaN where none
=====================  ==========================================================================
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Score

SCORE_FEATURE_DTYPE = np.dtype(
    [
        ("pitch", "i2"),
        ("duration_beat", "f4"),
        ("ioi_beat", "f4"),
        ("beat_in_measure", "f4"),
        ("measure_position", "f4"),
        ("is_downbeat", "?"),
        ("ts_beats", "i2"),
        ("ts_beat_type", "i2"),
        ("key_fifths", "i2"),
        ("key_mode", "i2"),
        ("voice", "i2"),
        ("staff", "i2"),
        ("chord_size", "i2"),
        ("chord_rank", "i2"),
        ("is_top", "?"),
        ("is_grace", "?"),
        ("dynamic", "f4"),
        ("written_qpm", "f4"),
    ]
)

DYNAMIC_LEVELS = {
    "pppp": -4.0, "ppp": -3.0, "pp": -2.0, "p": -1.0, "mp": -0.5,
    "mf": 0.5, "f": 1.0, "ff": 2.0, "fff": 3.0, "ffff": 4.0,
    "sf": 1.0, "sfz": 1.0, "fz": 1.0, "fp": 1.0, "rf": 1.0, "rfz": 1.0, "sffz": 2.0,
}  # fmt: skip


def _in_force(starts: np.ndarray, values: np.ndarray, at: np.ndarray, default) -> np.ndarray:
    """The value of the last marking at or before each position (``default`` before the first)."""
    if len(starts) == 0:
        return np.full(len(at), default, dtype=np.result_type(values.dtype, np.asarray(default).dtype))
    k = np.searchsorted(starts, at, side="right") - 1
    return np.where(k >= 0, values[np.maximum(k, 0)], default)


def score_features(score: Score) -> np.ndarray:
    n = score.notes
    q = n["onset_quarter"]
    out = np.zeros(len(n), SCORE_FEATURE_DTYPE)
    out["pitch"], out["duration_beat"] = n["pitch"], n["duration_beat"]
    out["voice"], out["staff"], out["is_grace"] = n["voice"], n["staff"], n["is_grace"]
    if len(n) == 0:
        return out
    # next later onset
    order = np.lexsort((n["pitch"], q))
    sorted_beats = n["onset_beat"][order]
    k = np.searchsorted(sorted_beats, n["onset_beat"], side="right")
    end = float((n["onset_beat"] + n["duration_beat"]).max())
    out["ioi_beat"] = np.where(k < len(n), sorted_beats[np.minimum(k, len(n) - 1)], end) - n["onset_beat"]
    # measures and signatures in force
    ts = score.time_signatures
    out["ts_beats"] = _in_force(ts["onset_quarter"], ts["beats"], q, 4)
    out["ts_beat_type"] = _in_force(ts["onset_quarter"], ts["beat_type"], q, 4)
    measures = score.measures
    if len(measures):
        bar_q = _in_force(measures["onset_quarter"], measures["onset_quarter"], q, 0.0)
        beat_in = n["onset_beat"] - score.beat_from_quarter(bar_q)
    else:
        beat_in = n["onset_beat"] % np.maximum(out["ts_beats"], 1)
    out["beat_in_measure"] = beat_in
    out["measure_position"] = beat_in / np.maximum(out["ts_beats"], 1)
    out["is_downbeat"] = np.abs(beat_in) < 1e-6
    ks = score.key_signatures
    out["key_fifths"] = _in_force(ks["onset_quarter"], ks["fifths"], q, 0)
    mode = np.where(ks["mode"] == "major", 1, np.where(ks["mode"] == "minor", 0, -1)).astype(np.int16)
    out["key_mode"] = _in_force(ks["onset_quarter"], mode, q, -1)
    # chords: notes sharing an onset, ranked by pitch
    key = np.rint(q[order] * 1e4).astype(np.int64)
    start = np.concatenate([[True], key[1:] != key[:-1]])
    group = np.cumsum(start) - 1
    size = np.bincount(group)[group]
    rank = np.arange(len(order)) - np.nonzero(start)[0][group]
    out["chord_size"][order], out["chord_rank"][order] = size, rank
    out["is_top"][order] = rank == size - 1
    # markings
    dyn = score.dynamics
    levels = np.array([DYNAMIC_LEVELS.get(str(t).strip().lower(), np.nan) for t in dyn["text"]], dtype=np.float64)
    known = ~np.isnan(levels)
    out["dynamic"] = _in_force(dyn["onset_quarter"][known], levels[known], q, 0.0)
    tm = score.tempo_markings[np.isfinite(score.tempo_markings["qpm"])]
    out["written_qpm"] = _in_force(tm["onset_quarter"], tm["qpm"], q, np.nan)
    return out
