"""A decoder-only transformer: pre-norm (RMSNorm), rotary positions, SwiGLU, grouped-query attention through
``scaled_dot_product_attention``, and a KV cache for generation.  Over any tokenizer.

>>> model = Transformer(TransformerConfig.from_name("small", vocab_size=416))
>>> logits, loss = model(ids, targets)
>>> cache = model.new_cache(batch=1, max_len=2048); logits, cache = model.step(prompt, cache)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from espressivo.errors import EspressivoError

PRESETS = {
    "tiny": dict(n_layer=2, n_head=4, n_kv_head=2, d_model=64, d_ff=176, max_seq_len=512),
    "small": dict(n_layer=6, n_head=4, n_kv_head=4, d_model=256, d_ff=704, max_seq_len=1024),  # CPU-trainable
    "base": dict(n_layer=8, n_head=4, n_kv_head=4, d_model=256, d_ff=704, max_seq_len=1024),  # 7 M: CPU hours
    "medium": dict(
        n_layer=16, n_head=24, n_kv_head=24, d_model=1536, d_ff=4096, max_seq_len=8192
    ),  # Aria-medium size; GPU
}


@dataclass(frozen=True)
class TransformerConfig:
    PRESETS: ClassVar[dict] = PRESETS
    vocab_size: int = 416
    n_layer: int = 6
    n_head: int = 4
    n_kv_head: int = 4
    d_model: int = 256
    d_ff: int = 704
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    dropout: float = 0.0
    pad_id: int = 413

    def __post_init__(self) -> None:
        if self.d_model % self.n_head or self.n_head % self.n_kv_head:
            raise EspressivoError("d_model must divide by n_head, and n_head by n_kv_head")

    @classmethod
    def from_name(cls, name: str, **overrides) -> TransformerConfig:
        if name not in cls.PRESETS:
            raise EspressivoError(f"unknown transformer preset {name!r} (available: {', '.join(cls.PRESETS)})")
        return replace(cls(**cls.PRESETS[name]), **overrides)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_table(head_dim: int, length: int, theta: float) -> torch.Tensor:
    """Unit complex rotations (T, D/2): position t turns feature pair j by t / theta^(2j/D)."""
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32), freqs)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """x: (..., T, [H,] D); rotation: (T, [1,] D/2) complex.  Rotates the pairs (even, odd) of each head's features."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * rotation).flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = c.n_head, c.n_kv_head, c.d_model // c.n_head
        self.q = nn.Linear(c.d_model, c.d_model, bias=False)
        self.kv = nn.Linear(c.d_model, 2 * self.n_kv * self.head_dim, bias=False)
        self.out = nn.Linear(c.d_model, c.d_model, bias=False)
        self.dropout = c.dropout

    def forward(self, x, rotation, cache=None, pos: int = 0, keep=None, valid=None):
        """``keep`` (B, T) bool: bidirectional attention over the kept positions (an encoder); None: causal.
        ``valid`` (B, cache length) bool, with a cache: the cached positions a row may attend to (rows of
        different lengths, left-padded); a padded position attends to itself only."""
        b, t, _ = x.shape
        # rotate while (B, T, H, D) is contiguous, then move heads forward
        rotation = rotation[:, None, :]
        q = apply_rope(self.q(x).view(b, t, self.n_head, self.head_dim), rotation).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 2, self.n_kv, self.head_dim).unbind(2)
        k, v = apply_rope(k, rotation).transpose(1, 2), v.transpose(1, 2)
        if cache is not None:  # (k_cache, v_cache) preallocated (B, H_kv, max_len, D)
            cache[0][:, :, pos : pos + t] = k
            cache[1][:, :, pos : pos + t] = v
            k, v = cache[0][:, :, : pos + t], cache[1][:, :, : pos + t]
            if valid is not None:
                valid = valid[:, None, None, : pos + t]
            if t == 1 and pos > 0 and keep is None:  # one new query per row: each kv head's query group at once
                group = self.n_head // self.n_kv  # (no copies of the cache, which would cost more than the step)
                q = q.reshape(b, self.n_kv, group, self.head_dim)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=valid)
                return self.out(y.reshape(b, self.n_head, 1, self.head_dim).transpose(1, 2).reshape(b, 1, -1))
        if self.n_kv != self.n_head:
            k = k.repeat_interleave(self.n_head // self.n_kv, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv, dim=1)
        if keep is not None:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=keep[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
            )
        elif valid is not None:  # causal over the valid keys; every query sees itself (no empty row)
            allowed = torch.ones(t, pos + t, dtype=torch.bool, device=x.device).tril(diagonal=pos) & valid
            keys = torch.arange(pos + t, device=x.device)
            allowed = allowed | (keys[None, :] == keys[pos:, None])
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        elif cache is None or pos == 0:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )
        elif t == 1:  # one new query sees everything cached
            y = F.scaled_dot_product_attention(q, k, v)
        else:  # new queries see every cached position and the causal part of themselves
            mask = torch.ones(t, pos + t, dtype=torch.bool, device=x.device).tril(diagonal=pos)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.norm1, self.attn = RMSNorm(c.d_model), Attention(c)
        self.norm2 = RMSNorm(c.d_model)
        self.gate_up = nn.Linear(c.d_model, 2 * c.d_ff, bias=False)
        self.down = nn.Linear(c.d_ff, c.d_model, bias=False)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, rotation, cache=None, pos=0, keep=None, valid=None):
        x = x + self.drop(self.attn(self.norm1(x), rotation, cache, pos, keep, valid))
        gate, up = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.drop(self.down(F.silu(gate) * up))


class Transformer(nn.Module):
    tied_weights = ("head.weight",)  # shares the embedding: not stored twice

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.norm = RMSNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied
        self.register_buffer("rope", rope_table(c.d_model // c.n_head, c.max_seq_len, c.rope_theta), persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith(("out.weight", "down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """``idx`` (B, T) -> ``(logits (B, T, V), loss)`` (mean cross-entropy over non-PAD targets)."""
        logits, _ = self.step(idx, None)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=self.config.pad_id
            )
        return logits, loss

    def new_cache(self, batch: int, max_len: int | None = None):
        """An empty KV cache: per layer (k, v) of shape (B, H_kv, max_len, D), plus the filled length."""
        c = self.config
        max_len = max_len or c.max_seq_len
        shape = (batch, c.n_kv_head, max_len, c.d_model // c.n_head)
        weight = self.embed.weight
        layers = [(weight.new_zeros(shape), weight.new_zeros(shape)) for _ in self.blocks]
        return {"layers": layers, "pos": 0, "valid": None}

    def step(self, idx: torch.Tensor, cache=None):
        """Run ``idx`` (B, T) after what ``cache`` holds (None: from scratch, no cache kept)."""
        hidden, cache = self.features(idx, cache)
        return self.head(hidden), cache

    def features(self, idx: torch.Tensor, cache=None):
        """The normalised last-layer states (B, T, d_model) that the LM head reads, and the cache."""
        pos = 0 if cache is None else cache["pos"]
        t = idx.size(1)
        if pos + t > self.config.max_seq_len:
            raise EspressivoError(f"sequence of {pos + t} tokens exceeds the model's {self.config.max_seq_len}")
        rotation = self.rope[pos : pos + t]
        x = self.embed(idx)
        valid = None if cache is None else cache.get("valid")
        for i, block in enumerate(self.blocks):
            x = block(x, rotation, None if cache is None else cache["layers"][i], pos, valid=valid)
        if cache is not None:
            cache["pos"] = pos + t
        return self.norm(x), cache

    def pool(self, idx: torch.Tensor, last: torch.Tensor, mode: str = "last", group: int = 4) -> torch.Tensor:
        """One state (N, d_model) per right-padded row: the last-layer state at position ``last`` (``last``),
        or the mean over positions ``0..last - 1`` (``mean``).  Rows run in groups of ``group`` of similar
        length, each cut after its longest ``last``: attention is causal, so padding after ``last`` never
        changes what is read, and is not computed (small groups are also faster on CPU)."""
        order = torch.argsort(last)
        states = []
        for start in range(0, len(order), group):
            rows = order[start : start + group]
            ends = last[rows]
            hidden, _ = self.features(idx[rows, : int(ends.max()) + 1])
            if mode == "last":
                states.append(hidden[torch.arange(len(rows), device=idx.device), ends])
            else:
                inside = torch.arange(hidden.size(1), device=idx.device)[None, :] < ends[:, None]
                total = (hidden * inside[..., None]).sum(1)
                states.append(total / ends.clamp(min=1)[:, None])
        return torch.cat(states)[torch.argsort(order)]

    def for_sampling(self) -> Decoder:
        """This model as token-by-token sampling on a CPU runs it (:class:`Decoder`)."""
        return Decoder(self)

    @staticmethod
    def reorder_state(cache, index: torch.Tensor):
        if cache is None:
            return None
        valid = cache.get("valid")
        return {
            "layers": [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache["layers"]],
            "pos": cache["pos"],
            "valid": None if valid is None else valid.index_select(0, index),
        }


class Decoder:
    """Token-by-token decoding of a :class:`Transformer` on a CPU: the same ``step``, cache and ``reorder_state``,
    but one new id per row runs without module calls, on float16 copies of the linear weights (q, k and v in one
    matrix) and torch's fused RMSNorm.  One token at a time a step is bound by reading the weights from memory:
    half the bytes made the linear layers 2.4x faster here (docs/benchmarks.md), and float16 keeps 3 more mantissa
    bits than bfloat16.  A prompt (several ids) goes through the model itself."""

    def __init__(self, model: Transformer):
        def half(*weights):
            return torch.cat([w.detach() for w in weights]).to(torch.float16).contiguous()

        self.model, self.config = model.eval(), model.config
        self.layers = [
            (b.norm1.weight, b.norm1.eps, half(b.attn.q.weight, b.attn.kv.weight), half(b.attn.out.weight),
             b.norm2.weight, b.norm2.eps, half(b.gate_up.weight), half(b.down.weight))
            for b in model.blocks
        ]  # fmt: skip
        self.head = half(model.head.weight)
        self.new_cache, self.reorder_state = model.new_cache, model.reorder_state

    def eval(self):
        return self

    def parameters(self):
        return self.model.parameters()

    def step(self, idx: torch.Tensor, cache=None):
        if cache is None or cache["pos"] == 0 or idx.size(1) != 1:
            return self.model.step(idx, cache)
        c, pos = self.config, cache["pos"]
        if pos + 1 > c.max_seq_len:
            raise EspressivoError(f"sequence of {pos + 1} tokens exceeds the model's {c.max_seq_len}")
        b, d, hd, kv = idx.size(0), c.d_model, c.d_model // c.n_head, c.n_kv_head
        rotation = self.model.rope[pos : pos + 1][:, None, :]
        valid = cache.get("valid")
        mask = None if valid is None else valid[:, None, None, : pos + 1]
        x = self.model.embed(idx)
        for (n1, e1, qkv_w, out_w, n2, e2, gate_up_w, down_w), (k_cache, v_cache) in zip(
            self.layers, cache["layers"], strict=True
        ):
            h = F.rms_norm(x, (d,), n1, e1)
            q, k, v = F.linear(h.half(), qkv_w).float().split((d, kv * hd, kv * hd), dim=-1)
            q = apply_rope(q.view(b, 1, c.n_head, hd), rotation).view(b, kv, c.n_head // kv, hd)
            k_cache[:, :, pos] = apply_rope(k.view(b, 1, kv, hd), rotation)[:, 0]
            v_cache[:, :, pos] = v.view(b, kv, hd)
            y = F.scaled_dot_product_attention(q, k_cache[:, :, : pos + 1], v_cache[:, :, : pos + 1], attn_mask=mask)
            x = x + F.linear(y.reshape(b, 1, d).half(), out_w).float()
            gate, up = F.linear(F.rms_norm(x, (d,), n2, e2).half(), gate_up_w).float().chunk(2, dim=-1)
            x = x + F.linear((F.silu(gate) * up).half(), down_w).float()
        cache["pos"] = pos + 1
        x = self.model.norm(x)
        return F.linear(x.half(), self.head).float(), cache
