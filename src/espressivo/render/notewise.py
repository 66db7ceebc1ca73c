"""Score -> performance with a trained renderer: any length, sampled, reproducible.

>>> pretrained = load_pretrained("renderer-small")
>>> result = render(pretrained, read_score("etude.musicxml"), RenderOptions.of(temperature=1.0, seed=3))
>>> result.performance            # one note per score note; notes["id"] = the score note's row

**Long scores** are rendered in overlapping windows of ``window`` notes.  Each window's encoder sees the
whole window of score; its decoder is first fed the last ``context`` already-rendered notes (teacher
forced, so tempo and dynamics carry over), then samples new notes up to a quarter window before the
window's end (those notes still had a quarter window of score ahead of them).  Within a segment every
note is sampled once, in one continuous sequence of IOIs.

**Speed**: scores longer than ``segment`` notes (256: one window each) are cut into segments that overlap by
``overlap`` notes and are rendered side by side as one batch (sampling note by note costs about the same for 1
or 30 rows, so the time goes with the segment's length, not the score's); across
each overlap IOI, velocity and duration are cross-faded, so tempo and dynamics glide from one segment into
the next instead of jumping.  ``segment=0`` renders the whole score in one sequential pass.

**Sampling.**  Pitch is forced to the score's; then IOI, velocity, duration and the pedal samples are
drawn in turn (temperature, top-p), each seeing the ones before; ``tempo_guard`` pulls each IOI towards the
score's while sampling (:func:`_tempo_guard`).  ``prime`` hands over the first notes of a human performance (used by the
evaluation's primed protocol).

**Global controls** act on the result: ``tempo`` (quarter notes per minute: the score is given to the
model at that mean tempo — its written tempo changes kept — and the rendering is then stretched so its
mean tempo is exactly that; a model trained with the score at the pianist's tempo is held to the written
mean tempo the same way when no tempo is given),
``tempo_scale`` (faster > 1), ``dynamics_scale`` (velocity contrast around the mean, > 1 = wider),
``tempo_drift`` (a renderer's departures from the written tempo slower than that many beats taken out):
:mod:`espressivo.render.timing`;
``roll_step`` (chords the score marks arpeggiated rolled, that many beats between notes):
:mod:`espressivo.render.rolls`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from espressivo.core import Performance, Score
from espressivo.errors import EspressivoError
from espressivo.features.score import score_features
from espressivo.features.slots import (
    SCORE_FEATURES,
    decode_slots,
    dynamics_velocity,
    feature_matrix,
    render_order,
    score_slots,
)
from espressivo.generate.draw import draw
from espressivo.render.base import Rendering, RenderOptions, finish
from espressivo.render.dynamics import steady_dynamics
from espressivo.render.rolls import roll_chords
from espressivo.render.timing import shape_tempo

GRACE = SCORE_FEATURES.index("is_grace")  # the score feature that flags grace notes
GUARD_SLACK_MS = 10.0  # IOIs compared as log(ms + this): a zero IOI is far from a beat, not infinitely far


@dataclass(frozen=True)
class ScoreInputs:
    """A score prepared for the renderer (renderer order: ``order[i]`` = the score row of note i)."""

    order: np.ndarray
    src: np.ndarray  # (n, S) slot classes
    features: np.ndarray  # (n, F)


def score_inputs(score: Score, tokenizer, qpm: float | None = None) -> ScoreInputs:
    if len(score) == 0:
        raise EspressivoError("the score has no notes to render")
    notes = score.notes
    sf = score_features(score)
    q = notes["onset_quarter"]
    onset = score.written_seconds(q, qpm)  # its tempo changes kept, at a mean of qpm
    duration = score.written_seconds(q + notes["duration_quarter"], qpm) - onset
    order = render_order(onset, notes["pitch"], notes["is_grace"])
    src = score_slots(
        onset[order], duration[order], notes["pitch"][order], dynamics_velocity(sf["dynamic"][order]), tokenizer
    )
    src[0, 1] = 0
    return ScoreInputs(order, src, feature_matrix(sf[order])[0])


BF16_HEAD_CLASSES = 1024  # heads at least this wide are read in bf16 when sampling on a CPU with native bf16


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX): there a bf16 head reads half the memory
    and runs about 3x faster; elsewhere bf16 would be emulated, and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def sampling_heads(model) -> list:
    """The slot heads to sample with: on a CPU with native bf16, bf16 copies of the wide ones (the IOI and
    duration heads, 5,000 classes: rendering is bound by reading them at every note; teacher-forced NLL on the
    validation pairs is unchanged to 1e-4), else the model's own."""
    import torch

    heads = list(model.heads)
    if model.bos.device.type != "cpu" or model.bos.dtype != torch.float32 or not cpu_has_bf16():
        return heads
    cache = model.__dict__.setdefault("_sampling_heads", {})  # slot -> (the weights it copies, the copy)
    for s, head in enumerate(heads):
        if head.out_features >= BF16_HEAD_CLASSES:
            key = (head.weight.data_ptr(), head.weight._version)
            if cache.get(s, (None,))[0] != key:
                copy = torch.nn.Linear(head.in_features, head.out_features, bias=False, dtype=torch.bfloat16)
                copy.weight.data.copy_(head.weight.data)
                cache[s] = (key, copy)
            heads[s] = cache[s][1]
    return heads


def _tempo_guard(model, sigma: float):
    """``guard(logits, score_ioi)``: IOI logits plus a log-normal prior centred on each note's score IOI,
    ``-(log(ioi + s) - log(score_ioi + s))^2 / (2 sigma^2)`` (s = ``GUARD_SLACK_MS``), where the score moves on
    (score IOI > 0; chord notes are left alone, and so are the ``grace`` notes: a grace note written at a beat
    is played before it, its IOI shorter than the score's by its lead).  The model plays around the tempo it is
    given, but a sampled performance can run away from it — one fast draw makes the next likelier, down to every
    IOI 0 — and the prior pulls each IOI back towards the score without flattening its rubato.  ``None`` when
    off."""
    import torch

    if not sigma:
        return None
    size = model.config.slot_sizes[1]
    step = model.config.time_step_ms
    log_ms = torch.log(torch.arange(size, dtype=torch.float32) * step + GUARD_SLACK_MS)
    scale = 1.0 / (2.0 * sigma**2)

    def guard(logits, score_ioi, grace=None):
        moves = score_ioi > 0 if grace is None else (score_ioi > 0) & ~grace
        if not bool(moves.any()):
            return logits
        target = torch.log(score_ioi.float() * step + GUARD_SLACK_MS)
        prior = (log_ms[None, :] - target[:, None]).square_() * scale
        return logits - prior * moves[:, None]

    return guard


def plan_segments(n: int, segment: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the segments rendered side by side; consecutive ones share ``overlap`` notes."""
    if segment <= 0 or n <= segment:
        return [(0, n)]
    step = segment - overlap
    count = -(-(n - overlap) // step)
    return [(k * step, min(k * step + segment, n)) for k in range(count)]


def _decode_rows(model, src, feats, keep, performed, committed: int, options: RenderOptions, generator) -> None:
    """Sample ``performed`` (B, L, S) in place from note ``committed`` on, window by window."""
    import torch

    length, slots = src.shape[1], src.shape[2]
    window = min(options.sampling.window, model.config.max_notes)
    context = min(options.sampling.context, window // 4)
    batch = performed.size(0)
    heads = sampling_heads(model)
    guard = _tempo_guard(model, options.timing.tempo_guard)
    grace = feats[:, :, GRACE] > 0.5  # left alone by the guard: played before their beat
    while committed < length:
        start = max(0, committed - context)
        stop = min(start + window, length)
        end = length if stop == length else max(stop - window // 4, committed + 1)
        memory = model.encode(src[:, start:stop], feats[:, start:stop], keep[:, start:stop])
        memory = memory.expand(batch, -1, -1) if memory.size(0) == 1 else memory
        cache = model.new_cache(batch, stop - start)
        prompt = committed - start
        if prompt:
            if start == 0:
                first = model.decoder_input(memory[:, :1], None)
                rest = model.decoder_input(memory[:, 1:prompt], performed[:, : prompt - 1])
                x = torch.cat([first, rest], 1)
            else:
                x = model.decoder_input(memory[:, :prompt], performed[:, start - 1 : committed - 1])
            model.decode(x, cache)
        for i in range(committed, end):
            j = i - start
            previous = None if i == 0 else performed[:, i - 1 : i]
            hidden = model.decode(model.decoder_input(memory[:, j : j + 1], previous), cache)[:, 0]
            context_sum = model.slot_embed[0](performed[:, i, 0])
            for s in range(1, slots):
                logits = model.slot_logits(hidden, s, context_sum, heads)
                if s == 1 and guard is not None:
                    logits = guard(logits, src[:, i, 1], grace[:, i])
                choice = draw(logits, generator, options.sampling.temperature, options.sampling.top_p)
                performed[:, i, s] = choice
                if s < len(model.slot_embed):
                    context_sum = context_sum + model.slot_embed[s](choice)
        committed = end


def render_slots(
    model, inputs: ScoreInputs, options: RenderOptions, prime: np.ndarray | None = None, variations: int = 1
) -> np.ndarray:
    """Sample (variations, n, S) slot classes for the score notes (see the module docstring)."""
    import torch

    src = inputs.src
    n, slots = src.shape
    if prime is not None and (prime.ndim != 2 or prime.shape[1] != slots or len(prime) > n):
        raise EspressivoError("prime must be (k <= notes, slots) slot classes")
    segments = plan_segments(n, options.sampling.segment, options.sampling.overlap)
    if prime is not None and len(prime) and len(segments) > 1:
        segments = [(0, n)]  # a prime continues one sequence: render it in one pass
    length = max(stop - start for start, stop in segments)
    seg_src = np.zeros((len(segments), length, slots), np.int64)
    seg_feats = np.zeros((len(segments), length, inputs.features.shape[1]), np.float32)
    seg_keep = np.zeros((len(segments), length), bool)
    for k, (start, stop) in enumerate(segments):
        seg_src[k, : stop - start] = src[start:stop]
        seg_feats[k, : stop - start] = inputs.features[start:stop]
        seg_keep[k, : stop - start] = True
    seg_src[:, 0, 1] = np.where(np.arange(len(segments)) == 0, 0, seg_src[:, 0, 1])
    performed = np.repeat(seg_src, variations, axis=0)  # row = segment * variations + variation
    performed[:, :, 1:] = 0
    committed = 0
    if prime is not None and len(prime):
        performed[:, : len(prime)] = prime
        committed = len(prime)
    performed = torch.from_numpy(performed)
    generator = torch.Generator().manual_seed(int(options.sampling.seed))
    expand = lambda a: torch.from_numpy(np.repeat(a, variations, axis=0))  # noqa: E731
    with torch.inference_mode():
        _decode_rows(model, expand(seg_src), expand(seg_feats), expand(seg_keep), performed, committed, options,
                     generator)  # fmt: skip
    performed = performed.numpy().reshape(len(segments), variations, length, slots)
    return np.stack([_stitch(performed[:, v], segments, options.sampling.overlap, n) for v in range(variations)])


def _stitch(parts: np.ndarray, segments: list[tuple[int, int]], overlap: int, n: int) -> np.ndarray:
    """Join segment renderings; across each overlap IOI, velocity and duration are cross-faded linearly
    and the pedal switches half-way, so tempo and dynamics glide from one segment into the next."""
    out = np.zeros((n, parts.shape[2]), np.int64)
    for k, (start, stop) in enumerate(segments):
        part = parts[k, : stop - start]
        if k == 0:
            out[start:stop] = part
            continue
        m = min(overlap, stop - start)
        w = ((np.arange(m) + 0.5) / m)[:, None]
        blended = out[start : start + m].astype(np.float64) * (1 - w) + part[:m] * w
        out[start : start + m, 1:4] = np.rint(blended[:, 1:4])
        out[start : start + m, 4:] = np.where(w >= 0.5, part[:m, 4:], out[start : start + m, 4:])
        out[start + m : stop] = part[m:]
    return out


def consensus_slots(samples: np.ndarray, score_ioi: np.ndarray | None = None) -> np.ndarray:
    """(K, n, S) sampled performances of one score (renderer order) -> (n, S): their note-by-note consensus.

    Onsets (IOIs from the previous note, a chord note's possibly negative): every chord (run of notes whose
    ``score_ioi`` is 0 after the first) is placed at the mean of its K mean onsets (the mean time map: tempo
    and rubato), and each of its notes at the median of its K offsets from the chord's onset (the spread the
    samples agree on).  Velocity and duration: the median of the K (the estimate closest, in absolute error, to
    what the model believes).  Each pedal sample by majority (ties: down).  Pitch is the score's in every
    sample.  Without ``score_ioi`` every note is its own chord.
    """
    if samples.ndim != 3 or not len(samples):
        raise EspressivoError("consensus needs (samples, notes, slots) slot classes")
    out = samples[0].copy()
    n = samples.shape[1]
    if n == 0:
        return out
    onset = np.cumsum(samples[:, :, 1].astype(np.float64), axis=1)
    onset -= onset[:, :1]
    chord = chords(n, score_ioi)
    count = np.bincount(chord)
    chord_onset = np.stack([np.bincount(chord, weights=row) / count for row in onset])  # (K, chords)
    offset = onset - chord_onset[:, chord]
    placed = chord_onset.mean(0)[chord] + np.median(offset, axis=0)
    out[:, 1] = _chord_iois(np.rint(placed), chord)
    out[:, 2] = np.rint(np.median(samples[:, :, 2], axis=0))
    out[:, 3] = np.rint(np.median(samples[:, :, 3], axis=0))
    out[:, 4:] = 2 * samples[:, :, 4:].sum(0) >= len(samples)
    return out


def chords(n: int, score_ioi: np.ndarray | None) -> np.ndarray:
    """Chord number of each of ``n`` notes in renderer order: a new chord wherever the score moves on."""
    moves = np.ones(n, bool) if score_ioi is None else np.asarray(score_ioi) > 0
    return np.cumsum(np.concatenate([[0], moves[1:n]])) if n else np.zeros(0, np.int64)


def _chord_iois(onset: np.ndarray, chord: np.ndarray) -> np.ndarray:
    """Onsets (renderer order) -> IOIs from the previous note; a chord's first note never goes back in time
    (its IOI at least 0), the other chord notes may (negative IOI)."""
    ioi = np.diff(onset, prepend=onset[:1]).astype(np.int64)
    first = np.diff(chord, prepend=-1) > 0
    return np.where(first, np.maximum(ioi, 0), ioi)


def spread_chords(
    slots: np.ndarray, score_ioi: np.ndarray, factor: float, grace: np.ndarray | None = None
) -> np.ndarray:
    """(n, S) slots with every chord's spread (each note's offset from the chord's mean onset) times
    ``factor``: 0 plays chord notes together, 1 as sampled; the chord's mean onset stays.  ``grace`` (renderer
    order): grace notes share their main note's score onset but are not part of its chord — they keep their
    time, and the chord's mean is taken over its other notes."""
    if factor == 1.0 or len(slots) < 2:
        return slots
    onset = np.cumsum(slots[:, 1].astype(np.float64))
    chord = chords(len(slots), score_ioi)
    member = np.ones(len(slots)) if grace is None else (~np.asarray(grace, bool)).astype(np.float64)
    middle = (np.bincount(chord, weights=onset * member) / np.maximum(np.bincount(chord, weights=member), 1))[chord]
    placed = np.where(member > 0, middle + factor * (onset - middle), onset)
    out = slots.copy()
    out[:, 1] = _chord_iois(np.rint(placed), chord)
    out[0, 1] = slots[0, 1]
    return out


def plays_at_given_tempo(pretrained) -> bool:
    """Whether the renderer was trained with the score at the pianist's tempo (``score_tempo: performed``)."""
    return pretrained.training_config.get("score_tempo") == "performed"


def render_notewise(
    pretrained, score: Score, options: RenderOptions, prime: np.ndarray | None = None, variations: int = 1
) -> list[Rendering]:
    """The note-by-note renderer (family ``notewise``): slots sampled note by note, then shaped."""
    tok = pretrained.tokenizer
    inputs = score_inputs(score, tok, options.timing.tempo)
    rendered = sample_slots(pretrained, inputs, options, prime, variations * options.sampling.consensus)
    if options.sampling.consensus > 1:
        rendered = rendered.reshape(variations, options.sampling.consensus, *rendered.shape[1:])
        rendered = np.stack([consensus_slots(group, inputs.src[:, 1]) for group in rendered])
    return [Rendering(performance(slots, inputs, score, options, pretrained), score, options) for slots in rendered]


def sample_slots(
    pretrained, inputs: ScoreInputs, options: RenderOptions, prime: np.ndarray | None = None, count: int = 1
) -> np.ndarray:
    """The sampling stage: (count, n, S) samples of :func:`render_slots` (renderer order); :func:`performance`
    is the shaping stage."""
    return render_slots(pretrained.model, inputs, options, prime, count)


def performance(slots: np.ndarray, inputs: ScoreInputs, score: Score, options: RenderOptions, pretrained):
    """The shaping stage.  Rendered slots (renderer order) -> the performance: decoded, re-timed
    (``tempo_drift``), chords spread (``chord_spread``), rolled chords rolled (``roll_step``), loudness steadied
    (``dynamics_drift``), the global controls applied."""
    grace = inputs.features[:, GRACE] > 0.5
    slots = spread_chords(slots, inputs.src[:, 1], options.shaping.chord_spread, grace)
    perf = decode_slots(slots, inputs.src[:, 1], pretrained.tokenizer)
    notes = perf.notes.copy()
    notes["id"] = inputs.order[notes["id"]]  # back to score rows
    perf = shape_tempo(Performance(notes, perf.controls), score, options.timing.tempo_drift)
    perf = roll_chords(perf, score, options.shaping.roll_step)
    perf = steady_dynamics(perf, score, options.shaping.dynamics_drift)
    return finish(perf, score, options, plays_at_given_tempo(pretrained))
