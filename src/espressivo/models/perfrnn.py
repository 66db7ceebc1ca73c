"""Performance RNN (Oore et al. 2018, sec. 6): event embedding, stacked LSTM, softmax over the events.

>>> model = PerfRNN(PerfRNNConfig.from_name("small"))    # 3 LSTM layers of 512, as in the paper
>>> logits, loss = model(ids, targets)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from espressivo.errors import EspressivoError

PRESETS = {
    "tiny": dict(embed_dim=32, hidden=64, layers=2),
    "small": dict(embed_dim=256, hidden=512, layers=3),  # the paper's size
}


@dataclass(frozen=True)
class PerfRNNConfig:
    PRESETS: ClassVar[dict] = PRESETS
    vocab_size: int = 416
    embed_dim: int = 256
    hidden: int = 512
    layers: int = 3
    dropout: float = 0.1
    pad_id: int = 413

    @classmethod
    def from_name(cls, name: str, **overrides) -> PerfRNNConfig:
        if name not in cls.PRESETS:
            raise EspressivoError(f"unknown perfrnn preset {name!r} (available: {', '.join(cls.PRESETS)})")
        return replace(cls(**cls.PRESETS[name]), **overrides)


class PerfRNN(nn.Module):
    def __init__(self, config: PerfRNNConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(
            config.embed_dim, config.hidden, config.layers, batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )  # fmt: skip
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state=None):
        """``idx`` (B, T) -> ``(logits (B, T, V), loss)``; ``loss`` is the mean cross-entropy over the
        targets that are not PAD (None without targets)."""
        logits, _ = self.step(idx, state)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=self.config.pad_id
            )
        return logits, loss

    def step(self, idx: torch.Tensor, state=None):
        """Run ``idx`` (B, T) from ``state`` (None: zeros); returns ``(logits, new_state)``."""
        if self.training or idx.size(1) > 1:
            out, state = self.lstm(self.embed(idx), state)
        else:  # one step at a time: oneDNN's LSTM costs ~4x more per call than the plain kernel here
            with warnings.catch_warnings():  # the flags context also sets TF32, and warns that no Intel GPU has it
                warnings.filterwarnings("ignore", message="TF32 acceleration")
                with torch.backends.mkldnn.flags(enabled=False):
                    out, state = self.lstm(self.embed(idx), state)
        return self.head(self.drop(out)), state

    @staticmethod
    def reorder_state(state, index: torch.Tensor):
        """Select batch rows of a state (beam search)."""
        return None if state is None else tuple(s.index_select(1, index) for s in state)
