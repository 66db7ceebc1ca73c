"""Rolled chords: a chord the score marks arpeggiated, played one note after another.

Pianists roll the chords the score marks with an arpeggio sign (MusicXML ``<arpeggiate>``: upwards unless
marked "down").  On the (n)ASAP train split (``python tools/fit_rolls.py --split train``, 852 performances)
84 % of the 6,392 marked chords played are rolled upwards, with a median step of 76 ms (0.11 beats) between
notes; the renderer itself has never seen the marks (partitura does not read them) and spreads every chord by a
few milliseconds, top note first.  :func:`roll_chords` re-places the notes of the marked chords in pitch
order, ``step_beats`` of the local tempo apart, around the chord's rendered mean onset (so its place in the
phrase stays the renderer's), each note keeping its release (a rolled chord is held together).

Unmarked chords too wide for one hand are *not* rolled: measured the same way (``--span``), chords of one
staff spanning 17 semitones or more are as often played top note first (43 %) as bottom first (35 %), with
steps of about 14 ms — asynchrony, not a roll.  :func:`roll_groups` can find them, for measuring.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Performance, Score, TimeMap

ROLL_STEP_BEATS = 0.11  # onset step between consecutive notes of a rolled chord, in beats (train median)
MIN_STEP_SEC, MAX_STEP_SEC = 0.02, 0.15  # the step kept within these, whatever the tempo
MIN_DURATION_SEC = 0.03


def roll_groups(notes: np.ndarray, *, marked: bool = True, wide_span: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(group, direction)`` per score note: the rolled chord it belongs to (-1: none) and the roll's direction
    (+1 upwards, -1 downwards).  ``marked``: chords with an arpeggio sign (all marked notes of a part at one
    onset, both hands, one roll); ``wide_span``: unmarked chords of one staff spanning that many semitones or
    more (0: none)."""
    n = len(notes)
    group = np.full(n, -1, np.int64)
    direction = np.where(notes["arpeggio"] < 0, -1, 1).astype(np.int64)
    onset = np.rint(notes["onset_quarter"] * 1e4).astype(np.int64)
    candidates = []
    mark = (notes["arpeggio"] != 0) & ~notes["is_grace"]
    if marked and mark.any():
        candidates.append((mark, np.stack([onset, notes["part"], np.zeros(n, np.int64)], 1), 0))
    if wide_span > 0:
        free = ~mark & ~notes["is_grace"]
        candidates.append((free, np.stack([onset, notes["part"], 1 + notes["staff"].astype(np.int64)], 1), wide_span))
    offset = 0
    for rows, keys, span in candidates:
        index = np.flatnonzero(rows)
        if not len(index):
            continue
        _, inverse = np.unique(keys[index], axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        count = np.bincount(inverse)
        pitch = notes["pitch"][index].astype(np.int64)
        high = np.full(len(count), -1, np.int64)
        low = np.full(len(count), 1 << 20, np.int64)
        np.maximum.at(high, inverse, pitch)
        np.minimum.at(low, inverse, pitch)
        keep = (count >= 2) & (high - low >= span)
        ids = np.cumsum(keep) - 1 + offset
        chosen = keep[inverse]
        group[index[chosen]] = ids[inverse[chosen]]
        offset += int(keep.sum())
    return group, direction


def _ranks(group: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each grouped note's rank by ``key`` within its group (0 = first) and its group's size."""
    order = np.lexsort((key, group))
    g = group[order]
    starts = np.flatnonzero(np.diff(g, prepend=g[0] - 1))
    size = np.diff(np.append(starts, len(g)))
    rank = np.empty(len(g), np.int64)
    rank[order] = np.arange(len(g)) - np.repeat(starts, size)
    return rank, np.repeat(size, size)[np.argsort(order)]


def local_beat_seconds(perf: Performance, score: Score) -> np.ndarray:
    """Seconds per score beat around each note of a rendering (``notes["id"]`` = score rows): the slope of its
    time map (:class:`~espressivo.core.TimeMap`) between the neighbouring onsets, at least
    ``MIN_STEP_SEC``."""
    beat = score.notes["onset_beat"][perf.notes["id"]]
    played = TimeMap.of(beat, perf.notes["onset_sec"])
    beats = played.position
    if len(beats) < 2:
        return np.full(len(perf), 0.5)
    slope = played.slope()
    around = np.concatenate([[slope[0]], 0.5 * (slope[:-1] + slope[1:]), [slope[-1]]])
    return np.maximum(around, MIN_STEP_SEC)[np.searchsorted(beats, np.rint(beat * 1e4) / 1e4)]


def roll_chords(perf: Performance, score: Score, step_beats: float = ROLL_STEP_BEATS,
                wide_span: int = 0) -> Performance:  # fmt: skip
    """``perf`` (one note per score note, ``notes["id"]`` = score row) with its marked chords (and, with
    ``wide_span``, the unmarked chords of one staff spanning that many semitones) played in pitch order (the
    marked direction), ``step_beats`` of the local tempo apart (kept within ``MIN_STEP_SEC`` ..
    ``MAX_STEP_SEC``), centred on the chord's mean onset (a roll that would begin before 0 begins at 0); every
    note keeps its release.  ``step_beats=0``: unchanged."""
    if step_beats <= 0 or len(perf) < 2:
        return perf
    notes = perf.notes
    rows = notes["id"]
    group_of_row, direction = roll_groups(score.notes, wide_span=wide_span)
    group = group_of_row[rows]
    inside = np.flatnonzero(group >= 0)
    if not len(inside):
        return perf
    g = group[inside]
    _, g = np.unique(g, return_inverse=True)
    g = g.reshape(-1)
    key = score.notes["pitch"][rows[inside]].astype(np.int64) * direction[rows[inside]]
    rank, size = _ranks(g, key)
    onset = notes["onset_sec"][inside]
    middle = (np.bincount(g, weights=onset) / np.bincount(g))[g]
    beat_sec = np.bincount(g, weights=local_beat_seconds(perf, score)[inside]) / np.bincount(g)
    step = np.clip(step_beats * beat_sec, MIN_STEP_SEC, MAX_STEP_SEC)[g]
    placed = middle + (rank - 0.5 * (size - 1)) * step
    first = np.full(g.max() + 1, np.inf)
    np.minimum.at(first, g, placed)
    placed = placed + np.maximum(-first, 0.0)[g]  # a roll at the very start begins at 0, not before
    out = notes.copy()
    release = notes["onset_sec"][inside] + notes["duration_sec"][inside]
    out["onset_sec"][inside] = placed
    out["duration_sec"][inside] = np.maximum(release - out["onset_sec"][inside], MIN_DURATION_SEC)
    return Performance(out, perf.controls)
