"""Score -> performance with a trained renderer: any length, sampled, reproducible.

>>> pretrained = load_pretrained("renderer-small")
>>> result = render(pretrained, read_score("etude.musicxml"), RenderOptions(temperature=1.0, top_p=0.95, seed=3))
>>> result.performance            # one note per score note; notes["id"] = the score note's row

**Long scores** are rendered in overlapping windows of ``window`` notes.  Each window's encoder sees the
whole window of score; its decoder is first fed the last ``context`` already-rendered notes (teacher
forced, so tempo and dynamics carry over), then samples new notes up to a quarter window before the
window's end (those notes still had a quarter window of score ahead of them).  Every note is sampled
once, in one continuous sequence of IOIs: there is nothing to stitch.

**Sampling.**  Pitch is forced to the score's; then IOI, velocity, duration and the pedal samples are
drawn in turn (temperature, top-p), each seeing the ones before.  ``prime`` hands over the first notes of
a human performance (used by the evaluation's primed protocol).

**Global controls** act on the result: ``tempo`` (quarter notes per minute: the score is given to the
model at that tempo and the rendering is then stretched so its mean tempo is exactly that),
``tempo_scale`` (faster > 1), ``dynamics_scale`` (velocity contrast around the mean, > 1 = wider).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.core import Performance, Score
from espressivo.errors import EspressivoError
from espressivo.features.score import score_features
from espressivo.features.slots import (
    decode_slots,
    dynamics_velocity,
    feature_matrix,
    render_order,
    score_slots,
)


@dataclass(frozen=True)
class RenderOptions:
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0
    tempo: float | None = None  # quarter notes per minute
    tempo_scale: float = 1.0
    dynamics_scale: float = 1.0
    window: int = 256
    context: int = 64

    def __post_init__(self) -> None:
        if not 0 < self.temperature <= 10 or not 0 < self.top_p <= 1:
            raise EspressivoError("need 0 < temperature <= 10 and 0 < top-p <= 1")
        if self.tempo is not None and not 10 <= self.tempo <= 400:
            raise EspressivoError("--tempo must lie in 10..400 quarter notes per minute")
        if not 0.25 <= self.tempo_scale <= 4 or not 0 <= self.dynamics_scale <= 4:
            raise EspressivoError("--tempo-scale must lie in 0.25..4 and --dynamics-scale in 0..4")
        if not 16 <= self.window <= 4096 or not 0 <= self.context <= self.window // 4:
            raise EspressivoError("window must lie in 16..4096 notes and context in 0..window/4")


@dataclass(frozen=True)
class ScoreInputs:
    """A score prepared for the renderer (renderer order: ``order[i]`` = the score row of note i)."""

    order: np.ndarray
    src: np.ndarray  # (n, S) slot classes
    features: np.ndarray  # (n, F)


@dataclass(frozen=True)
class Rendering:
    performance: Performance  # notes["id"] = score row
    score: Score
    options: RenderOptions


def score_inputs(score: Score, tokenizer, qpm: float | None = None) -> ScoreInputs:
    if len(score) == 0:
        raise EspressivoError("the score has no notes to render")
    notes = score.notes
    sf = score_features(score)
    q = notes["onset_quarter"]
    onset = score.seconds_from_quarter(q, qpm)
    duration = score.seconds_from_quarter(q + notes["duration_quarter"], qpm) - onset
    order = render_order(onset, notes["pitch"], notes["is_grace"])
    src = score_slots(
        onset[order], duration[order], notes["pitch"][order], dynamics_velocity(sf["dynamic"][order]), tokenizer
    )
    src[0, 1] = 0
    return ScoreInputs(order, src, feature_matrix(sf[order]))


def _sample(logits, temperature: float, top_p: float, generator):
    import torch

    logits = logits.float() / temperature
    if top_p < 1:
        sorted_logits, index = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, index, sorted_logits)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


def render_slots(
    model, inputs: ScoreInputs, options: RenderOptions, prime: np.ndarray | None = None, variations: int = 1
) -> np.ndarray:
    """Sample (variations, n, S) slot classes for the score notes (see the module docstring)."""
    import torch

    c = model.config
    src = inputs.src
    n, slots = src.shape
    if prime is not None and (prime.ndim != 2 or prime.shape[1] != slots or len(prime) > n):
        raise EspressivoError("prime must be (k <= notes, slots) slot classes")
    window = min(options.window, c.max_notes)
    context = min(options.context, window // 4)
    generator = torch.Generator().manual_seed(int(options.seed))
    out = np.repeat(src[None, :, :1], variations, axis=0)
    out = np.concatenate([out, np.zeros((variations, n, slots - 1), np.int64)], axis=2)
    committed = 0
    if prime is not None and len(prime):
        out[:, : len(prime)] = prime
        committed = len(prime)
    src_t = torch.from_numpy(src)[None]
    feats_t = torch.from_numpy(inputs.features)[None]
    performed = torch.from_numpy(out)
    with torch.inference_mode():
        while committed < n:
            start = max(0, committed - context)
            stop = min(start + window, n)
            end = n if stop == n else max(stop - window // 4, committed + 1)
            memory = model.encode(src_t[:, start:stop], feats_t[:, start:stop]).expand(variations, -1, -1)
            cache = model.new_cache(variations, stop - start)
            prompt = committed - start
            if prompt:
                if start == 0:
                    x = torch.cat(
                        [
                            model.decoder_input(memory[:, :1], None),
                            model.decoder_input(memory[:, 1:prompt], performed[:, : prompt - 1]),
                        ],
                        1,
                    )
                else:
                    x = model.decoder_input(memory[:, :prompt], performed[:, start - 1 : committed - 1])
                model.decode(x, cache)
            for i in range(committed, end):
                j = i - start
                previous = None if i == 0 else performed[:, i - 1 : i]
                hidden = model.decode(model.decoder_input(memory[:, j : j + 1], previous), cache)[:, 0]
                pitch = performed[:, i, 0]
                context_sum = model.slot_embed[0](pitch)
                for s in range(1, slots):
                    logits = model.slot_logits(hidden, s, context_sum)
                    choice = _sample(logits, options.temperature, options.top_p, generator)
                    performed[:, i, s] = choice
                    if s < len(model.slot_embed):
                        context_sum = context_sum + model.slot_embed[s](choice)
            committed = end
    return performed.numpy()


def _mean_qpm(score: Score, perf: Performance) -> float:
    """Quarter notes per minute over the whole rendering (first to last onset)."""
    n = score.notes[perf.notes["id"]]
    q = n["onset_quarter"]
    t = perf.notes["onset_sec"]
    span_q, span_t = float(q.max() - q.min()), float(t.max() - t.min())
    return 60.0 * span_q / span_t if span_q > 0 and span_t > 0 else 0.0


def finish(perf: Performance, score: Score, options: RenderOptions) -> Performance:
    """Apply the global tempo and dynamics controls."""
    factor = 1.0
    if options.tempo is not None:
        current = _mean_qpm(score, perf)
        if current > 0:
            factor = current / options.tempo
    factor /= options.tempo_scale
    if factor != 1.0:
        perf = perf.time_stretch(factor)
    if options.dynamics_scale != 1.0 and len(perf):
        v = perf.notes["velocity"].astype(np.float64)
        mean = v.mean()
        notes = perf.notes.copy()
        notes["velocity"] = np.clip(np.rint(mean + options.dynamics_scale * (v - mean)), 1, 127)
        perf = Performance(notes, perf.controls)
    return perf


def render(
    pretrained, score: Score, options: RenderOptions = RenderOptions(), prime: np.ndarray | None = None,
    variations: int = 1,
) -> list[Rendering]:  # fmt: skip
    """Render ``score`` ``variations`` times (one batch, different samples)."""
    if pretrained.model_type != "renderer":
        raise EspressivoError(f"{pretrained.path.name} is a {pretrained.model_type}, not a renderer")
    tok = pretrained.tokenizer
    inputs = score_inputs(score, tok, options.tempo)
    rendered = render_slots(pretrained.model, inputs, options, prime, variations)
    results = []
    for slots in rendered:
        perf = decode_slots(slots, inputs.src[:, 1], tok)
        notes = perf.notes.copy()
        notes["id"] = inputs.order[notes["id"]]  # back to score rows
        perf = finish(Performance(notes, perf.controls), score, options)
        results.append(Rendering(perf, score, options))
    return results
