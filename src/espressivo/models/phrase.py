"""The phrase renderer: score -> expression at the levels where musicians shape it (renderer v2).

Not autoregressive: the whole window of score notes is read at once and every output comes from it.

* **Note encoder** — the renderer's note embedding and bidirectional transformer over score notes (so it can
  start from a pretrained renderer's encoder), plus the phrase features (markings, rests, melody, ...;
  :mod:`espressivo.features.phrase`) through a zero-initialised projection.
* **Beat level** — the notes of each score beat are pooled (mean) into one vector per beat; a beat
  transformer over the window's beats predicts the **tempo curve** (log beat length against the written one)
  and the **loudness curve** (mean velocity per beat), each as a Gaussian (mean, log sd).
* **Note level** — each note's encoding plus its beat's state goes through a small note transformer that
  predicts the deviations around the curves: onset **timing**, **velocity** around the beat's level (voicing,
  accents), **articulation**, and the sustain **pedal** at four points of the note's IOI (Bernoulli).

``forward(src, features, beat, keep, **targets)`` returns ``(outputs, loss)``: the Gaussian negative
log-likelihood of each curve and deviation (over the entries their ``*_ok`` masks allow) plus the pedal's
binary cross-entropy, summed over the six outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from espressivo.errors import EspressivoError
from espressivo.features.phrase import PHRASE_FEATURES
from espressivo.features.slots import SCORE_FEATURES
from espressivo.models.notewise import DEFAULT_SLOTS, SLOT_KINDS, NoteEmbedding, NoteModelConfig
from espressivo.models.transformer import Block, RMSNorm, TransformerConfig, rope_table

PRESETS = {
    "tiny": dict(d_model=64, n_head=4, n_kv_head=2, d_ff=128, n_encoder_layer=2, n_beat_layer=1, n_note_layer=1,
                 max_notes=256, max_beats=256),
    "small": dict(d_model=256, n_head=4, n_kv_head=2, d_ff=640, n_encoder_layer=4, n_beat_layer=2, n_note_layer=2),
    "base": dict(d_model=512, n_head=8, n_kv_head=4, d_ff=1536, n_encoder_layer=8, n_beat_layer=3, n_note_layer=2),
}  # fmt: skip
CURVES = ("tempo", "level")  # per beat
DEVIATIONS = ("timing", "velocity", "articulation")  # per note
LOG_SD = (-5.0, 3.0)


@dataclass(frozen=True)
class PhraseConfig(NoteModelConfig):
    slot_sizes: tuple[int, ...] = DEFAULT_SLOTS
    slot_kinds: tuple[str, ...] = SLOT_KINDS
    time_step_ms: float = 1.0
    n_features: int = len(SCORE_FEATURES)  # the renderer's score features (feature_matrix): the feature set decides
    n_phrase_features: int = len(PHRASE_FEATURES) - len(SCORE_FEATURES)  # markings and derived context
    pedal_samples: int = 4
    d_model: int = 256
    n_head: int = 4
    n_kv_head: int = 2
    d_ff: int = 640
    n_encoder_layer: int = 4
    n_beat_layer: int = 2
    n_note_layer: int = 2
    max_notes: int = 1024
    max_beats: int = 1024
    rope_theta: float = 10000.0
    dropout: float = 0.0

    PRESETS = PRESETS
    family = "phrase"

    def __post_init__(self) -> None:
        self.check_slots()

    @property
    def block_config(self) -> TransformerConfig:
        return self.blocks(max(self.max_notes, self.max_beats))


def gaussian_nll(mean: torch.Tensor, log_sd: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over ``mask`` of the Gaussian negative log-likelihood (without the constant)."""
    if not mask.any():
        return mean.new_zeros(())
    m, s, t = mean[mask].float(), log_sd[mask].float(), target[mask].float()
    return (0.5 * ((t - m) * torch.exp(-s)) ** 2 + s).mean()


class PhraseRenderer(nn.Module):
    # a pretrained renderer's note encoder is the starting point; everything else starts fresh
    pretrained_prefixes = ("embed.", "features.", "encoder.", "encoder_norm.")

    def __init__(self, config: PhraseConfig):
        super().__init__()
        self.config = c = config
        bc = c.block_config
        self.embed = NoteEmbedding(c)
        self.features = nn.Linear(c.n_features, c.d_model, bias=False)
        self.phrase_features = nn.Linear(c.n_phrase_features, c.d_model, bias=False)
        self.encoder = nn.ModuleList(Block(bc) for _ in range(c.n_encoder_layer))
        self.encoder_norm = RMSNorm(c.d_model)
        self.empty_beat = nn.Parameter(torch.zeros(c.d_model))
        self.beat_in = nn.Linear(c.d_model + 1, c.d_model, bias=False)
        self.beats = nn.ModuleList(Block(bc) for _ in range(c.n_beat_layer))
        self.beat_norm = RMSNorm(c.d_model)
        self.curve_head = nn.Linear(c.d_model, 2 * len(CURVES))
        self.note_in = nn.Linear(2 * c.d_model, c.d_model, bias=False)
        self.notes = nn.ModuleList(Block(bc) for _ in range(c.n_note_layer))
        self.note_norm = RMSNorm(c.d_model)
        self.note_head = nn.Linear(c.d_model, 2 * len(DEVIATIONS) + c.pedal_samples)
        head_dim = c.d_model // c.n_head
        self.register_buffer(
            "rope", rope_table(head_dim, max(c.max_notes, c.max_beats), c.rope_theta), persistent=False
        )
        self.apply(self._init)
        layers = c.n_encoder_layer + c.n_beat_layer + c.n_note_layer
        for name, p in self.named_parameters():
            if name.endswith(("out.weight", "down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers))
        nn.init.zeros_(self.phrase_features.weight)
        nn.init.zeros_(self.curve_head.bias)
        nn.init.zeros_(self.note_head.bias)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def adapt_pretrained(self, state: dict) -> dict:
        """A renderer checkpoint's weights -> the ones this model shares with it (its note encoder)."""
        if any(k.startswith(("beats.", "notes.")) for k in state):
            return state  # already a phrase renderer
        return {k: v for k, v in state.items() if k.startswith(self.pretrained_prefixes)}

    @property
    def fresh_weights(self) -> tuple[str, ...]:
        return ("phrase_features.", "empty_beat", "beat_in.", "beats.", "beat_norm.", "curve_head.",
                "note_in.", "notes.", "note_norm.", "note_head.")  # fmt: skip

    def predict(self, src, features, beat, keep):
        """(B, N, S) slots, (B, N, F) features, (B, N) beat of each note (0 .. max_beats-1), (B, N) real notes ->
        dict of curve (B, M, 2) and note (B, N, 2) Gaussians (mean, log sd) and pedal logits (B, N, 4)."""
        c = self.config
        n = src.size(1)
        if n > c.max_notes:
            raise EspressivoError(f"{n} notes exceed the phrase renderer's window of {c.max_notes}")
        split = c.n_features
        x = self.embed(src) + self.features(features[..., :split]) + self.phrase_features(features[..., split:])
        for block in self.encoder:
            x = block(x, self.rope[:n], keep=keep)
        x = self.encoder_norm(x)
        # pool notes into beats
        m = int(beat.max()) + 1 if beat.numel() else 1
        if m > c.max_beats:
            raise EspressivoError(f"{m} beats exceed the phrase renderer's window of {c.max_beats}")
        weight = keep.to(x.dtype)
        sums = torch.zeros(x.size(0), m, x.size(2), dtype=x.dtype, device=x.device)
        sums.scatter_add_(1, beat[..., None].expand_as(x), x * weight[..., None])
        counts = torch.zeros(x.size(0), m, dtype=x.dtype, device=x.device).scatter_add_(1, beat, weight)
        filled = counts > 0
        pooled = torch.where(filled[..., None], sums / counts.clamp_min(1)[..., None], self.empty_beat.to(x.dtype))
        last = (beat * keep).max(1).values  # the window's last real beat
        beat_keep = torch.arange(m, device=x.device)[None, :] <= last[:, None]
        h = self.beat_in(torch.cat([pooled, torch.log1p(counts)[..., None] / 3], -1))
        for block in self.beats:
            h = block(h, self.rope[:m], keep=beat_keep)
        h = self.beat_norm(h)
        curves = self.curve_head(h).view(h.size(0), m, len(CURVES), 2)
        # back to the notes
        y = self.note_in(torch.cat([x, torch.gather(h, 1, beat[..., None].expand_as(x))], -1))
        for block in self.notes:
            y = block(y, self.rope[:n], keep=keep)
        y = self.note_norm(y)
        out = self.note_head(y)
        k = 2 * len(DEVIATIONS)
        deviations = out[..., :k].view(y.size(0), n, len(DEVIATIONS), 2)
        result = {name: curves[..., i, :] for i, name in enumerate(CURVES)}
        result |= {name: deviations[..., i, :] for i, name in enumerate(DEVIATIONS)}
        result["pedal"] = out[..., k:]
        return result

    def forward(self, src, features, beat, keep, **targets):
        out = self.predict(src, features, beat, keep)
        if not targets:
            return out, None
        loss = out["tempo"].new_zeros((), dtype=torch.float32)
        for name in CURVES:
            pred = out[name].float()
            m = pred.size(1)
            mask = targets[f"{name}_ok"][:, :m]
            loss = loss + gaussian_nll(pred[..., 0], pred[..., 1].clamp(*LOG_SD), targets[name][:, :m], mask)
        ok = targets["note_ok"] & keep
        for name in DEVIATIONS:
            pred = out[name].float()
            loss = loss + gaussian_nll(pred[..., 0], pred[..., 1].clamp(*LOG_SD), targets[name], ok)
        if ok.any():
            loss = loss + F.binary_cross_entropy_with_logits(out["pedal"][ok].float(), targets["pedal"][ok].float())
        return out, loss
