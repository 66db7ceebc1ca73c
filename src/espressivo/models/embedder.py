"""Performance embeddings, Aria's adaptation of SimCLR: the pretrained transformer reads a slice of a
performance followed by EOS; its last-layer state at EOS, projected to ``embed_dim`` and L2-normalised, is
the slice's embedding.  Two slices of one performance are a positive pair, every other slice in the batch a
negative (NT-Xent).  A class head on the same state fine-tunes the network for classification.

>>> model = Embedder(EmbedderConfig.from_name("small", vocab_size=416))
>>> z, loss = model(idx, last, positive=positive)    # (N, embed_dim) unit vectors, NT-Xent
>>> logits, loss = model(idx, last, labels=labels)   # (N, classes), cross-entropy
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from espressivo.errors import EspressivoError
from espressivo.models.transformer import Transformer, TransformerConfig


@dataclass(frozen=True)
class EmbedderConfig(TransformerConfig):
    embed_dim: int = 256
    temperature: float = 0.1  # NT-Xent's tau (Aria's released embedding model: 0.1)
    classes: tuple[str, ...] = ()  # class names of the classification head (none: no head)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if not (1 <= self.embed_dim <= 4096 and 0 < self.temperature <= 10):
            raise EspressivoError("embed_dim must lie in 1..4096 and temperature in (0, 10]")
        if len(set(self.classes)) != len(self.classes) or len(self.classes) == 1:
            raise EspressivoError("a classification head needs two or more distinct classes")


def nt_xent(z: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy, the mean over rows.  ``z`` (N, D): unit vectors;
    ``positive`` (N,): the row of each row's positive.  Every other row is a negative; a row never sees
    itself."""
    logits = (z @ z.T) / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    return F.cross_entropy(logits.masked_fill(self_mask, float("-inf")), positive)


class Embedder(Transformer):
    fresh_weights = ("proj.", "classifier.")  # absent from a language model it starts from

    def __init__(self, config: EmbedderConfig):
        super().__init__(config)
        self.proj = nn.Linear(config.d_model, config.embed_dim, bias=False)
        nn.init.normal_(self.proj.weight, std=config.d_model**-0.5)
        self.classifier = nn.Linear(config.d_model, len(config.classes)) if config.classes else None

    def forward(self, idx, last, positive=None, labels=None):
        """``idx`` (N, T) token rows, right-padded; ``last`` (N,) each row's EOS position.  With ``labels``:
        ``(logits, cross-entropy)``; otherwise ``(unit embeddings, NT-Xent over positive or None)``."""
        state = self.pool(idx, last, "last")  # the EOS after the slice
        if labels is not None:
            if self.classifier is None:
                raise EspressivoError("this embedder has no classification head (no classes)")
            logits = self.classifier(state).float()
            return logits, F.cross_entropy(logits, labels)
        z = F.normalize(self.proj(state).float(), dim=-1)
        loss = None if positive is None else nt_xent(z, positive, self.config.temperature)
        return z, loss
