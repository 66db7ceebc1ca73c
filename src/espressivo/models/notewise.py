"""The score-to-performance renderer: a note-level encoder-decoder in the manner of Pianist Transformer.

Every note is one block of slots ``PITCH IOI VELOCITY DURATION PEDAL_1..4`` (the ``note`` tokenizer's layout,
as slot-local class indices).  Scores and performances share it: a score is its deadpan performance.

* **Note embedding** — one small table per slot (``d_model / slots`` wide, + a MASK row) concatenated with
  the slots' values as numbers (log milliseconds, velocity / 127, ...), mixed by a linear layer: one vector
  per note, so attention runs over notes, not tokens (Pianist Transformer's sequence compression).
* **Encoder** — bidirectional transformer over the score notes (+ optional score features such as metre
  and dynamics markings, projected and added).
* **Decoder** — causal transformer over notes whose input at note *i* is the encoder output at *i* plus the
  embedding of performed note *i - 1*: score and performance correspond 1:1, so no cross-attention is
  needed.  Fewer decoder than encoder layers (Pianist Transformer's asymmetric 10-2 design).
* **Slot heads** — inside a note the slots are predicted in order, each seeing the ones before it
  (``h + sum of earlier slot embeddings``), so IOI, velocity, duration and pedal are sampled jointly.

``forward(src, tgt, features, loss_mask)`` returns ``(logits per slot, loss)``: the mean cross-entropy over
the slots ``loss_mask`` selects (masked slots in pretraining; the expressive slots of matched notes in
fine-tuning).  ``encode`` / ``decode`` / ``slot_logits`` serve step-by-step rendering with a KV cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from espressivo.errors import EspressivoError
from espressivo.features.slots import SCORE_FEATURES
from espressivo.models.transformer import Block, RMSNorm, TransformerConfig, rope_table

PRESETS = {
    "tiny": dict(d_model=64, n_head=4, n_kv_head=2, d_ff=128, n_encoder_layer=2, n_decoder_layer=1, max_notes=256),
    "small": dict(d_model=256, n_head=4, n_kv_head=2, d_ff=640, n_encoder_layer=4, n_decoder_layer=2),
    "base": dict(d_model=512, n_head=8, n_kv_head=4, d_ff=1536, n_encoder_layer=8, n_decoder_layer=2),  # GPU
}
# the note tokenizer's default slots with a binary pedal: PITCH IOI VELOCITY DURATION PEDAL x4
DEFAULT_SLOTS = (128, 4991, 128, 5000, 2, 2, 2, 2)
SLOT_KINDS = ("pitch", "time", "velocity", "time", "pedal", "pedal", "pedal", "pedal")


class NoteModelConfig:
    """What the note-level renderers' configs share (a mixin of frozen dataclasses with ``slot_sizes``,
    ``slot_kinds``, ``d_model``, ``n_head``, ``n_kv_head``, ``d_ff``, ``dropout`` and ``PRESETS``)."""

    PRESETS: ClassVar[dict] = {}
    family = "notewise"

    def check_slots(self) -> None:
        object.__setattr__(self, "slot_sizes", tuple(int(s) for s in self.slot_sizes))
        object.__setattr__(self, "slot_kinds", tuple(self.slot_kinds))
        if len(self.slot_sizes) != len(self.slot_kinds) or not self.slot_sizes:
            raise EspressivoError("slot_sizes and slot_kinds must have the same, non-zero length")
        if self.d_model % len(self.slot_sizes) or self.d_model % self.n_head or self.n_head % self.n_kv_head:
            raise EspressivoError("d_model must divide by the number of slots and by n_head; n_head by n_kv_head")

    @classmethod
    def from_name(cls, name: str, **overrides):
        if name not in cls.PRESETS:
            raise EspressivoError(f"unknown {cls.family} preset {name!r} (available: {', '.join(cls.PRESETS)})")
        return replace(cls(**cls.PRESETS[name]), **overrides)

    def blocks(self, length: int) -> TransformerConfig:
        """The transformer blocks' config for sequences of up to ``length``."""
        return TransformerConfig(
            vocab_size=1, n_layer=1, n_head=self.n_head, n_kv_head=self.n_kv_head, d_model=self.d_model,
            d_ff=self.d_ff, max_seq_len=length, dropout=self.dropout,
        )  # fmt: skip


@dataclass(frozen=True)
class NotewiseConfig(NoteModelConfig):
    slot_sizes: tuple[int, ...] = DEFAULT_SLOTS
    slot_kinds: tuple[str, ...] = SLOT_KINDS  # how a slot's class reads as a number (see NoteEmbedding)
    time_step_ms: float = 1.0
    n_features: int = len(SCORE_FEATURES)  # score features added to the encoder input (0: none)
    d_model: int = 256
    n_head: int = 4
    n_kv_head: int = 2
    d_ff: int = 640
    n_encoder_layer: int = 4
    n_decoder_layer: int = 2
    max_notes: int = 1024
    rope_theta: float = 10000.0
    dropout: float = 0.0

    PRESETS = PRESETS

    def __post_init__(self) -> None:
        self.check_slots()

    @property
    def block_config(self) -> TransformerConfig:
        return self.blocks(self.max_notes)


class NoteEmbedding(nn.Module):
    """(B, N, S) slot classes (``size`` = MASK) -> (B, N, d_model)."""

    def __init__(self, c: NotewiseConfig):
        super().__init__()
        width = c.d_model // len(c.slot_sizes)
        self.tables = nn.ModuleList(nn.Embedding(size + 1, width) for size in c.slot_sizes)
        self.register_buffer("sizes", torch.tensor(c.slot_sizes), persistent=False)
        self.step_ms = c.time_step_ms
        kinds = c.slot_kinds
        self.register_buffer("is_time", torch.tensor([k == "time" for k in kinds]), persistent=False)
        scale = [1 / 32 if k == "pitch" else 1 / max(size - 1, 1) for k, size in zip(kinds, c.slot_sizes, strict=True)]
        self.register_buffer("scale", torch.tensor(scale), persistent=False)
        self.register_buffer("offset", torch.tensor([-2.0 if k == "pitch" else 0.0 for k in kinds]), persistent=False)
        self.mix = nn.Linear(c.d_model + 2 * len(c.slot_sizes), c.d_model, bias=False)

    def values(self, slots: torch.Tensor) -> torch.Tensor:
        """Each slot as a number of order one: time slots log(1 + ms) / 8, pitch (p - 64) / 32, the others
        class / (classes - 1)."""
        x = slots.float()
        return torch.where(self.is_time, torch.log1p(x * self.step_ms) / 8.0, x * self.scale + self.offset)

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        masked = slots >= self.sizes
        values = self.values(slots).masked_fill(masked, 0.0)
        parts = [table(slots[..., s]) for s, table in enumerate(self.tables)]
        return self.mix(torch.cat([*parts, values, masked.float()], -1))


class NotewiseRenderer(nn.Module):
    def __init__(self, config: NotewiseConfig):
        super().__init__()
        self.config = c = config
        bc = c.block_config
        self.embed = NoteEmbedding(c)
        self.features = nn.Linear(c.n_features, c.d_model, bias=False) if c.n_features else None
        self.encoder = nn.ModuleList(Block(bc) for _ in range(c.n_encoder_layer))
        self.encoder_norm = RMSNorm(c.d_model)
        self.bos = nn.Parameter(torch.zeros(c.d_model))
        self.decoder = nn.ModuleList(Block(bc) for _ in range(c.n_decoder_layer))
        self.decoder_norm = RMSNorm(c.d_model)
        self.slot_embed = nn.ModuleList(nn.Embedding(size, c.d_model) for size in c.slot_sizes[:-1])
        self.slot_norms = nn.ModuleList(RMSNorm(c.d_model) for _ in c.slot_sizes)
        self.heads = nn.ModuleList(nn.Linear(c.d_model, size, bias=False) for size in c.slot_sizes)
        self.register_buffer("rope", rope_table(c.d_model // c.n_head, c.max_notes, c.rope_theta), persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith(("out.weight", "down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * (c.n_encoder_layer + c.n_decoder_layer)))

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    # ------------------------------------------------------------------ pieces
    def encode(self, src: torch.Tensor, features: torch.Tensor | None = None, keep: torch.Tensor | None = None):
        """Score notes ``src`` (B, N, S) (+ features (B, N, F), ``keep`` (B, N) real notes) -> (B, N, d)."""
        n = src.size(1)
        if n > self.config.max_notes:
            raise EspressivoError(f"{n} notes exceed the renderer's window of {self.config.max_notes}")
        x = self.embed(src)
        if self.features is not None and features is not None:
            x = x + self.features(features)
        keep = torch.ones(src.shape[:2], dtype=torch.bool, device=src.device) if keep is None else keep
        for block in self.encoder:
            x = block(x, self.rope[:n], keep=keep)
        return self.encoder_norm(x)

    def decoder_input(self, memory: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """``memory`` (B, T, d) of notes i..i+T-1 and the performed notes before each (B, T, S); ``None``
        where the first of them is the first note (BOS)."""
        if previous is None:
            return memory + self.bos
        return memory + self.embed(previous)

    def decode(self, x: torch.Tensor, cache=None):
        """Causal decoder over (B, T, d) after what ``cache`` holds -> hidden states (B, T, d)."""
        pos = 0 if cache is None else cache["pos"]
        t = x.size(1)
        if pos + t > self.config.max_notes:
            raise EspressivoError(f"{pos + t} notes exceed the renderer's window of {self.config.max_notes}")
        for i, block in enumerate(self.decoder):
            x = block(x, self.rope[pos : pos + t], None if cache is None else cache["layers"][i], pos)
        if cache is not None:
            cache["pos"] = pos + t
        return self.decoder_norm(x)

    def new_cache(self, batch: int, max_notes: int | None = None):
        c = self.config
        shape = (batch, c.n_kv_head, max_notes or c.max_notes, c.d_model // c.n_head)
        w = self.bos
        return {"layers": [(w.new_zeros(shape), w.new_zeros(shape)) for _ in self.decoder], "pos": 0}

    def slot_logits(
        self, hidden: torch.Tensor, slot: int, context: torch.Tensor | None = None, heads=None
    ) -> torch.Tensor:
        """Logits of ``slot`` from the decoder state plus ``context`` (the sum of earlier slots' embeddings);
        ``heads``: other copies of the heads to read (e.g. bf16 ones for sampling), the logits still float32."""
        z = self.slot_norms[slot](hidden if context is None else hidden + context)
        if heads is None:
            return self.heads[slot](z)
        return heads[slot](z.to(heads[slot].weight.dtype)).float()

    # ------------------------------------------------------------------ training
    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        features: torch.Tensor | None = None,
        loss_mask: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ):
        """``src``, ``tgt`` (B, N, S) slot classes; ``loss_mask`` (B, N, S) bool, the slots the loss counts
        (default: every slot of every kept note).  Returns ``(list of (B, N, size) logits, loss)``."""
        memory = self.encode(src, features, keep)
        previous = tgt[:, :-1]
        x = torch.cat([self.decoder_input(memory[:, :1], None), self.decoder_input(memory[:, 1:], previous)], 1)
        hidden = self.decode(x)
        if loss_mask is None:
            loss_mask = torch.ones_like(tgt, dtype=torch.bool)
            if keep is not None:
                loss_mask &= keep[..., None]
        logits, total, count = [], hidden.new_zeros(()), 0
        context = None
        for s in range(len(self.heads)):
            out = self.slot_logits(hidden, s, context)
            logits.append(out)
            chosen = loss_mask[..., s]
            if chosen.any():
                total = total + F.cross_entropy(out[chosen].float(), tgt[..., s][chosen], reduction="sum")
                count += int(chosen.sum())
            if s < len(self.slot_embed):
                step = self.slot_embed[s](tgt[..., s])
                context = step if context is None else context + step
        return logits, total / max(count, 1)
