"""``aria``: note-level events at absolute times inside 5-s windows, with the sustain pedal as events
(the layout of EleutherAI Aria's ``AbsTokenizer`` with its later ``include_pedal`` option).

Every event starts with a token that says what happens, followed by when (and how long)::

    NOTE_k    ONSET_t  DUR_d     a key press: k = (pitch - 21) * velocity_bins + velocity level
    PED_ON    ONSET_t            the sustain pedal goes down (CC64 >= 64)
    PED_OFF   ONSET_t            ... and up
    TICK                         the next 5-s window begins (one per window crossed)

==========  ====================================================================================
NOTE        the 88 keys (21..108) x ``velocity_bins`` levels (16: velocity 4, 12, .., 124); a note
            outside the keyboard is moved by octaves onto it (counted as altered)
ONSET       time inside the current window, 0 .. window_ms - step, in ``time_step_ms`` steps
DUR         key-down time in steps, 0 .. ``max_duration_ms`` (longer notes are clamped, counted)
PED_*       the sustain pedal's changes on the same grid (a press shorter than a step vanishes);
            the soft and sostenuto pedals are not modelled
==========  ====================================================================================

Events are in time order; at one time step a release comes before the notes and a press after them.
A note always carries its duration, so no key can be left hanging.  A sequence encoded from ``origin_sec``
states the pedal as it is there (``PED_ON`` at 0 when it is down).  Specials: ``PAD BOS EOS`` and, for
filling a gap (:mod:`espressivo.generate.infill`), ``SUFFIX`` (what follows the gap, at its own times from
the origin, comes first) and ``GAP`` (then the music from the origin, continued into the gap).

Decoding never raises: an event whose tokens do not follow the grammar is dropped and counted; EOS ends
the sequence; PAD and BOS are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.core import CONTROL_DTYPE, NOTE_DTYPE, PIANO_MAX_PITCH, PIANO_MIN_PITCH, SUSTAIN, Performance
from espressivo.core.performance import canonical_order, pedal_intervals
from espressivo.errors import EspressivoError
from espressivo.tokenizers.base import TOKENIZERS, Tokenizer, Vocabulary

KEYS = PIANO_MAX_PITCH - PIANO_MIN_PITCH + 1
SPECIALS = ("PED_ON", "PED_OFF", "TICK", "PAD", "BOS", "EOS", "SUFFIX", "GAP")
# event kinds, in the order they take at one time step
_OFF, _NOTE, _ON = 0, 1, 2


@dataclass(frozen=True)
class AriaConfig:
    time_step_ms: int = 10
    window_ms: int = 5000
    max_duration_ms: int = 5000
    velocity_bins: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.time_step_ms <= 100 or self.window_ms % self.time_step_ms:
            raise EspressivoError("time_step_ms must lie in 1..100 and divide window_ms")
        if not (self.time_step_ms < self.window_ms <= 60_000 and 0 < self.max_duration_ms <= 60_000):
            raise EspressivoError("window_ms must lie in (time_step_ms, 60000] and max_duration_ms in (0, 60000]")
        if not 1 <= self.velocity_bins <= 127:
            raise EspressivoError("velocity_bins must lie in 1..127")


@TOKENIZERS.register()
class AriaTokenizer(Tokenizer):
    name = "aria"
    Config = AriaConfig

    def build_vocab(self) -> Vocabulary:
        c = self.config
        return Vocabulary(
            [
                ("NOTE", KEYS * c.velocity_bins, 0),
                ("ONSET", c.window_ms // c.time_step_ms, 0),
                ("DUR", c.max_duration_ms // c.time_step_ms + 1, 0),
            ]
            + [(name, 1, 0) for name in SPECIALS]
        )

    @property
    def step_sec(self) -> float:
        return self.config.time_step_ms / 1000.0

    @property
    def window_steps(self) -> int:
        return self.config.window_ms // self.config.time_step_ms

    @property
    def pad_id(self) -> int:
        return self.vocab["PAD"].start

    def special(self, name: str) -> int:
        return self.vocab[name].start

    # ------------------------------------------------------------------ velocity
    @property
    def _velocity_width(self) -> float:
        return 128.0 / self.config.velocity_bins

    def _velocity_level(self, velocity: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(velocity / self._velocity_width), 0, self.config.velocity_bins - 1).astype(np.int64)

    def _level_velocity(self, level: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((level + 0.5) * self._velocity_width), 1, 127).astype(np.int64)

    # ------------------------------------------------------------------ encode
    def encode(self, performance: Performance) -> np.ndarray:
        return self.encode_checked(performance)[0]

    def encode_checked(self, performance: Performance, origin_sec: float = 0.0) -> tuple[np.ndarray, int]:
        ids, _, altered = self.encode_events(performance, origin_sec)
        return ids, altered

    def events(self, performance: Performance, origin_sec: float = 0.0):
        """The events from ``origin_sec`` on, in token order: ``(step, kind, note_token, duration_steps,
        altered)`` arrays (``note_token`` and ``duration_steps`` are -1 for pedal events)."""
        c = self.config
        notes = performance.notes
        onset = np.rint((notes["onset_sec"] - origin_sec) / self.step_sec).astype(np.int64)
        keep = onset >= 0
        notes, onset = notes[keep], onset[keep]
        pitch = notes["pitch"].astype(np.int64)
        moved = np.where(pitch < PIANO_MIN_PITCH, PIANO_MIN_PITCH + (pitch - PIANO_MIN_PITCH) % 12, pitch)
        moved = np.where(moved > PIANO_MAX_PITCH, PIANO_MAX_PITCH - 11 + (moved - PIANO_MAX_PITCH - 1) % 12, moved)
        raw_duration = np.rint(notes["duration_sec"] / self.step_sec).astype(np.int64)
        duration = np.clip(raw_duration, 0, c.max_duration_ms // c.time_step_ms)
        altered = int(np.count_nonzero((moved != pitch) | (duration != raw_duration)))
        token = (moved - PIANO_MIN_PITCH) * c.velocity_bins + self._velocity_level(notes["velocity"].astype(np.int64))
        # the sustain pedal on the grid: presses that vanish there are dropped, touching ones merged
        down, up = pedal_intervals(performance.controls, SUSTAIN, end_sec=max(performance.end_sec, origin_sec))
        sustain = performance.controls[performance.controls["controller"] == SUSTAIN]
        still_down = bool(len(sustain)) and sustain["value"][-1] >= 64  # never released: no release is made up
        if still_down:
            up[-1] = max(float(up[-1]), origin_sec) + 1e6
        down_step = np.rint((down - origin_sec) / self.step_sec).astype(np.int64)
        up_step = np.rint((up - origin_sec) / self.step_sec).astype(np.int64)
        live = up_step > np.maximum(down_step, 0)
        down_step, up_step = np.maximum(down_step[live], 0), up_step[live]
        if len(down_step) > 1:  # a release and a press on the same step: the pedal stays down
            first = np.concatenate([[True], down_step[1:] > up_step[:-1]])
            down_step, up_step = down_step[first], np.maximum.reduceat(up_step, np.nonzero(first)[0])
        releases = up_step[:-1] if still_down and len(up_step) else up_step
        n_notes, n_on, n_off = len(onset), len(down_step), len(releases)
        step = np.concatenate([onset, down_step, releases])
        kind = np.concatenate([np.full(n_notes, _NOTE), np.full(n_on, _ON), np.full(n_off, _OFF)])
        tokens = np.concatenate([token, np.full(n_on + n_off, -1)])
        durations = np.concatenate([duration, np.full(n_on + n_off, -1)])
        order = np.lexsort((durations, tokens, kind, step))
        return step[order], kind[order], tokens[order], durations[order], altered

    def encode_events(self, performance: Performance, origin_sec: float = 0.0):
        """``(ids, event_time_sec, altered)``: the ids from ``origin_sec`` on, the time (from the origin) of
        the event each id belongs to (a TICK: its window's start), and the count of altered notes."""
        step, kind, token, duration, altered = self.events(performance, origin_sec)
        return (*self._ids(step, kind, token, duration), altered)

    def _ids(self, step, kind, token, duration, window0: int = 0):
        v, w = self.vocab, self.window_steps
        if len(step) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        window = step // w
        ticks = np.diff(np.concatenate([[window0], window]))
        size = np.where(kind == _NOTE, 3, 2)
        length = ticks + size
        starts = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
        total = int(length.sum())
        ids = np.full(total, v["TICK"].start, np.int64)
        times = np.zeros(total)
        # every tick of an event's run sits at its window's start; the event's own tokens at its time
        owner = np.repeat(np.arange(len(step)), length)
        within = np.arange(total) - starts[owner]
        tick_window = window[owner] - ticks[owner] + within + 1
        times[:] = np.where(within < ticks[owner], tick_window * w, step[owner]) * self.step_sec
        head = starts + ticks
        kind_token = np.select(
            [kind == _NOTE, kind == _ON], [v["NOTE"].start + token, v["PED_ON"].start], v["PED_OFF"].start
        )
        ids[head] = kind_token
        ids[head + 1] = v["ONSET"].start + step % w
        notes = kind == _NOTE
        ids[head[notes] + 2] = v["DUR"].start + duration[notes]
        return ids, times

    def time_advance(self, ids) -> np.ndarray:
        """Seconds each id moves the music on: a TICK to the next window, an ONSET to its time in the window
        (from the previous ONSET)."""
        times = self.times(ids)
        return np.diff(np.concatenate([[0.0], times]))

    def times(self, ids, start_sec: float = 0.0) -> np.ndarray:
        """The music's time (seconds from the origin) after each id: a TICK moves to its window's start, an
        ONSET to its time inside the current window; other ids keep the time."""
        ids = np.asarray(ids, dtype=np.int64)
        v, w = self.vocab, self.config.window_ms / 1000.0
        window = np.cumsum(ids == v["TICK"].start)
        is_onset = (ids >= v["ONSET"].start) & (ids < v["ONSET"].stop)
        inside = np.where(is_onset, (ids - v["ONSET"].start) * self.step_sec, 0.0)
        # forward-fill the last onset inside each window (reset by a TICK)
        marker = np.where(is_onset | (ids == v["TICK"].start), np.arange(len(ids)), -1)
        last = np.maximum.accumulate(marker) if len(ids) else marker
        value = np.where(last >= 0, inside[np.maximum(last, 0)], 0.0)
        return start_sec + window * w + value

    def start_ids(self) -> np.ndarray:
        return np.array([self.special("BOS")], np.int64)

    # ------------------------------------------------------------------ decode
    def parse(self, ids) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The events of a token sequence: ``(position, kind, time_sec)`` of each well-formed event (its first
        token's position) and how many malformed ones were dropped.  Times count TICKs from the start."""
        ids = self._as_ids(ids)
        v = self.vocab

        def inside(name, values):
            return (values >= v[name].start) & (values < v[name].stop)

        n = len(ids)
        nxt = np.concatenate([ids[1:], [-1]])[:n]
        nxt2 = np.concatenate([ids[2:], [-1, -1]])[:n]
        is_note = inside("NOTE", ids)
        is_pedal = (ids == v["PED_ON"].start) | (ids == v["PED_OFF"].start)
        note_ok = is_note & inside("ONSET", nxt) & inside("DUR", nxt2)
        pedal_ok = is_pedal & inside("ONSET", nxt)
        used = np.zeros(n, bool)
        for offset, which in ((0, note_ok | pedal_ok), (1, note_ok | pedal_ok), (2, note_ok)):
            used[np.nonzero(which)[0] + offset] = True
        structural = np.isin(ids, [v[s].start for s in ("TICK", "PAD", "BOS", "EOS", "SUFFIX", "GAP")])
        stray = ~used & ~structural  # a token outside any well-formed event
        # one dropped event per malformed head, and per run of stray times that follows no head
        after_stray = np.concatenate([[False], stray[:-1]])
        dropped = int(np.count_nonzero(stray & (is_note | is_pedal | ~after_stray)))
        window = np.cumsum(ids == v["TICK"].start)
        position = np.nonzero(note_ok | pedal_ok)[0]
        kind = np.where(note_ok[position], _NOTE, np.where(ids[position] == v["PED_ON"].start, _ON, _OFF))
        time = (window[position] * self.window_steps + nxt[position] - v["ONSET"].start) * self.step_sec
        return position, kind, time, dropped

    def decode_checked(self, ids) -> tuple[Performance, int]:
        ids = self._as_ids(ids)
        v = self.vocab
        eos = np.nonzero(ids == v["EOS"].start)[0]
        if len(eos):
            ids = ids[: eos[0]]
        position, kind, time, dropped = self.parse(ids)
        return self.realise(ids, position, kind, time), dropped

    def realise(self, ids, position, kind, time) -> Performance:
        """A performance of parsed events (see :meth:`parse`)."""
        v, c = self.vocab, self.config
        notes_at = position[kind == _NOTE]
        token = ids[notes_at] - v["NOTE"].start
        notes = np.zeros(len(notes_at), NOTE_DTYPE)
        notes["onset_sec"] = time[kind == _NOTE]
        notes["duration_sec"] = (ids[notes_at + 2] - v["DUR"].start) * self.step_sec
        notes["pitch"] = PIANO_MIN_PITCH + token // c.velocity_bins
        notes["velocity"] = self._level_velocity(token % c.velocity_bins)
        pedal = kind != _NOTE
        p_time, p_down = time[pedal], kind[pedal] == _ON
        order = np.argsort(p_time, kind="stable")
        p_time, p_down = p_time[order], p_down[order]
        change = p_down != np.concatenate([[False], p_down[:-1]])  # only what changes the pedal's state
        controls = np.zeros(int(change.sum()), CONTROL_DTYPE)
        controls["time_sec"], controls["controller"] = p_time[change], SUSTAIN
        controls["value"] = np.where(p_down[change], 127, 0)
        return Performance(canonical_order(notes), controls)
