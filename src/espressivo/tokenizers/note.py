"""``note``: one fixed block of tokens per note, for transformers (Pianist Transformer's layout).

Each note, in (onset, pitch) order, is the block::

    PITCH  IOI  VELOCITY  DURATION  PEDAL_1 .. PEDAL_k

==========  ===================================================================================
PITCH       MIDI pitch 0..127
IOI         time since the previous note's onset (the first note: since 0), in ``time_step_ms``
            steps, clamped to ``max_ioi_ms`` (a longer rest is shortened to it)
VELOCITY    ``velocity_bins`` levels (128: the MIDI value itself)
DURATION    key-down time in steps, 0..``max_duration_ms`` (longer notes are clamped)
PEDAL_j     sustain pedal (CC64) sampled at onset + (j-1)/k of the time to the next later onset (chord
            notes share it; the last notes: of their duration), quantised to ``pedal_levels`` (2: up/down)
==========  ===================================================================================

Each slot has its own id range (``vocab["IOI"]``, ...), so a model can mask every position to its
valid ids.  Specials ``PAD BOS EOS MASK`` come last (``MASK`` is for masked-denoising pretraining).

Defaults are Pianist Transformer's (1 ms steps, IOI < 5 s, duration < 5 s, 128 velocities, 4 pedal
samples of 128 values); ``time_step_ms=10, velocity_bins=12`` approaches Aria's resolution.

A *score* is encoded as its deadpan performance at the written tempo (:meth:`encode_score`): the
same vocabulary, so unaligned performance MIDI can pretrain a score-to-performance renderer.

Decoding never raises: blocks holding an id outside their slot's range (or a MASK) and a trailing
incomplete block are dropped and counted; EOS ends the sequence; PAD and BOS are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.core import CONTROL_DTYPE, NOTE_DTYPE, SUSTAIN, Performance, Score
from espressivo.core.performance import canonical_order
from espressivo.errors import EspressivoError
from espressivo.tokenizers.base import TOKENIZERS, Tokenizer, Vocabulary

SPECIALS = ("PAD", "BOS", "EOS", "MASK")
SLOTS = ("PITCH", "IOI", "VELOCITY", "DURATION")


@dataclass(frozen=True)
class NoteConfig:
    time_step_ms: float = 1.0
    max_ioi_ms: float = 4990.0
    max_duration_ms: float = 4999.0
    velocity_bins: int = 128
    pedal_samples: int = 4
    pedal_levels: int = 128

    def __post_init__(self) -> None:
        if not 0 < self.time_step_ms <= 1000:
            raise EspressivoError("time_step_ms must lie in (0, 1000]")
        if not (0 < self.max_ioi_ms <= 60_000 and 0 < self.max_duration_ms <= 60_000):
            raise EspressivoError("max_ioi_ms and max_duration_ms must lie in (0, 60000]")
        if not 1 <= self.velocity_bins <= 128 or not 0 <= self.pedal_samples <= 16 or not 2 <= self.pedal_levels <= 128:
            raise EspressivoError("velocity_bins must lie in 1..128, pedal_samples in 0..16, pedal_levels in 2..128")


@TOKENIZERS.register()
class NoteTokenizer(Tokenizer):
    name = "note"
    Config = NoteConfig

    def build_vocab(self) -> Vocabulary:
        c = self.config
        ranges = [
            ("PITCH", 128, 0),
            ("IOI", self._steps(c.max_ioi_ms) + 1, 0),
            ("VELOCITY", c.velocity_bins, 0),
            ("DURATION", self._steps(c.max_duration_ms) + 1, 0),
        ]
        if c.pedal_samples:
            ranges.append(("PEDAL", c.pedal_levels, 0))
        return Vocabulary(ranges + [(name, 1, 0) for name in SPECIALS])

    def _steps(self, ms: float) -> int:
        return round(ms / self.config.time_step_ms)

    @property
    def block(self) -> int:
        """Tokens per note."""
        return len(SLOTS) + self.config.pedal_samples

    @property
    def slot_ranges(self) -> list[tuple[int, int]]:
        """``(first_id, stop_id)`` of the valid ids at each position of a note block."""
        names = list(SLOTS) + ["PEDAL"] * self.config.pedal_samples
        return [(self.vocab[n].start, self.vocab[n].stop) for n in names]

    def special(self, name: str) -> int:
        return self.vocab[name].start

    # ------------------------------------------------------------------ value <-> level
    def _velocity_level(self, velocity: np.ndarray) -> np.ndarray:
        bins = self.config.velocity_bins
        if bins == 128:
            return velocity.astype(np.int64)
        return np.clip(np.rint(velocity / 127.0 * (bins - 1)), 0, bins - 1).astype(np.int64)

    def _level_velocity(self, level: np.ndarray) -> np.ndarray:
        bins = self.config.velocity_bins
        if bins == 128:
            return np.clip(level, 1, 127)
        return np.clip(np.rint(level * 127.0 / (bins - 1)), 1, 127).astype(np.int64)

    def _pedal_level(self, value: np.ndarray) -> np.ndarray:
        levels = self.config.pedal_levels
        if levels == 2:
            return (value >= 64).astype(np.int64)
        return np.clip(np.rint(value / 127.0 * (levels - 1)), 0, levels - 1).astype(np.int64)

    def _level_pedal(self, level: np.ndarray) -> np.ndarray:
        levels = self.config.pedal_levels
        if levels == 2:
            return np.where(level > 0, 127, 0)
        return np.rint(level * 127.0 / (levels - 1)).astype(np.int64)

    # ------------------------------------------------------------------ encode
    def encode(self, performance: Performance) -> np.ndarray:
        return self.encode_checked(performance)[0]

    def encode_checked(self, performance: Performance) -> tuple[np.ndarray, int]:
        c, v = self.config, self.vocab
        step = c.time_step_ms / 1000.0
        all_onsets = np.rint(performance.notes["onset_sec"] / step).astype(np.int64)
        all_durations = np.rint(performance.notes["duration_sec"] / step).astype(np.int64)
        # the order decoding restores: (onset, pitch, duration) on the grid
        order = np.lexsort((all_durations, performance.notes["pitch"], all_onsets))
        notes, onset_steps = performance.notes[order], all_onsets[order]
        raw_ioi = np.diff(np.concatenate([[0], onset_steps]))
        ioi = np.clip(raw_ioi, 0, v["IOI"].size - 1)
        duration = np.clip(all_durations[order], 0, v["DURATION"].size - 1)
        altered = int(((raw_ioi != ioi) | (all_durations[order] != duration)).sum())
        columns = [
            v["PITCH"].start + notes["pitch"].astype(np.int64),
            v["IOI"].start + ioi,
            v["VELOCITY"].start + self._velocity_level(notes["velocity"]),
            v["DURATION"].start + duration,
        ]
        if c.pedal_samples:
            # sampled where the decoded notes will be (clamped IOIs move later notes), so a decoded
            # sequence re-encodes to itself
            grid_onsets = np.cumsum(ioi) * step
            columns += list(self._pedal_columns(performance, grid_onsets, duration * step))
        return np.stack(columns, axis=1).reshape(-1).astype(np.int32), altered

    def _pedal_times(self, onset_sec: np.ndarray, duration_sec: np.ndarray) -> np.ndarray:
        """(notes, samples) times at which the pedal is sampled: spread over the time to the next
        later onset (chord notes share it); for the notes of the last onset, over their duration."""
        k = np.searchsorted(onset_sec, onset_sec, side="right")
        later = k < len(onset_sec)
        span = np.where(later, onset_sec[np.minimum(k, len(onset_sec) - 1)] - onset_sec, duration_sec)
        fractions = np.arange(self.config.pedal_samples) / self.config.pedal_samples
        return onset_sec[:, None] + span[:, None] * fractions[None, :]

    def _pedal_columns(self, performance: Performance, onset_sec: np.ndarray, duration_sec: np.ndarray):
        times = self._pedal_times(onset_sec, duration_sec)
        values = performance.pedal_value_at(times.reshape(-1), SUSTAIN).reshape(times.shape)
        levels = self.vocab["PEDAL"].start + self._pedal_level(values)
        return levels.T

    def encode_score(self, score: Score, qpm: float | None = None, velocity: int = 64) -> np.ndarray:
        """A score as its deadpan performance (written tempo, one velocity, no pedal)."""
        return self.encode(score.to_performance(qpm=qpm, velocity=velocity))

    def time_advance(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        r = self.vocab["IOI"]
        return np.where((ids >= r.start) & (ids < r.stop), ids - r.start, 0) * self.config.time_step_ms / 1000.0

    # ------------------------------------------------------------------ decode
    def decode_checked(self, ids) -> tuple[Performance, int]:
        ids = self._as_ids(ids)
        eos = np.nonzero(ids == self.special("EOS"))[0]
        if len(eos):
            ids = ids[: eos[0]]
        ids = ids[(ids != self.special("PAD")) & (ids != self.special("BOS"))]
        block = self.block
        complete = len(ids) // block
        dropped = int(len(ids) > complete * block)
        table = ids[: complete * block].reshape(complete, block)
        ok = np.ones(complete, bool)
        for position, (low, high) in enumerate(self.slot_ranges):
            ok &= (table[:, position] >= low) & (table[:, position] < high)
        dropped += int(np.count_nonzero(~ok))
        table = table[ok]
        v, c = self.vocab, self.config
        step = c.time_step_ms / 1000.0
        onset = np.cumsum(table[:, 1] - v["IOI"].start) * step
        notes = np.zeros(len(table), NOTE_DTYPE)
        notes["onset_sec"] = onset
        notes["duration_sec"] = (table[:, 3] - v["DURATION"].start) * step
        notes["pitch"] = table[:, 0] - v["PITCH"].start
        notes["velocity"] = self._level_velocity(table[:, 2] - v["VELOCITY"].start)
        controls = np.zeros(0, CONTROL_DTYPE)
        if c.pedal_samples and len(table):
            times = self._pedal_times(onset, notes["duration_sec"]).reshape(-1)
            values = self._level_pedal(table[:, 4:].reshape(-1) - v["PEDAL"].start)
            order = np.argsort(times, kind="stable")
            times, values = times[order], values[order]
            change = np.concatenate([[values[0] > 0], values[1:] != values[:-1]])
            controls = np.zeros(int(change.sum()), CONTROL_DTYPE)
            controls["time_sec"], controls["controller"], controls["value"] = times[change], SUSTAIN, values[change]
        return Performance(canonical_order(notes), controls), dropped
