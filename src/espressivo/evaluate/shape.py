"""How a performance is shaped, measured the same way for renderings and pianists (``evaluate render``).

* ``velocity_sd`` — the spread of velocities inside one performance (flat dynamics: small).
* ``melody_lead`` — at every score onset of two or more notes, the velocity of the top note minus the mean
  of the others, averaged over the onsets (the melody voiced above its accompaniment: Performance RNN's and
  the pianists' +5 to +10).
* ``pedal_per_minute`` — sustain presses (CC64 crossing 64 upwards) per minute of the performance.

Per piece a rendering is set beside that piece's pianists: ``pedal_ratio`` is its presses per minute over
their median (1 = as often as they press), and the report gives the median ratio over pieces.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import SUSTAIN, Performance, Score
from espressivo.core.timemap import onset_keys


def melody_lead(score: Score, velocity: np.ndarray, played: np.ndarray) -> float:
    """Mean (top note - mean of the others) velocity over the score onsets with at least two played notes;
    ``velocity`` per score note (score rows), ``played`` which of them were played."""

    rows = np.flatnonzero(played & ~score.notes["is_grace"])
    if len(rows) < 2:
        return float("nan")
    _, group = onset_keys(score.notes["onset_beat"][rows])
    pitch = score.notes["pitch"][rows].astype(np.int64)
    vel = np.asarray(velocity, dtype=np.float64)[rows]
    count = np.bincount(group)
    top_pitch = np.full(len(count), -1)
    np.maximum.at(top_pitch, group, pitch)
    is_top = pitch == top_pitch[group]
    total = np.bincount(group, weights=vel)
    tops = np.bincount(group, weights=is_top.astype(np.float64))
    top_sum = np.bincount(group, weights=np.where(is_top, vel, 0.0))
    chords = (count >= 2) & (tops < count)
    if not chords.any():
        return float("nan")
    top_mean = top_sum[chords] / tops[chords]
    rest_mean = (total[chords] - top_sum[chords]) / (count[chords] - tops[chords])
    return float(np.mean(top_mean - rest_mean))


def pedal_per_minute(perf: Performance) -> float:
    if len(perf) == 0:
        return 0.0
    c = perf.controls
    sustain = c[c["controller"] == SUSTAIN] if len(c) else c
    minutes = max(float((perf.notes["onset_sec"] + perf.notes["duration_sec"]).max()) / 60.0, 1e-6)
    if len(sustain) == 0:
        return 0.0
    down = sustain["value"] >= 64
    presses = int(down[0]) + int((down[1:] & ~down[:-1]).sum())
    return presses / minutes


def longest_pedal_hold(perf: Performance) -> float:
    """Seconds of the longest stretch the sustain pedal stays down (0 without a pedal)."""
    down, up = perf.pedal_intervals(SUSTAIN)
    return float((up - down).max()) if len(down) else 0.0


def shape_of(score: Score, perf: Performance, velocity: np.ndarray | None = None, played=None) -> dict:
    """The three figures of one performance; ``velocity``/``played`` per score note (default: from a
    rendering whose notes' ``id`` are score rows)."""
    if velocity is None:
        velocity = np.zeros(len(score))
        played = np.zeros(len(score), bool)
        velocity[perf.notes["id"]] = perf.notes["velocity"]
        played[perf.notes["id"]] = True
    v = perf.notes["velocity"].astype(np.float64)
    return {
        "velocity_sd": float(v.std()) if len(v) else float("nan"),
        "melody_lead": melody_lead(score, velocity, played),
        "pedal_per_minute": pedal_per_minute(perf),
        "pedal_longest_sec": longest_pedal_hold(perf),
    }


def summarise(per_piece: list[dict]) -> dict:
    """Mean velocity spread and melody lead over pieces, median pedal ratio (pieces whose pianists pedal)."""
    if not per_piece:
        return {}
    ratios = [p["pedal_ratio"] for p in per_piece if np.isfinite(p.get("pedal_ratio", np.nan))]
    return {
        "velocity_sd": float(np.nanmean([p["velocity_sd"] for p in per_piece])),
        "melody_lead": float(np.nanmean([p["melody_lead"] for p in per_piece])),
        "pedal_per_minute": float(np.nanmean([p["pedal_per_minute"] for p in per_piece])),
        "pedal_ratio_median": float(np.median(ratios)) if ratios else float("nan"),
        "pedal_longest_sec_max": float(np.nanmax([p.get("pedal_longest_sec", np.nan) for p in per_piece])),
        "pedal_longest_sec_median": float(np.nanmedian([p.get("pedal_longest_sec", np.nan) for p in per_piece])),
        "pieces": len(per_piece),
    }


def with_pedal_ratio(shape: dict, human_pedal: list[float]) -> dict:
    reference = float(np.median(human_pedal)) if human_pedal else 0.0
    ratio = shape["pedal_per_minute"] / reference if reference > 0 else float("nan")
    return shape | {"pedal_ratio": ratio}
