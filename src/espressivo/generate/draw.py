"""The one sampler of espressivo: its settings (:class:`SamplingConfig`), :func:`draw` and :func:`threads`.

:func:`draw` serves the language models, the note-by-note renderer and the CVRNN: temperature, then among the
likeliest candidates (top-k, or ``NUCLEUS_CANDIDATES`` when a nucleus or min-p is asked), min-p (drop ids below
``min_p`` x the top probability) and top-p (nucleus), then a Gumbel-max draw from a seeded generator, so a seed
gives the same draws on any thread count.  Constraints are logits processors applied before it (the renderer's
tempo guard, the event grammar of :mod:`espressivo.generate.events`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from espressivo.errors import EspressivoError

MAX_SEED = 2**53 - 1  # the one seed bound: exact in JSON and a browser, and variations count up from it
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
