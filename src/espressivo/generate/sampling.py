"""Autoregressive generation with any language model (``model.step`` + ``reorder_state``): the 413-event models'
token loop with its stochastic beam (:func:`generate_ids`), and :func:`generate_performances`, which every command
calls and which hands an event model to :mod:`espressivo.generate.events`.  The sampler itself (settings,
``draw``) is :mod:`espressivo.generate.draw`.

>>> pretrained = load_pretrained("default")
>>> perfs = generate_performances(pretrained, SamplingConfig(temperature=0.98, min_p=0.035, seed=1), seconds=30)

``beam_size > 1`` is the stochastic beam search of Magenta's Performance RNN (Oore et al.): ``beam_size`` x
``BRANCHES`` sequences are each extended by ``BEAM_STEPS`` *sampled* tokens, and the ``beam_size`` likeliest
(total log-probability) are kept and branched again.  (An argmax beam search over a music language model
collapses into one repeated event: measured, 10 s asked, one pitch repeated until the token cap.)  Length:
``max_tokens`` and/or ``seconds`` of music (counted from the tokenizer's time events).  A transformer never looks
further back than the context it was trained with: when it is full, the cache is rebuilt from the newest half.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Performance
from espressivo.core.performance import PEDAL_CONTROLLERS, canonical_order, make_controls
from espressivo.errors import EspressivoError
from espressivo.generate.draw import BEAM_STEPS, BRANCHES, SamplingConfig, draw, filter_logits, threads
from espressivo.generate.events import Row, sample, sampling_model
from espressivo.tokenizers.aria import AriaTokenizer

__all__ = ["SamplingConfig", "generate_ids", "generate_performances"]


class _Runner:
    """Feeds tokens to a model, keeping its state (KV cache or LSTM state) and a sliding window."""

    def __init__(self, model, batch: int, context: int = 0):
        self.model = model
        self.is_transformer = hasattr(model, "new_cache")
        limit = model.config.max_seq_len if self.is_transformer else None
        self.max_len = min(context, limit) if self.is_transformer and context else limit
        self.batch = batch
        self.state = model.new_cache(batch, self.max_len) if self.is_transformer else None

    def feed(self, ids):
        """ids: (B, T) new tokens -> logits of the last position (B, V)."""
        if self.is_transformer and self.state["pos"] + ids.size(1) > self.max_len:
            raise OverflowError
        logits, self.state = self.model.step(ids, self.state)
        return logits[:, -1]

    def refill(self, history):
        """Rebuild a transformer's cache from the newest half of ``history`` (B, T)."""
        keep = history[:, -self.max_len // 2 :]
        self.state = self.model.new_cache(history.size(0), self.max_len)
        logits, self.state = self.model.step(keep, self.state)
        return logits[:, -1]

    def reorder(self, index):
        self.state = self.model.reorder_state(self.state, index)


def generate_ids(
    model,
    tokenizer,
    config: SamplingConfig,
    *,
    prompt=None,
    max_tokens: int = 0,
    seconds: float = 0.0,
    variations: int = 1,
    context: int = 0,
) -> list[np.ndarray]:
    """Continuations (without the prompt) for ``variations`` independent samples (or the best beam).  A
    transformer never attends further back than ``context`` ids (0: its ``max_seq_len``; give the length it was
    trained with): when full, its cache is rebuilt from the newest half."""
    import torch

    if max_tokens <= 0 and seconds <= 0:
        raise EspressivoError("give a length: max_tokens or seconds")
    if not 1 <= variations <= 64:
        raise EspressivoError("variations must lie in 1..64")
    max_tokens = max_tokens or int(seconds * 400) + 64  # a generous token cap for a time limit
    prompt = np.asarray(tokenizer.start_ids() if prompt is None or len(prompt) == 0 else prompt, dtype=np.int64)
    if len(prompt) == 0:
        prompt = np.array([tokenizer.vocab["BOS"].start])
    device = next(model.parameters()).device
    beams = config.beam_size
    batch = beams * BRANCHES if beams > 1 else variations
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    model.eval()
    history = torch.tensor(prompt, device=device).unsqueeze(0).repeat(batch, 1)
    runner = _Runner(model, batch, context)
    out = torch.zeros(batch, 0, dtype=torch.long, device=device)
    elapsed = np.zeros(batch)
    scores = torch.zeros(batch, device=device)
    with torch.no_grad():
        try:
            logits = runner.feed(history)
        except OverflowError:
            logits = runner.refill(history)
        for step in range(max_tokens):
            token = draw(logits, generator, config.temperature, config.top_p, config.min_p, config.top_k)
            if beams > 1:  # the sampled token's log-probability under the filtered distribution
                scores += filter_logits(logits, config).gather(-1, token[:, None])[:, 0]
            out = torch.cat([out, token[:, None]], 1)
            history = torch.cat([history, token[:, None]], 1)
            elapsed += tokenizer.time_advance(token.cpu().numpy())
            if seconds and (elapsed >= seconds).all():
                break
            try:
                logits = runner.feed(token[:, None])
            except OverflowError:
                logits = runner.refill(history)
            if beams > 1 and (step + 1) % BEAM_STEPS == 0:  # keep the likeliest, each branched again
                keep = torch.topk(scores, beams).indices.repeat_interleave(BRANCHES)
                runner.reorder(keep)
                out, history, scores, logits = out[keep], history[keep], scores[keep], logits[keep]
                elapsed = elapsed[keep.cpu().numpy()]
    if beams > 1:
        best = int(torch.argmax(scores))
        out = out[best : best + 1]
    results = out.cpu().numpy()
    if seconds:  # cut each sequence where its music reaches the requested length
        cut = []
        for row in results:
            t = np.cumsum(tokenizer.time_advance(row))
            stop = int(np.searchsorted(t, seconds, side="left")) + 1
            cut.append(row[:stop])
        return cut
    return list(results)


def generate_performances(
    pretrained,
    config: SamplingConfig,
    *,
    prompt_performance: Performance | None = None,
    prompt_cut_sec: float | None = None,
    seconds: float = 30.0,
    max_tokens: int = 0,
    variations: int = 1,
    max_note_sec: float = 4.0,
    num_threads: int = 1,
    report: list | None = None,
) -> list[Performance]:
    """Performances (the prompt included when given, as it was played): always valid, invalid events are
    dropped by decoding.  ``prompt_cut_sec`` is where the prompt was cut (default: its last event); the
    continuation starts there, and a pedal down at the cut goes up there unless the continuation moves it.

    An event model (``aria`` tokens) gives every note its duration.  With a 413-event model a note whose release
    never comes would sound to the end: such notes are released after ``max_note_sec`` (0 keeps them as
    decoded), and ``report`` (a list) receives one line per performance saying how many were.  The token loop runs
    on ``num_threads`` torch threads (one: fastest for one token at a time, and on a busy machine; 0: torch's
    setting).
    """

    tokenizer = pretrained.tokenizer
    has_prompt = prompt_performance is not None and len(prompt_performance) > 0
    cut = None
    if has_prompt:
        last_onset = float(prompt_performance.notes["onset_sec"].max())
        cut = float(prompt_cut_sec) if prompt_cut_sec is not None else last_onset
    if isinstance(tokenizer, AriaTokenizer):
        if max_tokens and not seconds:
            seconds = max_tokens / 30.0  # about 30 ids a second of music
        rows = [
            Row(prompt_performance if has_prompt else Performance.empty(), (cut or 0.0) + seconds, cut or 0.0)
            for _ in range(variations)
        ]
        if config.beam_size > 1:
            raise EspressivoError("beam search serves the 413-event models; an event model samples (--beam-size 1)")
        with threads(num_threads):
            generated = sample(pretrained, config, rows)
        if not has_prompt:
            return generated
        return [_after_prompt(prompt_performance, p, cut) for p in generated]
    prompt = tokenizer.encode(prompt_performance) if has_prompt else None

    with threads(num_threads):
        outputs = generate_ids(
            sampling_model(pretrained.model),
            tokenizer,
            config,
            prompt=prompt,
            max_tokens=max_tokens,
            seconds=seconds,
            variations=variations,
            context=pretrained.context,
        )
    head = prompt if prompt is not None else tokenizer.start_ids()
    performances = [tokenizer.decode(np.concatenate([head, ids])) for ids in outputs]
    if has_prompt:  # the prompt as it was played (its pedal, its exact timing), then the continuation
        prompt_end = float(tokenizer.time_advance(prompt).sum())
        performances = [_after_prompt(prompt_performance, p, prompt_end, cut) for p in performances]
    if max_note_sec > 0:
        capped = [_cap_durations(p, max_note_sec) for p in performances]
        if report is not None:
            for count in (n for _, n in capped):
                if count:
                    report.append(f"{count} note(s) left sounding by the model were released after {max_note_sec:g} s")
        performances = [p for p, _ in capped]
    return performances


def _after_prompt(
    prompt: Performance, decoded: Performance, prompt_end: float, cut: float | None = None
) -> Performance:
    """``prompt`` as given, followed by the notes and pedal ``decoded`` from ``prompt_end`` on (``cut``, where the
    prompt was cut, defaults to ``prompt_end``).  Every pedal (sustain, soft, sostenuto) down at the cut goes up
    there unless the continuation moves it (a tokenizer without pedal events never does)."""

    cut = prompt_end if cut is None else cut
    later = decoded.notes[decoded.notes["onset_sec"] >= prompt_end - 1e-9]
    controls = decoded.controls[decoded.controls["time_sec"] >= prompt_end - 1e-9]
    before = prompt.controls[prompt.controls["time_sec"] <= cut + 1e-9]
    lift = []
    for controller in PEDAL_CONTROLLERS:
        held = before[before["controller"] == controller]
        if len(held) and held["value"][-1] >= 64 and not (controls["controller"] == controller).any():
            lift.append((max(cut, float(held["time_sec"][-1])), controller, 0))
    notes = canonical_order(np.concatenate([prompt.notes, later]))
    return Performance(notes, make_controls([*map(tuple, np.concatenate([before, controls]).tolist()), *lift]))


def _cap_durations(performance: Performance, max_sec: float) -> tuple[Performance, int]:
    notes = performance.notes.copy()
    count = int(np.count_nonzero(notes["duration_sec"] > max_sec))
    notes["duration_sec"] = np.minimum(notes["duration_sec"], max_sec)
    return Performance(notes, performance.controls), count
