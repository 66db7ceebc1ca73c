"""``performance-rnn``: the 413-event vocabulary of Oore et al. (2018), section 6.1.

=========  =====  ==========================================================
range      ids    meaning
=========  =====  ==========================================================
NOTE_ON    0-127  press key ``pitch`` (with the velocity in force)
NOTE_OFF   128-255 release key ``pitch``
TIME_SHIFT 256-380 advance time by 1..125 steps of 8 ms (8 ms .. 1 s)
VELOCITY   381-412 velocity bin 1..32 for the following NOTE_ONs
PAD, BOS, EOS 413-415 training specials, outside the 413 events
=========  =====  ==========================================================

Encoding: times are rounded to the 8 ms grid; at one time step all NOTE_OFFs come first, then the
NOTE_ONs by pitch, each preceded by a VELOCITY event when its bin differs from the previous note's
(Performance RNN emits velocity only on change); gaps over 1 s are chained TIME_SHIFTs.  A key cannot
be pressed twice at once, so same-pitch notes are made to not overlap on the grid (a held note ends
where the key is struck again) and every note lasts at least one step.

Variants by config: ``sustain=True`` folds the sustain pedal into the note offsets first (their
RNN-SUS); ``velocity_bins=0`` drops velocity altogether (RNN-NV; decoded notes get
``default_velocity``).

Decoding never raises: ids outside the vocabulary, NOTE_OFFs of keys that are not sounding and
notes of zero length are dropped and counted; notes still sounding at the end are released there;
EOS ends the sequence, PAD and BOS are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from espressivo.core import NOTE_DTYPE, Performance
from espressivo.core.performance import canonical_order
from espressivo.errors import EspressivoError
from espressivo.tokenizers.base import TOKENIZERS, Tokenizer, Vocabulary

SPECIALS = ("PAD", "BOS", "EOS")


@dataclass(frozen=True)
class PerformanceRNNConfig:
    step_ms: float = 8.0
    max_shift_steps: int = 125
    velocity_bins: int = 32
    sustain: bool = False
    default_velocity: int = 64

    def __post_init__(self) -> None:
        if not (0 < self.step_ms <= 1000) or not (1 <= self.max_shift_steps <= 10_000):
            raise EspressivoError("step_ms must lie in (0, 1000] and max_shift_steps in 1..10000")
        if not (0 <= self.velocity_bins <= 127) or not (1 <= self.default_velocity <= 127):
            raise EspressivoError("velocity_bins must lie in 0..127 and default_velocity in 1..127")


def velocity_bin_size(bins: int) -> int:
    return math.ceil(127 / bins)


def velocity_to_bin(velocity: np.ndarray, bins: int) -> np.ndarray:
    """0-based bin of each MIDI velocity (1..127), as Magenta's Performance RNN bins them."""
    return (np.asarray(velocity, dtype=np.int64) - 1) // velocity_bin_size(bins)


def bin_to_velocity(index: np.ndarray, bins: int) -> np.ndarray:
    """The middle of each bin (so a decoded velocity re-encodes to the same bin)."""
    size = velocity_bin_size(bins)
    low = 1 + np.asarray(index, dtype=np.int64) * size
    return np.minimum(low + (size - 1) // 2, 127)


@TOKENIZERS.register()
class PerformanceRNNTokenizer(Tokenizer):
    name = "performance-rnn"
    Config = PerformanceRNNConfig

    def build_vocab(self) -> Vocabulary:
        ranges = [("NOTE_ON", 128, 0), ("NOTE_OFF", 128, 0), ("TIME_SHIFT", self.config.max_shift_steps, 1)]
        if self.config.velocity_bins:
            ranges.append(("VELOCITY", self.config.velocity_bins, 1))
        return Vocabulary(ranges + [(name, 1, 0) for name in SPECIALS])

    @property
    def n_events(self) -> int:
        """Size of the event vocabulary without the specials (413 for the paper's settings)."""
        return self.vocab["PAD"].start

    @property
    def pad_id(self) -> int:
        return self.vocab["PAD"].start

    @property
    def bos_id(self) -> int:
        return self.vocab["BOS"].start

    @property
    def eos_id(self) -> int:
        return self.vocab["EOS"].start

    # ------------------------------------------------------------------ encode
    def grid_notes(self, performance: Performance) -> np.ndarray:
        """Notes as the token stream will carry them: (on_step, off_step, pitch, velocity), sorted."""
        if self.config.sustain:
            performance = performance.apply_sustain()
        notes = performance.notes
        step = self.config.step_ms / 1000.0
        on = np.rint(notes["onset_sec"] / step).astype(np.int64)
        off = np.maximum(np.rint((notes["onset_sec"] + notes["duration_sec"]) / step).astype(np.int64), on + 1)
        pitch, velocity = notes["pitch"].astype(np.int64), notes["velocity"].astype(np.int64)
        order = np.lexsort((-velocity, on, pitch))
        on, off, pitch, velocity = on[order], off[order], pitch[order], velocity[order]
        duplicate = np.concatenate([np.zeros(min(len(on), 1), bool), (pitch[1:] == pitch[:-1]) & (on[1:] == on[:-1])])
        keep = ~duplicate  # two presses of one key on one step: the louder one stays
        on, off, pitch, velocity = on[keep], off[keep], pitch[keep], velocity[keep]
        same_next = np.concatenate([pitch[1:] == pitch[:-1], np.zeros(min(len(on), 1), bool)])
        next_on = np.concatenate([on[1:], np.zeros(min(len(on), 1), np.int64)])
        off = np.where(same_next & (off > next_on), next_on, off)
        return np.stack([on, off, pitch, velocity], axis=1)

    def encode(self, performance: Performance) -> np.ndarray:
        grid = self.grid_notes(performance)
        n = len(grid)
        vocab, bins = self.vocab, self.config.velocity_bins
        # events: releases (kind 0) before presses (kind 1) at one step, by pitch
        step = np.concatenate([grid[:, 1], grid[:, 0]])
        kind = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
        pitch = np.concatenate([grid[:, 2], grid[:, 2]])
        velocity = np.concatenate([np.zeros(n, np.int64), grid[:, 3]])
        order = np.lexsort((pitch, kind, step))
        step, kind, pitch, velocity = step[order], kind[order], pitch[order], velocity[order]
        event_id = np.where(kind == 1, vocab["NOTE_ON"].start + pitch, vocab["NOTE_OFF"].start + pitch)
        # velocity events where the bin changes from one press to the next
        with_velocity = np.zeros(len(step), np.int64)
        velocity_id = np.zeros(len(step), np.int64)
        if bins:
            presses = np.nonzero(kind == 1)[0]
            b = velocity_to_bin(velocity[presses], bins)
            changed = np.concatenate([np.ones(min(len(b), 1), bool), b[1:] != b[:-1]])
            with_velocity[presses[changed]] = 1
            velocity_id[presses] = vocab["VELOCITY"].start + b
        # time shifts before each event, chained in units of max_shift_steps
        gap = np.diff(np.concatenate([[0], step]))
        max_shift = self.config.max_shift_steps
        shifts = -(-gap // max_shift)
        length = shifts + with_velocity + 1
        start = np.concatenate([[0], np.cumsum(length)[:-1]])
        out = np.empty(int(length.sum()), np.int32)
        out[start + shifts + with_velocity] = event_id
        v = np.nonzero(with_velocity)[0]
        out[start[v] + shifts[v]] = velocity_id[v]
        if shifts.sum():
            owner = np.repeat(np.arange(len(step)), shifts)
            k = np.arange(len(owner)) - np.repeat(np.cumsum(shifts) - shifts, shifts)
            last = k == shifts[owner] - 1
            remainder = gap[owner] - (shifts[owner] - 1) * max_shift
            value = np.where(last, remainder, max_shift)
            out[start[owner] + k] = vocab["TIME_SHIFT"].start + value - 1
        return out

    def time_advance(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        r = self.vocab["TIME_SHIFT"]
        steps = np.where((ids >= r.start) & (ids < r.stop), ids - r.start + 1, 0)
        return steps * self.config.step_ms / 1000.0

    def start_ids(self) -> np.ndarray:
        """A mezzo-forte velocity event (or nothing without velocity)."""
        if not self.config.velocity_bins:
            return np.zeros(0, np.int64)
        return np.array(
            [self.vocab["VELOCITY"].start + int(velocity_to_bin(np.array([64]), self.config.velocity_bins)[0])]
        )

    # ------------------------------------------------------------------ decode
    def decode_checked(self, ids) -> tuple[Performance, int]:
        ids = self._as_ids(ids)
        vocab, cfg = self.vocab, self.config
        eos = np.nonzero(ids == self.eos_id)[0]
        if len(eos):
            ids = ids[: eos[0]]
        valid = (ids >= 0) & (ids < self.n_events)
        dropped = int(np.count_nonzero(~valid & (ids != self.pad_id) & (ids != self.bos_id)))
        ids = ids[valid]
        on_r, off_r, shift_r = vocab["NOTE_ON"], vocab["NOTE_OFF"], vocab["TIME_SHIFT"]
        shift = np.where((ids >= shift_r.start) & (ids < shift_r.stop), ids - shift_r.start + 1, 0)
        step = np.cumsum(shift)
        is_on = ids < on_r.stop
        is_off = (ids >= off_r.start) & (ids < off_r.stop)
        if cfg.velocity_bins:
            vel_r = vocab["VELOCITY"]
            is_vel = (ids >= vel_r.start) & (ids < vel_r.stop)
            last_vel = np.maximum.accumulate(np.where(is_vel, np.arange(len(ids)), -1))
            vel_bin = np.where(last_vel >= 0, ids[np.maximum(last_vel, 0)] - vel_r.start, -1)
            velocity = np.where(
                vel_bin >= 0, bin_to_velocity(np.maximum(vel_bin, 0), cfg.velocity_bins), cfg.default_velocity
            )
        else:
            velocity = np.full(len(ids), cfg.default_velocity)
        # pair presses and releases key by key, first in first out; releases of silent keys are dropped
        position = np.nonzero(is_on | is_off)[0]
        key = np.where(is_on[position], ids[position], ids[position] - off_r.start)
        delta = np.where(is_on[position], 1, -1)
        order = np.lexsort((position, key))
        position, key, delta = position[order], key[order], delta[order]
        valid_off = _valid_releases(key, delta)
        dropped += int(np.count_nonzero((delta < 0) & ~valid_off))
        keep = (delta > 0) | valid_off
        position, key, delta = position[keep], key[keep], delta[keep]
        presses, releases = position[delta > 0], position[delta < 0]
        press_key, release_key = key[delta > 0], key[delta < 0]
        rank_press = _rank_within(press_key)
        rank_release = _rank_within(release_key)
        # the k-th release of a key ends its k-th press; presses left over sound to the end
        release_step = np.full(len(presses), step[-1] if len(step) else 0)
        if len(releases):
            order_r = np.lexsort((rank_release, release_key))
            keys_r = release_key[order_r] * (len(ids) + 1) + rank_release[order_r]
            probe = press_key * (len(ids) + 1) + rank_press
            at = np.clip(np.searchsorted(keys_r, probe), 0, len(keys_r) - 1)
            closed = keys_r[at] == probe
            release_step = np.where(closed, step[releases[order_r][at]], release_step)
        on_step = step[presses]
        zero = release_step <= on_step
        dropped += int(np.count_nonzero(zero))
        seconds = cfg.step_ms / 1000.0
        notes = np.zeros(int(np.count_nonzero(~zero)), NOTE_DTYPE)
        notes["onset_sec"] = on_step[~zero] * seconds
        notes["duration_sec"] = (release_step - on_step)[~zero] * seconds
        notes["pitch"] = press_key[~zero]
        notes["velocity"] = velocity[presses][~zero]
        return Performance(canonical_order(notes)), dropped


def _rank_within(group: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of a sorted ``group`` array."""
    if len(group) == 0:
        return np.zeros(0, np.int64)
    start = np.concatenate([[True], group[1:] != group[:-1]])
    first = np.maximum.accumulate(np.where(start, np.arange(len(group)), 0))
    return np.arange(len(group)) - first


def _valid_releases(key: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """For events sorted by (key, time) with delta +1 press / -1 release: which releases find a
    sounding note.  A release is invalid exactly when the key's running sum sets a new low below 0."""
    if len(key) == 0:
        return np.zeros(0, bool)
    start = np.concatenate([[True], key[1:] != key[:-1]])
    group = np.cumsum(start) - 1
    total = np.cumsum(delta)
    base = np.concatenate([[0], total[:-1]])[start][group]
    running = total - base  # per-key running sum
    big = 4 * len(key) + 8
    shifted = running - group * big
    low = np.minimum.accumulate(shifted) + group * big  # per-key running minimum
    low = np.minimum(low, 0)
    previous_low = np.where(start, 0, np.concatenate([[0], low[:-1]]))
    return (delta < 0) & ~(running < previous_low)
