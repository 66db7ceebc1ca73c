"""The one sampler of espressivo (:func:`draw`), and autoregressive generation for any language model
(``model.step`` + ``reorder_state``).

>>> pretrained = load_pretrained("default")
>>> perfs = generate_performances(pretrained, SamplingConfig(temperature=0.95, top_p=0.95, seed=1), seconds=30)

:func:`draw` serves the language models, the note-by-note renderer and the CVRNN: temperature, then among the
likeliest candidates (top-k, or ``NUCLEUS_CANDIDATES`` when a nucleus or min-p is asked), min-p (drop ids below
``min_p`` x the top probability) and top-p (nucleus), then a Gumbel-max draw from a seeded generator, so a seed
gives the same draws on any thread count.  Constraints are logits processors applied before it (the renderer's
tempo guard, :func:`espressivo.render.render._tempo_guard`).

``beam_size > 1`` is the stochastic beam search of Magenta's Performance RNN (Oore et al.): ``beam_size`` x
``BRANCHES`` sequences are each extended by ``BEAM_STEPS`` *sampled* tokens, and the ``beam_size`` likeliest
(total log-probability) are kept and branched again.  (An argmax beam search over a music language model
collapses into one repeated event: measured, 10 s asked, one pitch repeated until the token cap.)  Length:
``max_tokens`` and/or ``seconds`` of music (counted from the tokenizer's time events).  A transformer's context
is a sliding window: when it is full, the cache is rebuilt from the newest half.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from espressivo.core import Performance
from espressivo.errors import EspressivoError

MAX_SEED = 2**63 - 1  # what torch and numpy generators accept
MAX_BEAM = 16


@dataclass(frozen=True)
class SamplingConfig:
    """sampling: how the language model draws each event

    Args:
        temperature: sampling temperature (lower: safer, more repetitive)
        top_k: keep the k most likely events (0: all)
        top_p: nucleus sampling mass (1: off)
        min_p: drop events below this share of the most likely one (Aria's default 0.035)
        beam_size: stochastic beam search width (1: sampling; the 413-event models only)
        seed: random seed (same seed, same music)
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    beam_size: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.temperature <= 10) or self.top_k < 0 or not (0 < self.top_p <= 1) or not (0 <= self.min_p < 1):
            raise EspressivoError("need 0 < temperature <= 10, top_k >= 0, 0 < top_p <= 1, 0 <= min_p < 1")
        if not 1 <= self.beam_size <= MAX_BEAM:  # x BRANCHES rows, each with its cache: 64 took 3.4 GB
            raise EspressivoError(f"--beam-size must lie in 1..{MAX_BEAM}")
        if not 0 <= self.seed <= MAX_SEED:
            raise EspressivoError(f"--seed must lie in 0..{MAX_SEED}")


def filter_logits(logits, config: SamplingConfig):
    """Log-probabilities after temperature, top-k, min-p and top-p (removed ids get -inf)."""
    import torch

    logits = logits.float() / config.temperature
    if config.top_k:
        kth = torch.topk(logits, min(config.top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    if config.min_p:
        top = logp.max(dim=-1, keepdim=True).values
        logp = logp.masked_fill(logp < top + np.log(config.min_p), float("-inf"))
    if config.top_p < 1:
        sorted_logp, order = torch.sort(logp, descending=True, dim=-1)
        cumulative = sorted_logp.exp().cumsum(-1)
        remove = cumulative - sorted_logp.exp() > config.top_p  # keep the smallest set reaching top_p
        sorted_logp = sorted_logp.masked_fill(remove, float("-inf"))
        logp = torch.full_like(logp, float("-inf")).scatter(-1, order, sorted_logp)
    return torch.log_softmax(logp, dim=-1)


NUCLEUS_CANDIDATES = 256  # top-p / min-p are taken among the likeliest classes (the mass beyond is negligible)
BRANCHES = 2  # stochastic beam search: sampled continuations per kept sequence
BEAM_STEPS = 8  # tokens sampled between two selections


def draw(logits, generator, temperature: float = 1.0, top_p: float = 1.0, min_p: float = 0.0, top_k: int = 0):
    """One class per row of ``logits`` (rows, classes), drawn by Gumbel-max from the seeded ``generator``
    after temperature, top-k (or the ``NUCLEUS_CANDIDATES`` likeliest when ``top_p < 1`` or ``min_p > 0``),
    min-p and top-p."""
    import torch

    logits = logits.float() / temperature
    size = logits.size(-1)
    candidates = min(top_k or (NUCLEUS_CANDIDATES if top_p < 1 or min_p > 0 else size), size)
    values, index = torch.topk(logits, candidates, dim=-1)  # sorted
    if min_p > 0:
        values = values.masked_fill(values - values[:, :1] < np.log(min_p), float("-inf"))
    if top_p < 1:
        probs = (values - values[:, :1]).exp()
        probs = probs / probs.sum(-1, keepdim=True)
        values = values.masked_fill(probs.cumsum(-1) - probs > top_p, float("-inf"))
    noise = torch.rand(values.shape, generator=generator).clamp_(1e-20, 1.0).to(values.device)
    choice = torch.argmax(values - torch.log(-torch.log(noise)), dim=-1)
    return index.gather(-1, choice[:, None])[:, 0]


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
    from espressivo.tokenizers.aria import AriaTokenizer

    tokenizer = pretrained.tokenizer
    has_prompt = prompt_performance is not None and len(prompt_performance) > 0
    cut = None
    if has_prompt:
        last_onset = float(prompt_performance.notes["onset_sec"].max())
        cut = float(prompt_cut_sec) if prompt_cut_sec is not None else last_onset
    if isinstance(tokenizer, AriaTokenizer):
        from espressivo.generate.events import Row, sample

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
    from espressivo.generate.events import sampling_model

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
    from espressivo.core.performance import PEDAL_CONTROLLERS, canonical_order, make_controls

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


@contextmanager
def threads(count: int):
    """Run the block with ``count`` torch CPU threads (0: leave torch's setting), restored after.  Sampling
    loops step one token or note at a time through small matrices: there one thread is fastest, and on a busy
    machine several threads spin-wait for each other (2-30x slower, measured)."""
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
