"""Renderers against pianists, the figures (``espressivo evaluate render``; the protocol:
:mod:`espressivo.evaluate.render`).

(a) distributions (:func:`distribution_scores` of :func:`note_statistics`), (b) per note through the score
alignment (:func:`note_view`, :func:`rendered_view`, :func:`compare`, :func:`micro_timing`), (c) tempo curves per
whole score beat (:func:`beat_tempo_curve`); the module docstring of :mod:`espressivo.evaluate.render` defines
each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from espressivo.core import Alignment, Performance, Score, TimeMap
from espressivo.evaluate.lm import js_distance
from espressivo.features import encode_expression
from espressivo.features.expression import onset_groups
from espressivo.features.slots import render_tokenizer

HIST_SPECS = {
    "velocity": (0, 128, 128),
    "duration_ms": (0, 500, 250),
    "ioi_ms": (0, 200, 200),
    "pedal_pattern": (0, 16, 16),
}
NOTE_FEATURES = ("velocity", "timing", "micro_timing", "articulation", "tempo")
MICRO_FWHM_BEATS = 2.0  # CVRNN's tempo curve: Gaussian regression of the time map, FWHM 2 beats


# ---------------------------------------------------------------------------- (a) distributions
def note_statistics(perf: Performance) -> dict[str, np.ndarray]:
    """Velocity, duration (ms), IOI (ms) and the 4-sample binary pedal pattern of every note."""

    tok = render_tokenizer()
    if len(perf) == 0:
        return {k: np.zeros(0) for k in HIST_SPECS}
    block = tok.encode(perf).reshape(-1, tok.block).astype(np.int64)
    starts = np.array([s for s, _ in tok.slot_ranges])
    block = block - starts
    pedal = block[:, 4:8]
    return {
        "velocity": tok._level_velocity(block[:, 2]).astype(np.float64),
        "duration_ms": block[:, 3] * tok.config.time_step_ms,
        "ioi_ms": block[1:, 1] * tok.config.time_step_ms,
        "pedal_pattern": (pedal * np.array([8, 4, 2, 1])).sum(1).astype(np.float64),
    }


def histogram(values: np.ndarray, name: str) -> np.ndarray:
    low, high, bins = HIST_SPECS[name]
    return np.histogram(values[(values >= low) & (values < high)], bins=bins, range=(low, high))[0]


def distribution_scores(generated: list[dict], reference: list[dict]) -> dict:
    out, js, inter = {}, [], []
    for name in HIST_SPECS:
        g = histogram(np.concatenate([s[name] for s in generated]), name).astype(np.float64)
        r = histogram(np.concatenate([s[name] for s in reference]), name).astype(np.float64)
        d = js_distance(g, r)
        i = float(np.minimum(g / max(g.sum(), 1), r / max(r.sum(), 1)).sum())
        out[name] = {"js_distance": d, "intersection": i}
        js.append(d)
        inter.append(i)
    out["overall"] = {"js_distance": float(np.mean(js)), "intersection": float(np.mean(inter))}
    return out


# ---------------------------------------------------------------------------- (b, c) per note
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    sa, sb = a.std(), b.std()
    if sa < 1e-12 or sb < 1e-12:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


@dataclass
class NoteView:
    """Per score note: velocity, timing, articulation_log, tempo (BPM) and whether it was played."""

    values: dict[str, np.ndarray]
    played: np.ndarray
    beat_curve: np.ndarray  # log tempo at every score beat


def note_view(score: Score, expression_features: np.ndarray) -> NoteView:
    f = expression_features
    beat = score.notes["onset_beat"]
    order, group, _, seconds = time_map_of(beat, f["beat_period"])
    onset = np.empty(len(f))
    onset[order] = seconds[group] - f["timing"][order]  # the performed onsets (the codec's, origin 0)
    values = {
        "velocity": f["velocity"] * 127.0,
        "timing": f["timing"],
        "micro_timing": micro_timing(beat, onset, f["matched"]),
        "articulation": f["articulation_log"],
        "tempo": 60.0 / np.maximum(f["beat_period"], 1e-6),
    }
    return NoteView(values, f["matched"].copy(), beat_tempo_curve(beat, f["beat_period"]))


def time_map_of(onset_beat: np.ndarray, beat_period: np.ndarray):
    """The performance's time map from the codec's beat periods: ``(order, group, beats, seconds)`` — notes
    sorted by score onset, each sorted note's onset group, and each group's score beat and time (from 0).  The
    per-group beat periods integrate to the codec's ``eq_onsets`` (monotone)."""

    order = np.argsort(onset_beat, kind="stable")
    beats, period = onset_beat[order], beat_period[order]
    group, starts = onset_groups(beats)
    u = beats[starts]
    bp = np.bincount(group, weights=period) / np.bincount(group)
    return order, group, u, np.concatenate([[0.0], np.cumsum(np.maximum(bp[:-1], 1e-4) * np.diff(u))])


def micro_timing(onset_beat: np.ndarray, onset_sec: np.ndarray, played: np.ndarray,
                 fwhm_beats: float = MICRO_FWHM_BEATS) -> np.ndarray:  # fmt: skip
    """Each played note's onset deviation from the smooth time map, in seconds (positive = early; 0 where not
    played): CVRNN's micro-onset timing, whose ideal onset comes from a tempo curve fitted by Gaussian
    regression over a full width at half maximum of 2 beats.  Here: a local-linear regression of the onset
    groups' mean times on their score beats, Gaussian weights of that width (times the group's note count),
    evaluated at each group.  A steady or steadily changing tempo leaves 0; a note played ahead of its
    neighbours' line stands out, however the tempo drifts over the piece."""
    out = np.zeros(len(onset_beat))
    beat, t = np.asarray(onset_beat, np.float64)[played], np.asarray(onset_sec, np.float64)[played]
    if len(beat) < 2:
        return out
    played_map = TimeMap.of(beat, t, monotone=False)
    x, y, count, group = played_map.position, played_map.seconds, played_map.count.astype(np.float64), played_map.group
    sigma = fwhm_beats / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    fit = np.empty(len(x))
    for lo in range(0, len(x), 256):  # blocks of groups against the groups within 4 sigma of them
        hi = min(lo + 256, len(x))
        a, b = np.searchsorted(x, x[lo] - 4 * sigma), np.searchsorted(x, x[hi - 1] + 4 * sigma, side="right")
        dx = x[None, a:b] - x[lo:hi, None]
        w = np.exp(-0.5 * (dx / sigma) ** 2) * count[None, a:b]
        s0, s1, s2 = w.sum(1), (w * dx).sum(1), (w * dx * dx).sum(1)
        t0, t1 = w @ y[a:b], (w * dx) @ y[a:b]
        det = s0 * s2 - s1 * s1
        steady = det > 1e-9 * np.maximum(s0 * s2, 1e-300)
        fit[lo:hi] = np.where(steady, (s2 * t0 - s1 * t1) / np.where(steady, det, 1.0), t0 / s0)
    out[np.flatnonzero(played)] = fit[group] - t
    return out


def beat_tempo_curve(onset_beat: np.ndarray, beat_period: np.ndarray) -> np.ndarray:
    """Log tempo (beats per minute) of every whole score beat, measured over the beat.

    The per-group beat periods integrate to the performance's time map (score beat -> seconds, monotone:
    the codec's ``eq_onsets``); each beat's tempo is 60 / (time at beat k + 1 - time at beat k).  A beat
    of fast notes is one measurement instead of several noisy local ones, so two pianists' curves are
    compared on their rubato, not on how evenly they spaced a run.
    """
    _, _, u, seconds = time_map_of(onset_beat, beat_period)
    grid = np.arange(math.ceil(u[0]), math.floor(u[-1]) + 1, dtype=np.float64)
    if len(grid) < 2:
        return np.zeros(0)
    return np.log(60.0 / np.maximum(np.diff(np.interp(grid, u, seconds)), 1e-4))


def rendered_view(score: Score, perf: Performance) -> NoteView:
    """A rendering (notes' ``id`` = score rows) seen through the expression codec."""

    alignment = Alignment.from_pairs(score.notes["id"][perf.notes["id"]], perf.notes["id"])
    return note_view(score, encode_expression(score, perf, alignment).features)


def compare(a: NoteView, b: NoteView) -> dict:
    """Per-note r and MAE of ``a`` against the human ``b`` over the notes both played; tempo-curve r."""
    both = a.played & b.played
    out = {}
    for name in NOTE_FEATURES:
        x, y = a.values[name][both], b.values[name][both]
        out[name] = {"r": pearson(x, y), "mae": float(np.abs(x - y).mean()) if len(x) else float("nan")}
    out["tempo_curve_r"] = pearson(a.beat_curve, b.beat_curve)
    # per-note tempo MAE is dominated by near-simultaneous onsets (tiny local beat periods); the beat-level
    # curve gives a readable one
    diff = np.abs(np.exp(a.beat_curve) - np.exp(b.beat_curve))
    out["tempo_curve_mae_bpm"] = float(diff.mean()) if len(diff) else float("nan")
    return out


def mean_of(results: list[dict]) -> dict:
    if not results:
        return {}
    out = {}
    for name in NOTE_FEATURES:
        out[name] = {k: float(np.nanmean([r[name][k] for r in results])) for k in ("r", "mae")}
    out["tempo_curve_r"] = float(np.nanmean([r["tempo_curve_r"] for r in results]))
    out["tempo_curve_mae_bpm"] = float(np.nanmean([r["tempo_curve_mae_bpm"] for r in results]))
    out["pairs"] = len(results)
    return out
