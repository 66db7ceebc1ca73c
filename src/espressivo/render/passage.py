"""Re-rendering a passage: bars m..n of a rendering replaced by another rendering's, the rest kept note for note.

:func:`splice_passage` takes two renderings of one score (``notes["id"]`` = score rows) and the bars to replace
(counted as played from the first bar's printed number, 0 for a pickup, else 1: repeats unfolded, the bars go on
counting).  Inside the passage the new rendering's
notes are laid between the times the old one reached the passage's first and last beat (a linear warp of the
new timing: its rubato and articulation kept, the seams meeting the old timing exactly); velocities glide from
the old to the new level over the passage's first and last beat; the sustain pedal inside is the new one's,
with the old one's state restored at the end.  Notes outside the passage are the old rendering's, unchanged.

>>> again = render(pretrained, score, options.replace(seed=7))[0].performance
>>> splice_passage(score, take, again, first_bar=2, last_bar=3)
"""

from __future__ import annotations

import numpy as np

from espressivo.core import SUSTAIN, Performance, Score, TimeMap
from espressivo.core.performance import canonical_order, make_controls
from espressivo.errors import EspressivoError

EDGE_BEATS = 1.0  # velocities cross-fade over this much at each seam


def bar_span(score: Score, first_bar: int, last_bar: int) -> tuple[float, float]:
    """Score beats ``[start, end)`` of bars ``first_bar..last_bar``, counted as played from ``score.first_bar``
    (1, or 0 for a pickup, as printed)."""
    starts = np.sort(score.measures["onset_quarter"]) if len(score.measures) else np.zeros(0)
    low, high = score.first_bar, score.first_bar + len(starts) - 1
    if not (low <= first_bar <= last_bar <= high):
        raise EspressivoError(f"bars must lie in {low}..{high} with first <= last, got {first_bar}..{last_bar}")
    a, b = first_bar - low, last_bar - low  # measure indices
    end_q = starts[b + 1] if b + 1 < len(starts) else float(
        (score.notes["onset_quarter"] + score.notes["duration_quarter"]).max()
    )  # fmt: skip
    return float(score.beat_from_quarter(starts[a])), float(score.beat_from_quarter(end_q))


def _pedal_at(perf: Performance, t: float) -> int:
    sustain = perf.controls[perf.controls["controller"] == SUSTAIN]
    before = sustain[sustain["time_sec"] <= t]
    return int(before["value"][-1]) if len(before) else 0


def splice_passage(score: Score, old: Performance, new: Performance, first_bar: int, last_bar: int) -> Performance:
    """``old`` with bars ``first_bar..last_bar`` taken from ``new`` (module docstring)."""
    if len(old) != len(new) or not np.array_equal(np.sort(old.notes["id"]), np.sort(new.notes["id"])):
        raise EspressivoError("both renderings must play every note of the same score")
    b0, b1 = bar_span(score, first_bar, last_bar)
    beat_old = score.notes["onset_beat"][old.notes["id"]]
    beat_new = score.notes["onset_beat"][new.notes["id"]]
    map_old, map_new = TimeMap.of(beat_old, old.notes["onset_sec"]), TimeMap.of(beat_new, new.notes["onset_sec"])
    t0, t1 = float(map_old(b0)), float(map_old(b1))
    u0, u1 = float(map_new(b0)), float(map_new(b1))
    if b1 > beat_old.max():  # the passage runs to the end: it ends where the old rendering's last note ends
        t1, u1 = float(old.end_sec), float(new.end_sec)
    scale = (t1 - t0) / (u1 - u0) if u1 > u0 else 1.0
    inside_new = (beat_new >= b0 - 1e-9) & (beat_new < b1 - 1e-9)
    inside_old = (beat_old >= b0 - 1e-9) & (beat_old < b1 - 1e-9)
    if not inside_new.any():
        raise EspressivoError(f"bars {first_bar}..{last_bar} have no notes to render again")
    kept = old.notes[~inside_old]
    moved = new.notes[inside_new].copy()
    moved["onset_sec"] = t0 + (moved["onset_sec"] - u0) * scale
    moved["duration_sec"] = moved["duration_sec"] * scale
    # velocities: from the old level to the new over the first beat, back over the last
    old_velocity = np.zeros(len(score))
    old_velocity[old.notes["id"]] = old.notes["velocity"]
    beat = score.notes["onset_beat"][moved["id"]]
    weight = np.clip(np.minimum(beat - b0, b1 - beat) / EDGE_BEATS, 0.0, 1.0)
    blended = weight * moved["velocity"] + (1 - weight) * old_velocity[moved["id"]]
    moved["velocity"] = np.clip(np.rint(blended), 1, 127)
    notes = canonical_order(np.concatenate([kept, moved]), renumber=False)
    outside = (old.controls["time_sec"] < t0) | (old.controls["time_sec"] >= t1)
    inner = new.controls[(new.controls["time_sec"] >= u0) & (new.controls["time_sec"] < u1)].copy()
    inner["time_sec"] = t0 + (inner["time_sec"] - u0) * scale
    seams = [(t0, SUSTAIN, _pedal_at(new, u0)), (t1, SUSTAIN, _pedal_at(old, t1))]
    controls = make_controls([*map(tuple, np.concatenate([old.controls[outside], inner]).tolist()), *seams])
    return Performance(notes, controls)
