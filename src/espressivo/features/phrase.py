"""The phrase renderer's view of a score and of a performance: per-note score context, and expression as a
beat-level curve (tempo, loudness) plus note-level deviations around it.  Vectorised; rows in score order.

Score side — :func:`phrase_features` adds to :func:`~espressivo.features.slots.feature_matrix` (metre,
durations, chords, dynamics marking) what a musician reads above the note (columns named in ``PHRASE_FEATURES``): the
performance markings partitura reads (articulation, accents, fermata, ornaments, slurs, hairpins, tempo
directions; :data:`~espressivo.core.score.MARK_FIELDS`), whether markings were available at all (a MIDI score
has none), rests after a note, long notes, position in the piece, the note's place under its chord's top
(the melody by skyline), its staff, the local note density and the written tempo.

Performance side — per score beat ``k`` (integer beats from the first onset's beat) the performed time map
``T`` (mean performed onset of each score onset, made monotone, interpolated at beat lines) gives

===============  =========================================================================================
``tempo``        log(performed / written beat length) of beat k, minus its mean over the piece (0 = the
                 performance's own mean tempo; > 0 slower)
``level``        (mean velocity of the beat's played notes - 64) / 16
===============  =========================================================================================

and per note

===============  =========================================================================================
``timing``       (T(score onset) - performed onset) in tenths of a second; positive = early
``velocity``     (velocity - its beat's mean) / 16: voicing and accents around the level
``articulation`` log2(performed key-down duration / written duration at the beat's tempo, >= 50 ms)
``pedal``        sustain pedal down (CC64 >= 64) at 0, 1/4, 1/2, 3/4 of the time to the next later onset
===============  =========================================================================================

:func:`phrase_performance` is the inverse: a score, beat curves and note deviations -> :class:`Performance`.
Written beat lengths come from the score's time map at its written (or a given) tempo, so a rendering cannot
drift from its tempo: the curve is relative, and the mean tempo is the one asked for.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import CONTROL_DTYPE, NOTE_DTYPE, SUSTAIN, Performance, TimeMap
from espressivo.core.performance import canonical_order, make_controls
from espressivo.core.score import MARK_FIELDS, MARKS_DTYPE
from espressivo.core.timemap import onset_keys
from espressivo.features.slots import SCORE_FEATURES, feature_matrix, named_columns, pedal_sample_times

DERIVED = ("has_marks", "rest_after", "long_note", "position", "to_end", "below_top", "upper_staff",
           "density", "harmony_change", "bass_change", "first_in_beat", "written_tempo")  # fmt: skip
PHRASE_FEATURES = SCORE_FEATURES + MARK_FIELDS + DERIVED  # the columns of phrase_features, by name
MARKINGS = (*MARK_FIELDS, "has_marks", "dynamic", "written_tempo")  # what a score without markings lacks
VELOCITY_SCALE = 16.0
TIMING_SCALE = 10.0  # timing targets in tenths of a second
MIN_WRITTEN_SEC = 0.05
PEDAL_SAMPLES = 4


def beat_index(onset_beat: np.ndarray) -> tuple[np.ndarray, int]:
    """(beat of each note counted from the first onset's beat, first beat); grace notes share their onset's."""
    beats = np.floor(np.asarray(onset_beat, dtype=np.float64) + 1e-6)
    first = int(beats.min()) if len(beats) else 0
    return (beats - first).astype(np.int64), first


def phrase_features(
    score_features: np.ndarray, marks: np.ndarray | None, onset_beat: np.ndarray
) -> tuple[np.ndarray, tuple[str, ...]]:
    """((n, 36) float32, :data:`PHRASE_FEATURES`): feature_matrix, then the markings and derived context."""
    sf = score_features
    n = len(sf)
    base, base_names = feature_matrix(sf)
    has = marks is not None and len(marks) == n and n > 0
    columns = {name: marks[name] if has else 0.0 for name in MARK_FIELDS}
    columns["has_marks"] = float(has)
    if n == 0:
        values, names = named_columns(columns | dict.fromkeys(DERIVED[1:], 0.0), n)
        return np.concatenate([base, values], 1), base_names + names
    onset = np.asarray(onset_beat, dtype=np.float64)
    _, group = onset_keys(onset)
    dur = np.asarray(sf["duration_beat"], dtype=np.float64)
    longest = np.zeros(group.max() + 1)
    np.maximum.at(longest, group, dur)
    gap = np.maximum(np.asarray(sf["ioi_beat"], dtype=np.float64) - longest[group], 0.0)
    columns["rest_after"] = np.log2(1 + np.minimum(gap, 16)) / 2  # a rest after the onset: a phrase may end
    typical = np.median(dur[dur > 0]) if (dur > 0).any() else 1
    columns["long_note"] = np.log2(np.clip(dur / np.maximum(typical, 1e-3), 1 / 16, 16)) / 4
    span = max(float(onset.max() - onset.min()), 1e-6)
    columns["position"] = (onset - onset.min()) / span
    columns["to_end"] = np.log2(1 + (onset.max() - onset)) / 8
    top = np.full(group.max() + 1, -1)
    np.maximum.at(top, group, sf["pitch"].astype(np.int64))
    columns["below_top"] = np.minimum(top[group] - sf["pitch"], 36) / 12  # 0: the skyline (melody candidate)
    staff = sf["staff"].astype(np.int64)
    columns["upper_staff"] = staff == (staff[staff > 0].min() if (staff > 0).any() else 0)
    ordered = np.sort(onset)
    count = np.searchsorted(ordered, onset + 2, side="left") - np.searchsorted(ordered, onset - 2, side="left")
    columns["density"] = np.log2(1 + count / 4) / 4
    harmony = harmony_features(sf["pitch"], onset)
    columns |= {name: harmony[:, k] for k, name in enumerate(("harmony_change", "bass_change", "first_in_beat"))}
    qpm = np.asarray(sf["written_qpm"], dtype=np.float64)
    columns["written_tempo"] = np.where(np.isfinite(qpm) & (qpm > 0), np.log(np.clip(qpm, 20, 400) / 100), 0.0)
    values, names = named_columns(columns, n)
    out, names = np.concatenate([base, values], 1), base_names + names
    return (out if has else drop_markings(out, names)), names


def harmony_features(pitch: np.ndarray, onset_beat: np.ndarray) -> np.ndarray:
    """(n, 3): where the harmony changes, for the pedal.  Per score beat, the set of pitch classes struck in it
    and its lowest pitch class; per note, the Jaccard distance of its beat's set from the previous beat's, whether
    the bass pitch class changed, and whether the note is on its beat's first onset."""
    beat, _ = beat_index(onset_beat)
    n_beats = int(beat.max()) + 1
    pitch = np.asarray(pitch, dtype=np.int64)
    masks = np.zeros(n_beats, np.int64)
    np.bitwise_or.at(masks, beat, np.left_shift(1, pitch % 12))
    lowest = np.full(n_beats, 1000)
    np.minimum.at(lowest, beat, pitch)
    previous = np.concatenate([[0], masks[:-1]])
    bits = np.array([bin(m).count("1") for m in range(4096)])
    union = bits[masks | previous]
    jaccard = 1.0 - bits[masks & previous] / np.maximum(union, 1)
    bass = lowest % 12
    bass_change = np.concatenate([[True], bass[1:] != bass[:-1]])
    first = np.full(n_beats, np.inf)
    np.minimum.at(first, beat, onset_beat)
    return np.stack([jaccard[beat], bass_change[beat], np.abs(onset_beat - first[beat]) < 1e-6], 1)


def drop_markings(features: np.ndarray, names: tuple[str, ...] = PHRASE_FEATURES) -> np.ndarray:
    """``phrase_features`` as a score without markings would give them (training: scores read from MIDI)."""
    out = features.copy()
    out[:, [names.index(name) for name in MARKINGS]] = 0.0
    return out


def expression_targets(
    onset_beat: np.ndarray, duration_beat: np.ndarray, written_onset_sec: np.ndarray,
    performed: np.ndarray, matched: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Beat curves and note deviations of one performance (module docstring) with their validity masks."""
    beat, first = beat_index(onset_beat)
    n_beats = int(beat.max()) + 1 if len(beat) else 0
    lines = first + np.arange(n_beats + 1, dtype=np.float64)
    p_on = performed["onset_sec"].astype(np.float64)
    performed_map = TimeMap.of(onset_beat, p_on)
    t_perf, t_written = performed_map(lines), TimeMap.of(onset_beat, written_onset_sec)(lines)
    period, written = np.diff(t_perf), np.diff(t_written)
    lo, hi = float(np.min(onset_beat)), float(np.max(onset_beat))
    inside = (lines[:-1] >= lo - 1e-6) & (lines[1:] <= hi + 1e-6)
    ok = inside & (period > 0.02) & (period < 8) & (written > 0.02)
    ratio = np.log(np.where(ok, period, 1.0) / np.where(ok, written, 1.0))
    tempo = np.where(ok, ratio - (ratio[ok].mean() if ok.any() else 0.0), 0.0)
    tempo_ok = ok & (np.abs(tempo) < 1.5)
    velocity = performed["velocity"].astype(np.float64)
    counts = np.bincount(beat[matched], minlength=n_beats)
    sums = np.bincount(beat[matched], weights=velocity[matched], minlength=n_beats)
    level_ok = counts > 0
    level = np.where(level_ok, sums / np.maximum(counts, 1), 64.0)
    # the beat's period at each note (beats outside the measured span: the nearest measured one)
    known = np.flatnonzero(ok)
    local = np.interp(np.arange(n_beats), known, period[known]) if len(known) else np.full(n_beats, 0.5)
    written_sec = np.maximum(np.asarray(duration_beat, dtype=np.float64) * local[beat], MIN_WRITTEN_SEC)
    t_note = performed_map(np.asarray(onset_beat, dtype=np.float64))
    return {
        "tempo": tempo.astype(np.float32),
        "tempo_ok": tempo_ok,
        "level": ((level - 64) / VELOCITY_SCALE).astype(np.float32),
        "level_ok": level_ok,
        "beat": beat,
        "timing": np.clip((t_note - p_on) * TIMING_SCALE, -5, 5).astype(np.float32),
        "velocity": ((velocity - level[beat]) / VELOCITY_SCALE).astype(np.float32),
        "articulation": np.clip(np.log2(np.maximum(performed["duration_sec"], 0.01) / written_sec), -6, 4).astype(
            np.float32
        ),
        "pedal": (performed["pedal"] >= 64),
        "note_ok": np.asarray(matched, bool),
    }


def written_beat_seconds(score, qpm: float | None = None) -> tuple[np.ndarray, int]:
    """(seconds of each score beat on the written time map at a mean of ``qpm``, first beat) over the beats of
    the notes."""
    beat, first = beat_index(score.notes["onset_beat"])
    n_beats = int(beat.max()) + 1 if len(beat) else 0
    lines = first + np.arange(n_beats + 1, dtype=np.float64)
    return np.diff(score.written_seconds(score.quarter_from_beat(lines), qpm)), first


def phrase_performance(
    score, written_beat_sec: np.ndarray, tempo: np.ndarray, level: np.ndarray,
    timing: np.ndarray, velocity: np.ndarray, articulation: np.ndarray, pedal: np.ndarray,
) -> Performance:  # fmt: skip
    """A performance of ``score`` from beat curves (``tempo``, ``level`` per beat) and note deviations
    (``timing``, ``velocity``, ``articulation`` per note, ``pedal`` (n, 4) bool), in the units of
    :func:`expression_targets`.  The tempo curve is centred so that the piece lasts as long as it does at the
    written beat lengths: its mean tempo is the one asked for."""
    sn = score.notes
    n = len(sn)
    if n == 0:
        return Performance(np.zeros(0, NOTE_DTYPE))
    onset_beat = sn["onset_beat"].astype(np.float64)
    beat, first = beat_index(onset_beat)
    stretch = np.exp(np.asarray(tempo, dtype=np.float64))
    period = written_beat_sec * stretch * (written_beat_sec.sum() / max((written_beat_sec * stretch).sum(), 1e-9))
    lines = np.concatenate([[0.0], np.cumsum(period)])
    position = onset_beat - first
    k = np.clip(np.floor(position + 1e-6).astype(np.int64), 0, len(period) - 1)
    on_map = lines[k] + (position - k) * period[k]
    onset = on_map - np.asarray(timing, dtype=np.float64) / TIMING_SCALE
    onset = onset - min(float(onset.min()), 0.0)
    written_sec = np.maximum(sn["duration_beat"] * period[k], MIN_WRITTEN_SEC)
    notes = np.zeros(n, NOTE_DTYPE)
    notes["onset_sec"] = onset
    notes["duration_sec"] = np.clip(written_sec * np.exp2(np.asarray(articulation, dtype=np.float64)), 0.02, 30.0)
    vel = 64 + VELOCITY_SCALE * (np.asarray(level, dtype=np.float64)[beat] + np.asarray(velocity, dtype=np.float64))
    notes["velocity"] = np.clip(np.rint(vel), 1, 127)
    notes["pitch"], notes["track"] = sn["pitch"], sn["part"]
    notes["id"] = np.arange(n)
    _, group = onset_keys(onset_beat)
    return Performance(canonical_order(notes, renumber=False), pedal_controls(notes, pedal, group))


def pedal_controls(notes: np.ndarray, pedal: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Sustain changes from per-note pedal samples: one value per score onset ``group`` (the majority of its
    notes), at 0, 1/4, 1/2, 3/4 of the time from the onset's mean performed onset to the next onset's; the
    pedal is released after the last note."""
    if len(notes) == 0:
        return np.zeros(0, CONTROL_DTYPE)
    count = np.bincount(group)
    share = np.zeros((len(count), pedal.shape[1]))
    np.add.at(share, group, pedal.astype(np.float64))
    down = share / count[:, None] >= 0.5
    start = np.bincount(group, weights=notes["onset_sec"]) / count
    longest = np.zeros(len(count))
    np.maximum.at(longest, group, notes["duration_sec"])
    times = pedal_sample_times(start, longest, pedal.shape[1]).reshape(-1)
    values = np.where(down, 127, 0).reshape(-1)
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    change = np.concatenate([[values[0] > 0], values[1:] != values[:-1]])
    if values[-1] > 0:
        end = float((notes["onset_sec"] + notes["duration_sec"]).max())
        times, values, change = np.append(times, end), np.append(values, 0), np.append(change, True)
    rows = np.stack([times[change], np.full(int(change.sum()), SUSTAIN), values[change]], 1)
    return make_controls(rows)


__all__ = [
    "MARKS_DTYPE",
    "PEDAL_SAMPLES",
    "PHRASE_FEATURES",
    "drop_markings",
    "expression_targets",
    "phrase_features",
    "phrase_performance",
    "written_beat_seconds",
]
