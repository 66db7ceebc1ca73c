"""Tempo and velocity over score time, from an aligned score and performance (vectorised)."""

from __future__ import annotations

import numpy as np

from espressivo.core import Alignment, Performance, Score
from espressivo.errors import EspressivoError


def expression_curves(score: Score, performance: Performance, alignment: Alignment, span_beats: float = 1.0) -> dict:
    """Per distinct score onset (in beats): performed onset (median over the chord), local tempo in
    beats per minute (measured over at least ``span_beats``), and mean velocity.

    Returns arrays ``beat``, ``onset_sec``, ``velocity`` (one per score onset) and ``tempo_beat``,
    ``tempo_bpm`` (one per tempo measurement, placed at the middle of its span).
    """
    s_idx, p_idx = alignment.indices(score, performance)
    if len(s_idx) < 2:
        raise EspressivoError("too few aligned notes to draw tempo and velocity curves")
    beats = score.notes["onset_beat"][s_idx]
    onsets = performance.notes["onset_sec"][p_idx]
    velocity = performance.notes["velocity"][p_idx].astype(np.float64)
    unique, group = np.unique(beats, return_inverse=True)
    order = np.lexsort((onsets, group))
    g_sorted, on_sorted = group[order], onsets[order]
    starts = np.searchsorted(g_sorted, np.arange(len(unique)))
    counts = np.bincount(group, minlength=len(unique))
    lower = on_sorted[starts + (counts - 1) // 2]
    upper = on_sorted[starts + counts // 2]
    median_onset = (lower + upper) / 2
    mean_velocity = np.bincount(group, weights=velocity, minlength=len(unique)) / counts
    # tempo from each onset to the first onset at least `span_beats` later
    j = np.searchsorted(unique, unique + span_beats - 1e-9)
    ok = j < len(unique)
    i, j = np.nonzero(ok)[0], j[ok]
    d_beat = unique[j] - unique[i]
    d_sec = median_onset[j] - median_onset[i]
    valid = d_sec > 0.02
    return {
        "beat": unique,
        "onset_sec": median_onset,
        "velocity": mean_velocity,
        "tempo_beat": ((unique[i] + unique[j]) / 2)[valid],
        "tempo_bpm": (60.0 * d_beat / np.where(d_sec > 0, d_sec, 1))[valid],
    }
