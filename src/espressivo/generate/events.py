"""Generation with an event language model (``aria`` tokens): improvise, continue a prompt, fill a gap.

Every row of a batch holds its music so far in absolute seconds.  Its context is that music *encoded from an
origin*, exactly as the training windows were (BOS, events from a note's onset on, the pedal stated as it is
there); for a gap, the music after the gap comes first (``BOS SUFFIX ... GAP``).  The model never attends
further back than the context it was trained with: when a context is full, each row's music is re-encoded
from a later origin so that it fills half the context, and the cache is rebuilt from that (one batched prefill
per half a context of tokens; rows of different lengths are left-padded and masked).

Sampling follows the event grammar (a head, its onset, a note's duration): the ids that cannot come next get no
probability, onsets never go back in time, and nothing is placed before ``floor_sec`` (the prompt's cut, the
gap's start).  A row stops when its music reaches ``stop_sec`` (the event that crosses it is not kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.core import Performance
from espressivo.core.performance import canonical_order, sort_controls
from espressivo.data.windows import is_tail, suffix_ids
from espressivo.errors import EspressivoError
from espressivo.generate.draw import draw

HEAD, ONSET_NOTE, ONSET_PEDAL, DURATION = 0, 1, 2, 3
MAX_IDS_PER_SECOND = 400  # a cap on ids per second of music asked for (real music: 20-60)


@dataclass
class Row:
    """One sequence being generated: ``music`` so far (absolute seconds), the time it stops at, the earliest time
    a new event may take and, for a gap, the music after it."""

    music: Performance
    stop_sec: float
    floor_sec: float = 0.0
    suffix: Performance | None = None  # what follows the gap (absolute times)
    gap_end_sec: float = 0.0


def join(a: Performance, b: Performance) -> Performance:
    """Both performances' notes and controls in one (absolute times; nothing is moved)."""
    notes = canonical_order(np.concatenate([a.notes, b.notes]))
    return Performance(notes, sort_controls(np.concatenate([a.controls, b.controls])))


def shift(perf: Performance, seconds: float) -> Performance:
    notes, controls = perf.notes.copy(), perf.controls.copy()
    notes["onset_sec"] += seconds
    controls["time_sec"] += seconds
    return Performance(notes, controls)


class EventGenerator:
    """Samples rows of music with ``model`` (a Transformer over ``tokenizer``, an AriaTokenizer) in a context of
    ``context`` ids (the training length)."""

    def __init__(self, model, tokenizer, config, context: int, generator):
        import torch

        self.torch, self.model, self.tok, self.config = torch, model, tokenizer, config
        self.context = int(min(context, model.config.max_seq_len))
        if self.context < 64:
            raise EspressivoError(f"a context of {self.context} ids is too short to generate in")
        self.generator = generator
        v = tokenizer.vocab
        self.v = v
        size = len(v)
        allowed = np.zeros((4, size), bool)
        allowed[HEAD, v["NOTE"].start : v["NOTE"].stop] = True
        allowed[HEAD, [v["PED_ON"].start, v["PED_OFF"].start, v["TICK"].start]] = True
        allowed[ONSET_NOTE, v["ONSET"].start : v["ONSET"].stop] = True
        allowed[ONSET_PEDAL, v["ONSET"].start : v["ONSET"].stop] = True
        allowed[DURATION, v["DUR"].start : v["DUR"].stop] = True
        self.grammar = torch.from_numpy(np.where(allowed, 0.0, -np.inf).astype(np.float32))
        self.tick_only = torch.full((size,), -np.inf)
        self.tick_only[v["TICK"].start] = 0.0
        self.onset_steps = torch.arange(v["ONSET"].size)
        self.window_sec = tokenizer.config.window_ms / 1000.0
        self.W = tokenizer.window_steps

    # ------------------------------------------------------------------ contexts
    def _origin(self, music: Performance, budget: int, after: float) -> float:
        """The earliest note onset from which ``music`` encodes into at most ``budget`` ids (and not before
        ``after``, the current origin)."""
        notes = music.notes["onset_sec"]
        candidates = np.unique(notes[notes >= after - 1e-9])
        if len(candidates) == 0:
            return after
        ids, times, _ = self.tok.encode_events(music, float(candidates[0]))
        # ids from each candidate origin: those of events at or after it (ticks aside), plus the pedal's state
        first = np.searchsorted(times, candidates - 1e-9, side="left")
        need = len(ids) - first + 2 + (times[-1] - candidates) / self.window_sec
        fits = np.nonzero(need <= budget)[0]
        k = int(fits[0]) if len(fits) else len(candidates) - 1
        while k < len(candidates) - 1 and len(self.tok.encode_events(music, float(candidates[k]))[0]) > budget:
            k += 1
        return float(candidates[k])

    def _context(self, row: Row, origin: float) -> tuple[np.ndarray, int]:
        """The row's ids from ``origin`` and where its music starts among them."""
        tok = self.tok
        head = [tok.special("BOS")]
        if row.suffix is not None:
            after = suffix_ids(tok, shift(row.suffix, -origin), row.gap_end_sec - origin, self.context // 4)
            head += [tok.special("SUFFIX"), *after.tolist(), tok.special("GAP")]
        music, _, _ = tok.encode_events(row.music, origin)
        return np.concatenate([np.array(head, np.int64), music]), len(head)

    def _prefill(self, rows: list[Row], keep: int):
        """Contexts for ``rows`` (each at most ``keep`` ids), left-padded into one batch; runs them."""
        torch = self.torch
        contexts, self.music_start, self.origin = [], [], []
        for i, row in enumerate(rows):
            fixed = self._context(Row(Performance.empty(), 0, suffix=row.suffix, gap_end_sec=row.gap_end_sec),
                                  self.origin_hint[i])[0]  # fmt: skip
            origin = self._origin(row.music, keep - len(fixed), self.origin_hint[i])
            ids, start = self._context(row, origin)
            if len(ids) > keep:  # more events at one onset than fit: keep the newest whole events
                ids, origin = self._newest(ids, start, keep, origin)
            if len(ids) > self.context - 16:
                raise EspressivoError("the music before the gap and after it does not fit the model's context")
            contexts.append(ids)
            self.music_start.append(start)
            self.origin.append(origin)
        width = max(len(c) for c in contexts)
        batch = np.full((len(rows), width), self.tok.pad_id, np.int64)
        valid = np.zeros((len(rows), self.context), bool)
        for i, ids in enumerate(contexts):
            batch[i, width - len(ids) :] = ids
            valid[i, width - len(ids) :] = True
        self.ids = [list(c) for c in contexts]
        self.cache = self.model.new_cache(len(rows), self.context)
        self.cache["valid"] = torch.from_numpy(valid)
        logits, self.cache = self.model.step(torch.from_numpy(batch), self.cache)
        # each row's clock: the window it is in and its last onset there, from its music's ids
        self.window = np.zeros(len(rows), np.int64)
        self.last = np.zeros(len(rows), np.int64)
        for i, ids in enumerate(contexts):
            music = np.asarray(ids[self.music_start[i] :])
            ticks = np.nonzero(music == self.v["TICK"].start)[0]
            self.window[i] = len(ticks)
            tail = music[ticks[-1] + 1 :] if len(ticks) else music
            onsets = tail[(tail >= self.v["ONSET"].start) & (tail < self.v["ONSET"].stop)]
            self.last[i] = int(onsets.max() - self.v["ONSET"].start) if len(onsets) else 0
        self.gen_start = [len(c) for c in contexts]
        self.state = np.full(len(rows), HEAD)
        return logits[:, -1]

    def _newest(self, ids: np.ndarray, start: int, keep: int, origin: float) -> tuple[np.ndarray, float]:
        """The context's head and the newest whole events of its music that fit ``keep`` ids; the origin moves
        by the windows whose TICKs were dropped."""
        v, music = self.v, ids[start:]
        heads = np.nonzero(~is_tail(self.tok, music) & (music != v["TICK"].start))[0]
        room = keep - start
        first = heads[len(music) - heads <= room]
        cut = int(first[0]) if len(first) else len(music)
        ticks = int(np.count_nonzero(music[:cut] == v["TICK"].start))
        return np.concatenate([ids[:start], music[cut:]]), origin + ticks * self.window_sec

    def _generated(self, i: int, row: Row, end: int | None = None) -> Performance:
        """The events row ``i`` generated in its current context (up to id ``end``), in absolute time."""
        ids = np.asarray(self.ids[i][self.music_start[i] : end])
        position, kind, time, _ = self.tok.parse(ids)
        fresh = position >= self.gen_start[i] - self.music_start[i]
        return shift(self.tok.realise(ids, position[fresh], kind[fresh], time[fresh]), self.origin[i])

    # ------------------------------------------------------------------ sampling
    def run(self, rows: list[Row], max_ids: int | None = None) -> list[Performance]:
        """The events generated for each row (absolute times), without the row's music before."""

        torch, c = self.torch, self.config
        rows = list(rows)
        out = [Performance.empty() for _ in rows]
        active = list(range(len(rows)))
        self.origin_hint = [0.0] * len(rows)
        limit = max_ids or int(max(r.stop_sec - r.floor_sec for r in rows) * MAX_IDS_PER_SECOND) + 64
        self.model.eval()
        with torch.no_grad():
            logits = self._prefill([rows[i] for i in active], self.context * 3 // 4)
            for _ in range(limit):
                if self.cache["pos"] >= self.context:  # full: re-encode from later origins, half a context each
                    for j, i in enumerate(active):
                        rows[i].music = join(rows[i].music, self._generated(j, rows[i]))
                        out[i] = join(out[i], self._generated(j, rows[i]))
                        self.origin_hint[j] = self.origin[j]
                    logits = self._prefill([rows[i] for i in active], self.context // 2)
                logits = logits.float() + self._mask(rows, active)
                token = draw(logits, self.generator, c.temperature, c.top_p, c.min_p, c.top_k)
                done = self._advance(token.numpy(), rows, active)
                for j in np.nonzero(done >= 0)[0]:
                    i = active[j]
                    final = self._generated(int(j), rows[i], end=int(done[j]))
                    rows[i].music = join(rows[i].music, final)
                    out[i] = join(out[i], final)
                if (done >= 0).any():
                    keep = np.nonzero(done < 0)[0]
                    if len(keep) == 0:
                        return out
                    self._select(keep)
                    active = [active[j] for j in keep]
                    token, logits = token[keep], None
                logits, self.cache = self.model.step(token[:, None], self.cache)
                logits = logits[:, -1]
        for j, i in enumerate(active):  # the id cap was reached
            out[i] = join(out[i], self._generated(j, rows[i]))
        return out

    def _mask(self, rows, active):
        """Additive logits: the grammar, onsets not back in time nor before the floor, no onset past the window
        when the floor is beyond it (only a TICK)."""
        torch, v = self.torch, self.v
        mask = self.grammar[torch.from_numpy(self.state)]  # indexing copies
        floor = np.array([rows[i].floor_sec - self.origin[j] for j, i in enumerate(active)])
        floor_step = np.ceil(floor / self.tok.step_sec - 1e-6).astype(np.int64) - self.window * self.W
        lowest = np.maximum(self.last, floor_step)
        onset_rows = np.nonzero((self.state == ONSET_NOTE) | (self.state == ONSET_PEDAL))[0]
        if len(onset_rows):
            below = self.onset_steps[None, :] < torch.from_numpy(lowest[onset_rows])[:, None]
            block = mask[onset_rows, v["ONSET"].start : v["ONSET"].stop]
            mask[onset_rows, v["ONSET"].start : v["ONSET"].stop] = block.masked_fill(below, -np.inf)
        beyond = np.nonzero((self.state == HEAD) & (lowest >= self.W))[0]
        if len(beyond):
            mask[beyond] = self.tick_only
        return mask

    def _advance(self, token: np.ndarray, rows, active) -> np.ndarray:
        """Moves each row's grammar state and clock by its new id; returns, per row, -1 or the id position its
        music stops at (the head of the event, or the TICK, that reaches ``stop_sec``)."""
        v = self.v
        done = np.full(len(token), -1)
        for j in range(len(active)):
            self.ids[j].append(int(token[j]))
        state = self.state
        is_tick = (state == HEAD) & (token == v["TICK"].start)
        is_note = (state == HEAD) & (token >= v["NOTE"].start) & (token < v["NOTE"].stop)
        is_onset = (state == ONSET_NOTE) | (state == ONSET_PEDAL)
        self.window = self.window + is_tick
        self.last = np.where(is_tick, 0, np.where(is_onset, token - v["ONSET"].start, self.last))
        now = self.origin_array() + (self.window * self.W + self.last) * self.tok.step_sec
        stop = np.array([rows[i].stop_sec for i in active])
        crossed = (is_tick | is_onset) & (now >= stop - 1e-9)
        position = np.array([len(ids) for ids in self.ids]) - 1
        done = np.where(crossed, np.where(is_onset, position - 1, position), -1)
        self.state = np.select(
            [is_note, (state == HEAD) & ~is_tick & ~is_note, state == ONSET_NOTE],
            [ONSET_NOTE, ONSET_PEDAL, DURATION],
            HEAD,
        )
        return done

    def origin_array(self) -> np.ndarray:
        return np.asarray(self.origin, np.float64)

    def _select(self, keep: np.ndarray) -> None:
        index = self.torch.from_numpy(keep)
        self.cache = self.model.reorder_state(self.cache, index)
        for name in ("ids", "music_start", "origin", "gen_start", "origin_hint"):
            values = getattr(self, name)
            setattr(self, name, [values[k] for k in keep])
        self.window, self.last, self.state = self.window[keep], self.last[keep], self.state[keep]


def sampling_model(model):
    """The model as token-by-token sampling runs it: a transformer with float16 linear layers (memory-bound steps
    twice as fast, the same likelihood); any other model as it is."""
    twin = getattr(model, "for_sampling", None)
    return twin() if twin is not None else model


def sample(pretrained, config, rows: list[Row]) -> list[Performance]:
    """Generated events for each row (absolute times), with ``config``'s sampling settings and seed."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    model = sampling_model(pretrained.model)
    engine = EventGenerator(model, pretrained.tokenizer, config, pretrained.context, generator)
    return engine.run(rows)
