"""Training windows encoded on the fly from whole performances, for event language models (``aria`` tokens).

>>> tracks, failed = load_tracks("asap,supra", splits=("train",))
>>> windows = EventWindows(tracks, tokenizer, length=1025, augmentation=Augmentation(5, 0.2, 8), fill_rate=0.25)
>>> ids = windows.sample(np.random.default_rng(0))      # BOS, events from a random note on, PAD at a file's end

Every window starts at a note, with the pedal stated as it is there, exactly as a prompt is encoded when
generating; a window that reaches the file's end gets EOS.  With probability ``fill_rate`` a window is a
fill-in-the-middle example (``BOS SUFFIX <after the gap> GAP <before the gap> <the gap>``): the music from the gap's
end comes first, at its times from the window's origin, then the music from the origin runs into the gap
(:mod:`espressivo.generate.infill` builds the same layout).  Augmentation (Aria's: pitch, tempo, velocity) is drawn
per window and applied to the window's arrays before encoding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from espressivo.core import CONTROL_DTYPE, SUSTAIN, Performance
from espressivo.data.augment import Augmentation
from espressivo.data.prepare import list_sources
from espressivo.data.workers import pool as worker_pool
from espressivo.errors import EspressivoError
from espressivo.io.midi import read_midi

FILL_MIN_SEC, FILL_MAX_SEC = 0.5, 12.0  # gap lengths trained
SUFFIX_SHARE = 0.25  # of the window at most for what follows the gap


@dataclass(frozen=True, eq=False)
class Track:
    """One performance file: notes in onset order and its sustain-pedal changes."""

    name: str
    split: str
    notes: np.ndarray
    controls: np.ndarray


def _read(source) -> tuple[object, Performance | str]:
    try:
        return source, read_midi(source.path)
    except EspressivoError as err:
        return source, str(err)


def load_tracks(
    spec: str,
    root: str | os.PathLike | None = None,
    splits: tuple[str, ...] = ("train", "validation"),
    workers: int = 2,
) -> tuple[list[Track], list[tuple[str, str]]]:
    """Every readable file of the sources (``asap``, ``supra``, folders) in ``splits``, and the failures."""

    sources = [s for s in list_sources(spec, root) if s.split in splits]
    tracks, failed = [], []
    if workers > 1 and len(sources) >= 16:
        pool = worker_pool(workers)
        results = pool.map(_read, sources, chunksize=8)
    else:
        pool, results = None, map(_read, sources)
    try:
        for source, perf in results:
            if isinstance(perf, str) or len(perf) == 0:
                failed.append((source.path, perf if isinstance(perf, str) else "no notes"))
                continue
            controls = perf.controls[perf.controls["controller"] == SUSTAIN]
            tracks.append(Track(source.name, source.split, perf.notes, controls))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return tracks, failed


def window_performance(
    track: Track, first: int, count: int, rng: np.random.Generator | None, augmentation: Augmentation
) -> tuple[Performance, bool]:
    """Notes ``first .. first + count - 1`` of a track from the first one's onset (time 0), with the pedal as it
    is there, augmented; and whether the window reaches the file's end."""
    notes = track.notes[first : first + count].copy()
    last = first + count >= len(track.notes)
    t0 = float(notes["onset_sec"][0])
    t_end = np.inf if last else float(track.notes["onset_sec"][first + count])
    c = track.controls
    before = c[c["time_sec"] <= t0]
    inside = c[(c["time_sec"] > t0) & (c["time_sec"] < t_end)]
    state = np.zeros(1 if len(before) and before["value"][-1] >= 64 else 0, CONTROL_DTYPE)
    state["time_sec"], state["controller"], state["value"] = t0, SUSTAIN, 127
    controls = np.concatenate([state, inside])
    notes["onset_sec"] -= t0
    controls["time_sec"] -= t0
    if rng is not None and augmentation.active:
        semitones, factor, shift = augmentation.draw(notes["pitch"], rng)
        notes["pitch"] += semitones
        notes["onset_sec"] *= factor
        notes["duration_sec"] *= factor
        controls["time_sec"] *= factor
        notes["velocity"] = np.clip(notes["velocity"] + shift, 1, 127)
    return Performance(notes, controls), last


class EventWindows:
    """Random windows of ``length`` ids (BOS included) from tracks drawn in proportion to their notes."""

    def __init__(self, tracks: list[Track], tokenizer, length: int, augmentation: Augmentation | None = None,
                 fill_rate: float = 0.0):  # fmt: skip
        if not tracks:
            raise EspressivoError("no performances to draw training windows from")
        if not 0 <= fill_rate <= 1:
            raise EspressivoError("fill_rate must lie in 0..1")
        self.tracks, self.tok, self.length = tracks, tokenizer, int(length)
        sizes = np.array([len(t.notes) for t in tracks], np.float64)
        self.weights = sizes / sizes.sum()
        self.augmentation = augmentation or Augmentation()
        self.fill_rate = fill_rate
        self.notes_per_window = self.length // 2 + 8  # >= 3 ids per note: more than a window holds

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        track = self.tracks[int(rng.choice(len(self.tracks), p=self.weights))]
        first = int(rng.integers(0, len(track.notes)))
        perf, last = window_performance(track, first, self.notes_per_window, rng, self.augmentation)
        if self.fill_rate and rng.random() < self.fill_rate:
            ids = self._fill_example(perf, rng)
            if ids is not None:
                return self._pad(ids)
        return self._plain(perf, last)

    def _plain(self, perf: Performance, last: bool) -> np.ndarray:
        tok = self.tok
        ids, _, _ = tok.encode_events(perf)
        parts = [tok.start_ids(), ids] + ([np.array([tok.special("EOS")])] if last else [])
        return self._pad(np.concatenate(parts))

    def _pad(self, ids: np.ndarray) -> np.ndarray:
        ids = ids[: self.length]
        if len(ids) < self.length:
            ids = np.concatenate([ids, np.full(self.length - len(ids), self.tok.pad_id)])
        return ids.astype(np.int64)

    def _fill_example(self, perf: Performance, rng: np.random.Generator) -> np.ndarray | None:
        """``BOS SUFFIX after GAP before+gap``, or None when the window is too short for one."""
        tok = self.tok
        ids, times, _ = tok.encode_events(perf)
        room = self.length - 3
        if len(ids) < room // 2:
            return None
        budget = int(rng.integers(room // 4, room - room // 8))  # ids before the gap's end
        gap_end = float(times[min(budget, len(ids) - 1)])
        gap = float(rng.uniform(FILL_MIN_SEC, min(FILL_MAX_SEC, max(gap_end, FILL_MIN_SEC))))
        if gap_end - gap <= 0 and rng.random() < 0.5:  # a gap at the very start: only sometimes
            return None
        head = ids[times < gap_end]
        suffix = suffix_ids(tok, perf, gap_end, max_ids=min(int(room * SUFFIX_SHARE), room - len(head)))
        if len(suffix) == 0:
            return None
        return np.concatenate([tok.start_ids(), [tok.special("SUFFIX")], suffix, [tok.special("GAP")], head])


def suffix_ids(tok, perf: Performance, start_sec: float, max_ids: int) -> np.ndarray:
    """The events from ``start_sec`` on, at their times from the origin (the ticks from window 0 included), the
    pedal stated as it is at ``start_sec``; whole events only, ``max_ids`` at most."""
    step, kind, token, duration, _ = tok.events(perf)
    start = round(start_sec / tok.step_sec)
    after = step >= start
    step, kind, token, duration = step[after], kind[after], token[after], duration[after]
    down = perf.pedal_value_at([start_sec - 1e-9], SUSTAIN)[0] >= 64
    pedal_here = (step == start) & (kind != 1)
    if down and not pedal_here.any():
        step, kind = np.concatenate([[start], step]), np.concatenate([[2], kind])
        token, duration = np.concatenate([[-1], token]), np.concatenate([[-1], duration])
    ids, _ = tok._ids(step, kind, token, duration)
    if len(ids) <= max_ids:
        return ids
    # cut before the first event that does not fit whole
    heads = np.nonzero(~np.isin(ids, [tok.special("TICK")]) & ~is_tail(tok, ids))[0]
    fits = heads[heads <= max_ids]
    ends = np.concatenate([heads[1:], [len(ids)]])[: len(fits)]
    whole = ends[ends <= max_ids]
    return ids[: int(whole[-1]) if len(whole) else 0]


def is_tail(tok, ids: np.ndarray) -> np.ndarray:
    """Which ids continue an event (its ONSET or DUR), rather than start one."""
    v = tok.vocab
    return ((ids >= v["ONSET"].start) & (ids < v["ONSET"].stop)) | ((ids >= v["DUR"].start) & (ids < v["DUR"].stop))
