"""CVRNN (Maezawa et al., ISMIR 2019): rendering with a low-dimensional interpretation sequence z.

Per score note n (score order), with h the state of a 3-layer GRU:

* **score feature** ``c_n`` — a CNN over a piano-roll window of ±7 beats (4x4 kernels, channels
  [20, 40, 60, 80], each followed by max-pooling (2x1), batch norm and leaky ReLU), concatenated with the
  one-hot score features, an MLP (1024 hidden, leaky ReLU, tanh output), embedded to 64 and run through a
  3-layer GRU of 64; ``c_n`` = [MLP output, GRU output].
* **prior** ``p(z_n | h_{n-1})`` — a densely connected 3 x 250 MLP -> mean and log-variance; independent of
  the score, so z describes the playing, not the piece.
* **generation** ``p(x_n | z_n, c_n)`` — a 3-layer MLP on [c_n, psi(z_n)] -> one categorical per head
  (velocity, duration, micro-onset, tempo, pedal; see :mod:`espressivo.features.cvrnn`).  x_n sees h only
  through z_n: the bottleneck the paper calls vital.
* **inference** ``q(z_n | x_n, h_{n-1})`` — the same MLP on [h_{n-1}, phi(x_n)]; independent of the score.
* **update** ``h_n = GRU(h_{n-1}, W [c_n, phi(x_n), psi(z_n)])`` (input embedded to 64).

``forward(cats, roll, group, x, mask, keep)`` returns ``(diagnostics, loss)``: the negative ELBO per note
(reconstruction NLL of the notes ``mask`` selects + KL of every kept note), gradients truncated every
``tbptt`` notes; in training the KL of each z dimension is held to at least ``free_bits`` nats.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from espressivo.errors import EspressivoError
from espressivo.features.cvrnn import HEADS, SCORE_CATEGORIES

PRESETS = {
    # the paper's sizes (GPU): a 224 x 128 roll, pooling in time only
    "paper": dict(roll_steps_per_beat=16, roll_pitches=128, cnn_channels=(20, 40, 60, 80), pool_pitch=False,
                  score_hidden=1024, score_out=256),
    # CPU-sized: a 56 x 88 roll pooled in time and pitch; the CVRNN core as in the paper
    "small": dict(roll_steps_per_beat=4, roll_pitches=88, cnn_channels=(8, 16, 24, 32), pool_pitch=True,
                  score_hidden=512, score_out=128),
    "tiny": dict(roll_steps_per_beat=2, roll_radius_beats=4, roll_pitches=88, cnn_channels=(4, 8), pool_pitch=True,
                 score_hidden=32, score_out=16, score_embed=16, gru_size=16, gru_layers=1, dense_units=24,
                 gen_hidden=32, tbptt=8),
}  # fmt: skip


@dataclass(frozen=True)
class CVRNNConfig:
    PRESETS: ClassVar[dict] = PRESETS
    head_sizes: tuple[int, ...] = tuple(HEADS.values())
    score_categories: tuple[int, ...] = tuple(SCORE_CATEGORIES.values())
    roll_steps_per_beat: int = 16
    roll_radius_beats: int = 7
    roll_pitches: int = 128
    cnn_channels: tuple[int, ...] = (20, 40, 60, 80)
    pool_pitch: bool = False
    score_hidden: int = 1024
    score_out: int = 256
    score_embed: int = 64
    gru_size: int = 64
    gru_layers: int = 3
    dense_units: int = 250
    dense_layers: int = 3
    gen_hidden: int = 250
    z_dim: int = 5
    tbptt: int = 30
    free_bits: float = 0.0  # nats per z dimension (training only; 0: plain ELBO)

    def __post_init__(self) -> None:
        for name in ("head_sizes", "score_categories", "cnn_channels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.roll_pitches not in (88, 128) or self.z_dim < 1 or self.tbptt < 1:
            raise EspressivoError("roll_pitches must be 88 or 128; z_dim and tbptt >= 1")
        if self.roll_time_after_cnn < 1 or self.roll_pitch_after_cnn < 1:
            raise EspressivoError("the piano-roll window is too small for that many pooling layers")

    @classmethod
    def from_name(cls, name: str, **overrides) -> CVRNNConfig:
        if name not in cls.PRESETS:
            raise EspressivoError(f"unknown cvrnn preset {name!r} (available: {', '.join(cls.PRESETS)})")
        return replace(cls(**cls.PRESETS[name]), **overrides)

    @property
    def roll_frames(self) -> int:
        return 2 * self.roll_radius_beats * self.roll_steps_per_beat

    @property
    def roll_time_after_cnn(self) -> int:
        size = self.roll_frames
        for _ in self.cnn_channels:  # a 4x4 kernel padded by 2 adds one frame; pooling halves
            size = (size + 1) // 2
        return size

    @property
    def roll_pitch_after_cnn(self) -> int:
        size = self.roll_pitches
        for _ in self.cnn_channels:
            size = (size + 1) // 2 if self.pool_pitch else size + 1
        return size

    @property
    def score_dim(self) -> int:
        return self.score_out + self.gru_size


class DenseMLP(nn.Module):
    """``layers`` fully connected layers with leaky ReLU, each fed the concatenation of the input and every
    earlier layer's output (densely connected); returns the last layer's output."""

    def __init__(self, n_in: int, units: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(n_in + k * units, units) for k in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for layer in self.layers:
            outputs.append(F.leaky_relu(layer(torch.cat(outputs, -1))))
        return outputs[-1]


class Gaussian(nn.Module):
    """A DenseMLP followed by mean and log-variance heads."""

    def __init__(self, n_in: int, c: CVRNNConfig):
        super().__init__()
        self.net = DenseMLP(n_in, c.dense_units, c.dense_layers)
        self.mean = nn.Linear(c.dense_units, c.z_dim)
        self.logvar = nn.Linear(c.dense_units, c.z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.net(x)
        return self.mean(y), self.logvar(y).clamp(-12.0, 8.0)


class ScoreEncoder(nn.Module):
    """Piano-roll CNN + one-hot features -> MLP -> GRU: the score feature c_n of every note."""

    def __init__(self, c: CVRNNConfig):
        super().__init__()
        layers, channels = [], 1
        pool = (2, 2) if c.pool_pitch else (2, 1)
        for out in c.cnn_channels:
            layers += [nn.Conv2d(channels, out, 4, padding=2), nn.MaxPool2d(pool), nn.BatchNorm2d(out),
                       nn.LeakyReLU()]  # fmt: skip
            channels = out
        self.cnn = nn.Sequential(*layers)
        flat = channels * c.roll_time_after_cnn * c.roll_pitch_after_cnn
        # one-hot inputs times a weight matrix = one embedding table per category, summed
        self.cats = nn.ModuleList(nn.Embedding(size, c.score_hidden) for size in c.score_categories)
        self.roll_in = nn.Linear(flat, c.score_hidden)
        self.out = nn.Linear(c.score_hidden, c.score_out)
        self.embed = nn.Linear(c.score_out, c.score_embed)
        self.gru = nn.GRU(c.score_embed, c.gru_size, c.gru_layers, batch_first=True)

    def forward(self, cats: torch.Tensor, roll: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """``cats`` (B, N, K) classes, ``roll`` (B, G, T, P) windows per onset group, ``group`` (B, N) ->
        (B, N, score_dim)."""
        b, g = roll.shape[:2]
        flat_index = (group + g * torch.arange(b, device=group.device)[:, None]).reshape(-1)
        used, inverse = torch.unique(flat_index, return_inverse=True)  # padding rows run no CNN
        windows = roll.reshape(b * g, 1, *roll.shape[2:])[used]
        chunk = windows.size(0) if self.training else 256  # inference: bounded memory on long scores
        maps = torch.cat([self.cnn(w.float()).flatten(1) for w in windows.split(max(chunk, 1))])
        per_note = maps[inverse].reshape(b, group.size(1), -1)
        hidden = self.roll_in(per_note) + sum(table(cats[..., k]) for k, table in enumerate(self.cats))
        m = torch.tanh(self.out(F.leaky_relu(hidden)))
        r, _ = self.gru(self.embed(m))
        return torch.cat([m, r], -1)


class CVRNN(nn.Module):
    def __init__(self, config: CVRNNConfig):
        super().__init__()
        self.config = c = config
        self.score = ScoreEncoder(c)
        self.x_tables = nn.ModuleList(nn.Embedding(size, c.dense_units) for size in c.head_sizes)
        self.phi = DenseMLP(c.dense_units, c.dense_units, c.dense_layers)
        self.psi = DenseMLP(c.z_dim, c.dense_units, c.dense_layers)
        self.prior = Gaussian(c.gru_size, c)
        self.posterior = Gaussian(c.gru_size + c.dense_units, c)
        self.generate = nn.Sequential(
            nn.Linear(c.score_dim + c.dense_units, c.gen_hidden), nn.LeakyReLU(),
            nn.Linear(c.gen_hidden, c.gen_hidden), nn.LeakyReLU(),
        )  # fmt: skip
        self.heads = nn.ModuleList(nn.Linear(c.gen_hidden, size) for size in c.head_sizes)
        self.update_in = nn.Linear(c.score_dim + 2 * c.dense_units, c.score_embed)
        self.cells = nn.ModuleList(
            nn.GRUCell(c.score_embed if k == 0 else c.gru_size, c.gru_size) for k in range(c.gru_layers)
        )

    # ------------------------------------------------------------------ pieces
    def embed_x(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): (..., heads) classes -> (..., dense_units); the one-hots as summed embedding tables."""
        return self.phi(sum(table(x[..., k]) for k, table in enumerate(self.x_tables)))

    def new_state(self, batch: int) -> list[torch.Tensor]:
        w = self.update_in.weight
        return [w.new_zeros(batch, self.config.gru_size) for _ in self.cells]

    def step(self, state: list[torch.Tensor], c: torch.Tensor, phi_x: torch.Tensor, psi_z: torch.Tensor):
        """h_n from h_{n-1} (a list, one tensor per layer) and note n's [c, phi(x), psi(z)]."""
        inp = self.update_in(torch.cat([c, phi_x, psi_z], -1))
        out = []
        for cell, h in zip(self.cells, state, strict=True):
            inp = cell(inp, h)
            out.append(inp)
        return out

    def logits(self, c: torch.Tensor, psi_z: torch.Tensor) -> list[torch.Tensor]:
        y = self.generate(torch.cat([c, psi_z], -1))
        return [head(y) for head in self.heads]

    # ------------------------------------------------------------------ training
    def forward(
        self,
        cats: torch.Tensor,
        roll: torch.Tensor,
        group: torch.Tensor,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ):
        """``x`` (B, N, heads) classes of the performance; ``mask`` (B, N) notes whose x the loss counts;
        ``keep`` (B, N) real notes.  Returns ``({"nll": per head, "kl": per z dimension}, loss)``."""
        c = self.config
        keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if keep is None else keep
        mask = keep if mask is None else mask & keep
        score = self.score(cats, roll, group)
        phi_x = self.embed_x(x)
        state = self.new_state(x.size(0))
        # evaluation draws the same noise every time (a deterministic one-sample ELBO)
        generator = None if self.training else torch.Generator(device=x.device).manual_seed(0)
        eps = torch.randn(*x.shape[:2], c.z_dim, device=x.device, generator=generator)
        h_prev, q_mean, q_logvar, zs = [], [], [], []
        for n in range(x.size(1)):
            if n and n % c.tbptt == 0:
                state = [h.detach() for h in state]
            h = state[-1]
            mean, logvar = self.posterior(torch.cat([h, phi_x[:, n]], -1))
            z = mean + torch.exp(0.5 * logvar) * eps[:, n]
            psi_z = self.psi(z)
            h_prev.append(h)
            q_mean.append(mean)
            q_logvar.append(logvar)
            zs.append(psi_z)
            new = self.step(state, score[:, n], phi_x[:, n], psi_z)
            k = keep[:, n, None]  # padding leaves the state as it was
            state = [torch.where(k, a, b) for a, b in zip(new, state, strict=True)]
        h_prev, psi_z = torch.stack(h_prev, 1), torch.stack(zs, 1)
        q_mean, q_logvar = torch.stack(q_mean, 1), torch.stack(q_logvar, 1)
        p_mean, p_logvar = self.prior(h_prev)
        kl = 0.5 * (p_logvar - q_logvar + (q_logvar.exp() + (q_mean - p_mean) ** 2) / p_logvar.exp() - 1.0)
        kept = keep.float()
        notes = kept.sum().clamp(min=1.0)
        kl_dim = (kl * kept[..., None]).sum((0, 1)) / notes
        nll = {}
        total = x.new_zeros((), dtype=torch.float32)
        for k, logit in enumerate(self.logits(score, psi_z)):
            name = list(HEADS)[k] if k < len(HEADS) else str(k)
            if mask.any():
                ce = F.cross_entropy(logit[mask].float(), x[..., k][mask], reduction="sum")
            else:
                ce = logit.sum() * 0.0
            nll[name] = ce / mask.sum().clamp(min=1)
            total = total + ce
        kl_term = kl_dim.clamp(min=c.free_bits).sum() if self.training and c.free_bits > 0 else kl_dim.sum()
        loss = total / notes + kl_term
        return {"nll": nll, "kl": kl_dim.detach()}, loss
