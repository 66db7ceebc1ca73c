"""Score-relative expression features — a vectorised equivalent of partitura's performance codec.

Per score note (``Score.notes`` row order), :func:`encode_expression` gives:

===================  =====================================================================================
``beat_period``      local tempo as seconds per beat (``60 / beat_period`` = beats per minute), one value per
                     score onset: (next mean onset - this mean onset) / score beats between them
``timing``           onset deviation in seconds from the onset the tempo curve predicts; positive = early
``articulation_log`` log2(performed duration / (beat_period x written duration)); grace notes count as
                     one beat long (partitura sets them to 0, which loses their duration)
``velocity``         MIDI velocity / 127
``pedal``            sustain pedal value (0..127) at the performed onset
``matched``          False where the pianist played no note for this written note: the values are then
                     interpolated along score time (tempo, velocity), 0 (timing, articulation), or sampled
                     at the interpolated onset (pedal)
===================  =====================================================================================

Definitions follow ``partitura.musicanalysis.encode_performance`` (tempo by averaging, monotonised onsets,
minimum performed duration 0.075 s, sustain pedal folded into durations); the tests check the figures
against partitura's own ``encode_tempo``.  :func:`decode_expression` is the inverse: score + features →
:class:`Performance`, reproducing matched notes to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.core import NOTE_DTYPE, SUSTAIN, Alignment, Performance, Score
from espressivo.core.performance import canonical_order, make_controls
from espressivo.errors import EspressivoError

MIN_PERFORMED_DURATION = 60 / 200 * 0.25  # partitura's floor, 0.075 s

EXPRESSION_DTYPE = np.dtype(
    [
        ("beat_period", "f8"),
        ("timing", "f8"),
        ("articulation_log", "f8"),
        ("velocity", "f8"),
        ("pedal", "f8"),
        ("matched", "?"),
    ]
)


@dataclass(frozen=True)
class Expression:
    """Features per score note plus the time origin (mean performed onset of the first score onset)."""

    features: np.ndarray
    origin_sec: float

    @property
    def tempo_bpm(self) -> np.ndarray:
        return 60.0 / self.features["beat_period"]


def onset_groups(score_onset_beat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group notes by score onset as partitura does (onsets x1e4 truncated to integers).

    Returns ``(group, starts)``: the group index of each note (notes must be sorted by onset) and the
    first note of each group.
    """
    key = (1e4 * score_onset_beat).astype(np.int64)
    new = np.concatenate([np.ones(min(len(key), 1), bool), np.diff(key) > 0])
    return np.cumsum(new) - 1, np.nonzero(new)[0]


def _group_mean(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(group, weights=values, minlength=n) / np.bincount(group, minlength=n)


def _last_time(onsets: np.ndarray, offsets: np.ndarray) -> float:
    return float(onsets.max() + 1) if onsets.max() == offsets.max() else float(offsets.max())


def _monotonize(s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """partitura's ``monotonize_times``: interpolate over the points where ``s`` sets a new maximum."""
    eps = np.finfo(float).eps
    s_ext = np.concatenate([[s.min() - eps], s, [s.max() + eps]])
    x_ext = np.concatenate([[x.min() - eps], x, [x.max() + eps]])
    running = np.maximum.accumulate(s)
    mask = np.concatenate([[False, True], np.diff(running) != 0, [False]])
    xp, fp = x_ext[mask], s_ext[mask]
    out = np.interp(x, xp, fp)
    if len(xp) >= 2:  # linear extrapolation beyond the kept points, as interp1d(fill_value="extrapolate")
        lo, hi = x < xp[0], x > xp[-1]
        out[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
        out[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return out


def tempo_by_average(
    score_onsets: np.ndarray, score_durations: np.ndarray, perf_onsets: np.ndarray, perf_durations: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Beat period per score onset group.  Inputs sorted by score onset.

    Returns ``(beat_period, group, unique_score_onsets, eq_onsets)``.
    """
    group, starts = onset_groups(score_onsets)
    n = len(starts)
    u_score = np.concatenate(
        [_group_mean(score_onsets, group, n), [_last_time(score_onsets, score_onsets + score_durations)]]
    )
    u_perf = np.concatenate(
        [_group_mean(perf_onsets, group, n), [_last_time(perf_onsets, perf_onsets + perf_durations)]]
    )
    mono = _monotonize(u_perf, u_score)
    beat_period = np.diff(mono) / np.diff(u_score)
    eq_onsets = np.cumsum(np.concatenate([[0.0], beat_period[:-1] * np.diff(u_score[:-1])])) + u_perf[0]
    return beat_period, group, u_score, eq_onsets


def encode_expression(
    score: Score, performance: Performance, alignment: Alignment, *, sustain: bool = True
) -> Expression:
    """Expression features for every note of ``score`` (see the module docstring)."""
    s_idx, p_idx = alignment.indices(score, performance)
    if len(s_idx) < 2:
        raise EspressivoError("fewer than two aligned notes: no expression to measure")
    played = performance.apply_sustain() if sustain else performance
    sn, pn = score.notes, played.notes
    order = np.lexsort((sn["pitch"][s_idx], sn["onset_quarter"][s_idx]))
    s_idx, p_idx = s_idx[order], p_idx[order]
    s_on, s_dur = sn["onset_beat"][s_idx], sn["duration_beat"][s_idx]
    p_on = pn["onset_sec"][p_idx]
    p_dur = np.maximum(pn["duration_sec"][p_idx], MIN_PERFORMED_DURATION)
    beat_period, group, u_score, eq_onsets = tempo_by_average(s_on, s_dur, p_on, p_dur)
    bp = beat_period[group]
    grace = s_dur <= 0
    # grace notes (no written duration) are measured against one beat, so that decoding restores them
    articulation = np.log2(p_dur / (bp * np.where(grace, 1.0, s_dur)))
    features = np.zeros(len(sn), EXPRESSION_DTYPE)
    features["beat_period"][s_idx] = bp
    features["timing"][s_idx] = eq_onsets[group] - p_on
    features["articulation_log"][s_idx] = articulation
    features["velocity"][s_idx] = performance.notes["velocity"][p_idx] / 127.0
    features["pedal"][s_idx] = performance.pedal_value_at(p_on, SUSTAIN)
    features["matched"][s_idx] = True
    # written notes nobody played: interpolate along score time
    missing = ~features["matched"]
    if missing.any():
        beats = sn["onset_beat"][missing]
        u_on = u_score[:-1]
        features["beat_period"][missing] = np.interp(beats, u_on, beat_period)
        features["velocity"][missing] = np.interp(beats, s_on, features["velocity"][s_idx])
        onset_estimate = np.interp(beats, u_on, eq_onsets)
        features["pedal"][missing] = performance.pedal_value_at(onset_estimate, SUSTAIN)
    return Expression(features, float(eq_onsets[0]))


def decode_expression(score: Score, expression: Expression, *, only_matched: bool = False) -> Performance:
    """The performance that the features describe: one note per score note (``only_matched``: per
    matched note), with sustain pedal events where the per-note pedal value changes."""
    features = expression.features
    if len(features) != len(score.notes):
        raise EspressivoError(f"{len(features)} feature rows for a score of {len(score.notes)} notes")
    rows = np.nonzero(features["matched"])[0] if only_matched else np.arange(len(score.notes))
    sn = score.notes
    order = rows[np.lexsort((sn["pitch"][rows], sn["onset_quarter"][rows]))]
    s_on, s_dur = sn["onset_beat"][order], sn["duration_beat"][order]
    f = features[order]
    if len(order) == 0:
        return Performance.empty()
    group, starts = onset_groups(s_on)
    n = len(starts)
    bp = _group_mean(f["beat_period"], group, n)
    u_score = _group_mean(s_on, group, n)
    eq_onsets = np.cumsum(np.concatenate([[0.0], bp[:-1] * np.diff(u_score)])) + expression.origin_sec
    onset = eq_onsets[group] - f["timing"]
    grace = s_dur <= 0
    duration = 2.0 ** f["articulation_log"] * bp[group] * np.where(grace, 1.0, s_dur)
    shift = min(0.0, float(onset.min()))
    notes = np.zeros(len(order), NOTE_DTYPE)
    notes["onset_sec"] = onset - shift
    notes["duration_sec"] = np.maximum(duration, 0.0)
    notes["pitch"] = sn["pitch"][order]
    notes["velocity"] = np.clip(np.rint(f["velocity"] * 127), 1, 127)
    notes["id"] = order  # the score row each note plays
    t = notes["onset_sec"]
    by_time = np.argsort(t, kind="stable")
    pedal = np.rint(f["pedal"][by_time]).astype(np.int64)
    change = np.concatenate([[pedal[0] > 0], pedal[1:] != pedal[:-1]])
    controls = make_controls(np.stack([t[by_time][change], np.full(change.sum(), SUSTAIN), pedal[change]], 1))
    return Performance(canonical_order(notes, renumber=False), controls)
