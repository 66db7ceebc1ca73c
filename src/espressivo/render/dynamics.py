"""Steadying a rendering's dynamics (``--dynamics-drift``): its slow wandering in loudness taken out.

A renderer samples each velocity after its own previous ones, so its loudness level is a random walk: over a
piece it drifts away from anything in the score (on validation renderer-small played 11 velocity steps louder
than the pianists on average, some pieces 30 louder).  :func:`steady_dynamics` measures the rendering's
departure from the level the score's dynamics markings call for, smoothed over ``drift_beats`` score beats
(a Gaussian-weighted mean of the notes around each note), and subtracts it: the loudness level then follows
the markings, and the rendering's own phrasing — accents, voicing, swells within a few beats — stays.

The level of a marking is what pianists play at it: ``LEVEL_INTERCEPT + LEVEL_SLOPE x`` the marking's
velocity (:func:`espressivo.features.slots.dynamics_velocity`: p 50, none 64, f 78, ...), a least-squares
fit over every matched note of the (n)ASAP train split (``python tools/fit_dynamics_level.py``).

>>> steady_dynamics(performance, score, drift_beats=4.0)   # performance.notes["id"] = score rows
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Performance, Score
from espressivo.features.score import score_features
from espressivo.features.slots import dynamics_velocity
from espressivo.render.timing import gaussian_smooth

DEFAULT_DYNAMICS_DRIFT = 4.0  # beats (0: the rendering's own loudness level kept); tuned on validation
LEVEL_INTERCEPT = 39.94
LEVEL_SLOPE = 0.4006  # 193 pieces, 2,619,981 notes: p 60.0, none 65.6, f 71.2, ff 76.8
GRID = 4  # samples per beat


def marked_level(score: Score) -> np.ndarray:
    """The velocity pianists play at each score note's dynamics marking, on average (score rows)."""

    return LEVEL_INTERCEPT + LEVEL_SLOPE * dynamics_velocity(score_features(score)["dynamic"])


def smooth_over_beats(beat: np.ndarray, values: np.ndarray, sigma_beats: float) -> np.ndarray:
    """At each note, the Gaussian-weighted mean (sigma in beats) of ``values`` over the notes around it."""
    cell = np.rint((beat - beat.min()) * GRID).astype(np.int64)
    sums = gaussian_smooth(np.bincount(cell, weights=values), sigma_beats * GRID)
    counts = gaussian_smooth(np.bincount(cell).astype(np.float64), sigma_beats * GRID)
    return sums[cell] / counts[cell]  # every note's own cell counts: never 0


def steady_dynamics(perf: Performance, score: Score, drift_beats: float) -> Performance:
    """``perf`` (one note per score note, ``notes["id"]`` = score row) with its velocity's slow departure
    from the marked level (smoothed over ``drift_beats`` beats) taken out; 0: unchanged."""
    if drift_beats <= 0 or len(perf) < 2:
        return perf
    notes = perf.notes.copy()
    rows = notes["id"]
    velocity = notes["velocity"].astype(np.float64)
    departure = smooth_over_beats(score.notes["onset_beat"][rows], velocity - marked_level(score)[rows], drift_beats)
    notes["velocity"] = np.clip(np.rint(velocity - departure), 1, 127)
    return Performance(notes, perf.controls)
