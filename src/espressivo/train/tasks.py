"""What the training loop trains on: a task turns a data folder into batches for one kind of model.

=========  ========================================  ================================================
``lm``     a token corpus (``data prepare``)          next-token prediction (transformer, perfrnn)
``denoise``  a ``note``-token corpus                  masked denoising of performances (renderer
                                                      pretraining: each slot masked with ``mask_prob``)
``render`` aligned pairs (``data pairs``)             score -> performance (renderer fine-tuning)
``cvrnn``  aligned pairs (``data pairs``)             the CVRNN's ELBO (score + performance windows)
=========  ========================================  ================================================

Every task gives ``batch(rng)`` (keyword arguments of the model's ``forward``), ``validation()`` (fixed
batches with their weights: the number of targets the loss counts) and the settings the model needs from
the data (vocabulary or slot sizes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from espressivo.errors import EspressivoError

TASKS = ("lm", "denoise", "render", "cvrnn")


def spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over the list (all of them if fewer)."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def default_task(model_type: str, data: str) -> str:
    if model_type == "cvrnn":
        return "cvrnn"
    if model_type != "renderer":
        return "lm"
    return "render" if (Path(data) / "pairs.json").is_file() else "denoise"


class LMTask:
    def __init__(self, c, augmentation, device, rank: int):
        import torch

        from espressivo.data.tokens import RandomWindows, TokenCorpus

        self.torch, self.c, self.device = torch, c, device
        self.corpus = TokenCorpus(c.data)
        self.tokenizer = self.corpus.tokenizer
        self.pad = self.tokenizer.vocab["PAD"].start
        self.sampler = RandomWindows(self.corpus, "train", c.seq_len + 1, augmentation)
        self.val_windows = [
            w[: c.seq_len + 1]
            for _, w in zip(range(c.eval_windows), self.corpus.windows("validation", c.seq_len + 1), strict=False)
        ]

    def model_settings(self) -> dict:
        return {"vocab_size": len(self.tokenizer.vocab), "pad_id": self.pad}

    def _pack(self, windows: list[np.ndarray]) -> dict:
        data = self.torch.from_numpy(np.stack(windows)).to(self.device)
        return {"idx": data[:, :-1], "targets": data[:, 1:]}

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self.sampler.sample(rng) for _ in range(self.c.batch_size)])

    def validation(self) -> Iterator[tuple[dict, int]]:
        for start in range(0, len(self.val_windows), self.c.batch_size):
            windows = self.val_windows[start : start + self.c.batch_size]
            batch = self._pack(windows)
            yield batch, int((batch["targets"] != self.pad).sum())


class _NoteTask:
    """Shared by the renderer's tasks: stacking window dicts into tensors."""

    def _pack(self, windows: list[dict]) -> dict:
        torch = self.torch
        out = {}
        for key in windows[0]:
            out[key] = torch.from_numpy(np.stack([w[key] for w in windows])).to(self.device)
        return out

    def model_settings(self) -> dict:
        from espressivo.features.slots import slot_sizes

        return {"slot_sizes": slot_sizes(self.tokenizer), "time_step_ms": self.tokenizer.config.time_step_ms}

    def validation(self) -> Iterator[tuple[dict, int]]:
        for start in range(0, len(self.val_windows), self.c.batch_size):
            batch = self._pack(self.val_windows[start : start + self.c.batch_size])
            yield batch, int(batch["loss_mask"].sum())


class DenoiseTask(_NoteTask):
    """Masked denoising on unaligned performances in the ``note`` representation (Pianist Transformer's
    pretraining): every slot of every note is replaced by MASK with probability ``mask_prob``; the encoder
    sees the corrupted notes, the decoder is teacher-forced on the originals, the loss counts the masked slots."""

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        from espressivo.data.tokens import RandomWindows, TokenCorpus
        from espressivo.tokenizers.note import NoteTokenizer

        self.torch, self.c, self.device = torch, c, device
        self.corpus = TokenCorpus(c.data)
        self.tokenizer = self.corpus.tokenizer
        if not isinstance(self.tokenizer, NoteTokenizer):
            raise EspressivoError(f"{c.data}: renderer pretraining needs a corpus of `note` tokens")
        self.block = self.tokenizer.block
        self.starts = np.array([start for start, _ in self.tokenizer.slot_ranges])
        self.sizes = np.array([stop - start for start, stop in self.tokenizer.slot_ranges])
        self.sampler = RandomWindows(self.corpus, "train", c.seq_len * self.block, augmentation)
        rng = np.random.default_rng(0)  # the same masks at every validation
        windows = spread(list(self.corpus.windows("validation", c.seq_len * self.block)), c.eval_windows)
        self.val_windows = [self._corrupt(w, rng) for w in windows]

    def _corrupt(self, ids: np.ndarray, rng: np.random.Generator) -> dict:
        notes = ids.reshape(-1, self.block) - self.starts
        keep = ((notes >= 0) & (notes < self.sizes)).all(axis=1)  # PAD blocks at the end of a short file
        tgt = np.where(keep[:, None], notes, 0)
        masked = (rng.random(tgt.shape) < self.c.mask_prob) & keep[:, None]
        src = np.where(masked, self.sizes, tgt)
        return {"src": src, "tgt": tgt, "loss_mask": masked, "keep": keep}

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self._corrupt(self.sampler.sample(rng), rng) for _ in range(self.c.batch_size)])


class RenderTask(_NoteTask):
    """Score -> performance on aligned pairs: the loss counts the expressive slots of matched notes."""

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        from espressivo.data.pairs import RenderPairs
        from espressivo.features.slots import render_tokenizer

        self.torch, self.c, self.device = torch, c, device
        self.tokenizer = render_tokenizer()
        self.sampler = RenderPairs(c.data, "train", self.tokenizer, c.seq_len, augmentation, c.score_tempo)
        validation = RenderPairs(c.data, "validation", self.tokenizer, c.seq_len, score_tempo=c.score_tempo)
        self.val_windows = spread(list(validation.windows()), c.eval_windows)

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self.sampler.sample(rng) for _ in range(self.c.batch_size)])


class CVRNNTask(_NoteTask):
    """The CVRNN on aligned pairs: windows of ``seq_len`` notes; augmentation by transposition
    (``augment_transpose``) and tempo-curve noise (``augment_tempo_noise``)."""

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        from espressivo.data.cvrnn import CVRNNAugmentation, CVRNNPairs
        from espressivo.features.slots import render_tokenizer
        from espressivo.models.cvrnn import CVRNNConfig

        self.torch, self.c, self.device = torch, c, device
        self.tokenizer = render_tokenizer()  # not used by the model; keeps checkpoints self-describing
        config = CVRNNConfig.from_name(c.model, **c.model_overrides)
        aug = CVRNNAugmentation(c.augment_transpose, c.augment_tempo_noise)
        self.sampler = CVRNNPairs(c.data, "train", config, c.seq_len, aug)
        validation = CVRNNPairs(c.data, "validation", config, c.seq_len)
        self.val_windows = spread(list(validation.windows()), c.eval_windows)

    def model_settings(self) -> dict:
        return {}

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self.sampler.sample(rng) for _ in range(self.c.batch_size)])

    def validation(self) -> Iterator[tuple[dict, int]]:
        for start in range(0, len(self.val_windows), self.c.batch_size):
            batch = self._pack(self.val_windows[start : start + self.c.batch_size])
            yield batch, int(batch["keep"].sum())


def make_task(c, augmentation, device, rank: int = 0):
    name = c.task if c.task != "auto" else default_task(c.model_type, c.data)
    if (name == "cvrnn") != (c.model_type == "cvrnn"):
        raise EspressivoError("the cvrnn model trains with task cvrnn (aligned pairs), and only it")
    if name == "cvrnn":
        return CVRNNTask(c, augmentation, device, rank)
    if name == "lm" and c.model_type == "renderer":
        raise EspressivoError("the renderer trains with task denoise (a note corpus) or render (pairs)")
    if name != "lm" and c.model_type != "renderer":
        raise EspressivoError(f"task {name} trains the renderer (model_type: renderer)")
    return {"lm": LMTask, "denoise": DenoiseTask, "render": RenderTask}[name](c, augmentation, device, rank)
