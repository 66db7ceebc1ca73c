"""Re-timing a rendering: its slow tempo drift taken out (``--tempo-drift``).

:func:`shape_tempo` reads the rendering's time map (:class:`~espressivo.core.TimeMap`, score beat -> seconds)
on a grid of ``GRID`` points per beat; its log-tempo deviation from the score's written time map, smoothed over
``drift_beats``, is taken out (the note-by-note renderer wanders slowly away from the tempo it is given;
pianists do not share that wandering).  Every event is then re-timed through the piecewise-linear warp old map
-> new map: chord asynchronies and each note's articulation follow their local tempo, the first onset stays put
and the total length is kept.

>>> shape_tempo(performance, score, drift_beats=4.0)   # performance.notes["id"] = score rows
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Performance, Score, TimeMap

DEFAULT_TEMPO_DRIFT = 4.0  # beats (0: the rendering's slow tempo drift kept); tuned on validation
DEFAULT_TEMPO_GUARD = 0.5  # sigma (log IOI) of the sampling prior towards the score IOIs (0: off); validation-tuned
GRID = 8  # time-map samples per beat
MIN_PERIOD = 1e-3  # seconds per beat: a floor for near-simultaneous groups (log of 0)


def gaussian_smooth(x: np.ndarray, sigma_steps: float) -> np.ndarray:
    """``x`` smoothed by a Gaussian of ``sigma_steps`` samples; at the edges, normalised by what is inside."""
    radius = int(np.ceil(3 * sigma_steps))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_steps) ** 2)
    inside = slice(radius, radius + len(x))
    return np.convolve(x, kernel)[inside] / np.convolve(np.ones_like(x), kernel)[inside]


def shape_tempo(perf: Performance, score: Score, drift_beats: float) -> Performance:
    """``perf`` (one note per score note, ``notes["id"]`` = score row) with its slow departures from the written
    tempo map (its log-tempo deviation smoothed over ``drift_beats`` beats) taken out (0: unchanged)."""
    if drift_beats <= 0 or len(perf) < 3:
        return perf
    notes = perf.notes
    beat = score.notes["onset_beat"][notes["id"]]
    played = TimeMap.of(beat, notes["onset_sec"])
    beats, times = played.position, played.seconds
    if len(beats) < 3 or times[-1] <= times[0]:
        return perf
    grid = np.linspace(beats[0], beats[-1], max(2, int(np.ceil((beats[-1] - beats[0]) * GRID)) + 1))
    step = grid[1] - grid[0]
    old = played(grid)
    log_period = np.log(np.maximum(np.diff(old) / step, MIN_PERIOD))
    # deviations from the written time map (its tempo changes are the score's, not drift)
    written = TimeMap.of(beat, score.seconds_from_quarter(score.notes["onset_quarter"][notes["id"]]))
    base = np.log(np.maximum(np.diff(np.interp(grid, beats, written.seconds)) / step, MIN_PERIOD))
    deviation = log_period - base
    shaped = deviation - gaussian_smooth(deviation, drift_beats * GRID)
    period = np.exp(base + shaped)
    period *= (old[-1] - old[0]) / (period.sum() * step)  # the same total length
    new = old[0] + np.concatenate([[0.0], np.cumsum(period * step)])
    old = old + np.arange(len(old)) * 1e-9  # strictly increasing, to invert

    def warp(t: np.ndarray) -> np.ndarray:
        inside = np.interp(np.interp(t, old, grid), grid, new)
        return np.where(t < old[0], t, np.where(t > old[-1], t + (new[-1] - old[-1]), inside))

    out, controls = notes.copy(), perf.controls.copy()
    onset = notes["onset_sec"]
    out["onset_sec"] = warp(onset)
    out["duration_sec"] = np.maximum(warp(onset + notes["duration_sec"]) - out["onset_sec"], 0.0)
    if len(controls):
        controls["time_sec"] = warp(controls["time_sec"])
    return Performance(out, controls)
