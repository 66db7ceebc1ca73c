"""Editable rendered MIDI: notes on the score's grid, expressive timing carried by tempo events.

Pianist Transformer's "expressive tempo mapping": a DAW or notation program opens the file with every
note where the score writes it (bars, beats and durations intact, time and key signatures included),
yet it plays back with the rendering's rubato, because each stretch between consecutive score onsets
gets the tempo that makes it last as long as it did in the rendering.

* anchors: the distinct score onsets; the anchor's time is the mean performed onset of its notes (chord
  spread is not kept: the notes sit on the grid);
* tempo of a stretch = 60 x quarters / seconds, clipped to ``min_qpm``..``max_qpm`` (a clipped stretch
  lasts a little longer or shorter; no drift accumulates beyond it);
* note ends and pedal events are mapped through the inverse (time -> quarter) map; velocities are the
  rendering's.
"""

from __future__ import annotations

import os

import numpy as np

from espressivo.core import Performance, Score, TimeMap
from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes
from espressivo.io.midi import _symusic

TPQ = 480


def anchors(score: Score, perf: Performance, min_qpm: float = 10.0, max_qpm: float = 300.0):
    """``(quarters, seconds)`` of the distinct score onsets, strictly increasing, within the tempo limits."""
    if len(perf) == 0:
        raise EspressivoError("nothing to tempo-map: the rendering has no notes")
    played = TimeMap.of(score.notes["onset_quarter"][perf.notes["id"]], perf.notes["onset_sec"], monotone=False)
    quarters, seconds = played.position, played.seconds
    if len(quarters) > 1:
        dq, dt = np.diff(quarters), np.diff(seconds)
        dt = np.clip(dt, 60.0 * dq / max_qpm, 60.0 * dq / min_qpm)
        seconds = seconds[0] + np.concatenate([[0.0], np.cumsum(dt)])
    return quarters, seconds


def _quarter_at(times: np.ndarray, quarters: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Inverse map, extended beyond the anchors with the first / last tempo."""
    if len(quarters) == 1:
        return quarters[0] + (times - seconds[0]) * 2.0  # 120 quarters per minute
    out = np.interp(times, seconds, quarters)
    first = (quarters[1] - quarters[0]) / (seconds[1] - seconds[0])
    last = (quarters[-1] - quarters[-2]) / (seconds[-1] - seconds[-2])
    out = np.where(times < seconds[0], quarters[0] + (times - seconds[0]) * first, out)
    return np.where(times > seconds[-1], quarters[-1] + (times - seconds[-1]) * last, out)


def time_signatures(score: Score) -> list[tuple[float, int, int]]:
    """``(onset_quarter, beats, beat_type)`` to write: the score's, and for a pickup (a first bar shorter than its
    time signature, as partitura numbers from the pickup's first note) a signature of the pickup's own length, so
    that every bar line falls where the score prints it (2/4 from the start would put them an eighth early)."""
    rows = [(float(r["onset_quarter"]), int(r["beats"]), int(r["beat_type"])) for r in score.time_signatures]
    starts = np.sort(score.measures["onset_quarter"]) if len(score.measures) else np.zeros(0)
    if not rows or len(starts) < 2:
        return rows
    first = [r for r in rows if r[0] <= starts[0] + 1e-9]
    _, beats, beat_type = first[-1] if first else rows[0]
    pickup = score.pickup_quarters
    if not pickup:
        return rows
    for unit in (beat_type, 8, 16, 32, 64):  # the pickup in whole units of a power-of-two note value
        count = pickup * unit / 4.0
        if unit >= beat_type and abs(count - round(count)) < 1e-6 and round(count) >= 1:
            later = [r for r in rows if r[0] > starts[0] + 1e-9]
            given = any(abs(r[0] - starts[1]) < 1e-9 for r in later)
            restated = [] if given else [(float(starts[1]), beats, beat_type)]
            return [(float(starts[0]), round(count), unit), *restated, *later]
    return rows


def tempo_mapped_bytes(score: Score, perf: Performance, max_qpm: float = 300.0) -> bytes:
    symusic = _symusic()
    quarters, seconds = anchors(score, perf, max_qpm=max_qpm)
    origin = min(0.0, float(quarters[0]))
    tick = lambda q: np.rint((np.asarray(q) - origin) * TPQ).astype(np.int64)  # noqa: E731
    notes = perf.notes
    on_q = score.notes["onset_quarter"][notes["id"]]
    off_q = _quarter_at(notes["onset_sec"] + notes["duration_sec"], quarters, seconds)
    on, off = tick(on_q), tick(off_q)
    off = np.maximum(off, on + 1)
    if off.max() >= 2**31:
        raise EspressivoError("rendering too long to write as MIDI")
    out = symusic.Score(TPQ)
    if len(quarters) > 1:
        qpm = 60.0 * np.diff(quarters) / np.diff(seconds)
        qpm = np.append(qpm, qpm[-1])
    else:
        qpm = np.array([120.0])
    # the first tempo also covers the time before the first anchor
    ticks = np.concatenate([[0], tick(quarters[1:])]) if len(quarters) > 1 else np.array([0])
    for t, value in zip(ticks.tolist(), qpm.tolist(), strict=True):
        out.tempos.append(symusic.Tempo(int(t), qpm=float(value)))
    for at, beats, beat_type in time_signatures(score):
        out.time_signatures.append(symusic.TimeSignature(int(tick(at)), beats, beat_type))
    for row in score.key_signatures:
        tonality = 1 if str(row["mode"]) == "minor" else 0
        out.key_signatures.append(symusic.KeySignature(int(tick(row["onset_quarter"])), int(row["fifths"]), tonality))
    track = symusic.Track("Piano", 0, False)
    track.notes = symusic.Note.from_numpy(
        on.astype(np.int32), (off - on).astype(np.int32), notes["pitch"].astype(np.int8),
        notes["velocity"].astype(np.int8), "tick",
    )  # fmt: skip
    controls = perf.controls
    if len(controls):
        c_ticks = np.maximum(tick(_quarter_at(controls["time_sec"], quarters, seconds)), 0)
        track.controls = symusic.ControlChange.from_numpy(
            c_ticks.astype(np.int32), controls["controller"].astype(np.uint8), controls["value"].astype(np.uint8),
            "tick",
        )  # fmt: skip
    out.tracks.append(track)
    return bytes(out.dumps_midi())


def write_tempo_mapped(score: Score, perf: Performance, path: str | os.PathLike, max_qpm: float = 300.0) -> None:
    atomic_write_bytes(path, tempo_mapped_bytes(score, perf, max_qpm))
