"""Reading prepared token shards for training: random augmented windows, and deterministic windows.

>>> corpus = TokenCorpus("data/asap-prnn")
>>> train = RandomWindows(corpus, split="train", length=512, augmentation=Augmentation(transpose=3, stretch=0.05))
>>> ids = train.sample(np.random.default_rng(0))          # np.ndarray of 512 ids
>>> for window in corpus.windows("validation", 512): ...  # every token once, in order

``RandomWindows`` is also a ``torch.utils.data.IterableDataset`` (via :meth:`torch_dataset`) whose
workers draw from independent seeded generators.  Augmentation works on performances, so it is the
same for every tokenizer: a window is decoded, transformed and encoded again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from espressivo.data.augment import Augmentation
from espressivo.errors import EspressivoError
from espressivo.tokenizers import Tokenizer, load_tokenizer


class TokenCorpus:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        index_path = self.root / "index.json"
        if not index_path.is_file():
            raise EspressivoError(f"{self.root}: no index.json; run `espressivo data prepare` first")
        try:
            self.index = json.loads(index_path.read_text())
            self.entries = self.index["entries"]
            np.dtype(self.index["dtype"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise EspressivoError(f"{index_path}: not a token corpus index ({err})") from None
        self.tokenizer: Tokenizer = load_tokenizer(self.root / "tokenizer.json")
        self._shards: dict[int, np.ndarray] = {}

    def _shard(self, number: int) -> np.ndarray:
        if number not in self._shards:
            path = self.root / "shards" / f"{number:05d}.bin"
            self._shards[number] = (
                np.memmap(path, dtype=self.index["dtype"], mode="r") if path.stat().st_size else np.zeros(0)
            )
        return self._shards[number]

    def tokens(self, entry: dict) -> np.ndarray:
        shard = self._shard(entry["shard"])
        return np.asarray(shard[entry["offset"] : entry["offset"] + entry["length"]], dtype=np.int64)

    def split(self, name: str) -> list[dict]:
        return [e for e in self.entries if e["split"] == name]

    def windows(self, split: str, length: int) -> Iterator[np.ndarray]:
        """Consecutive non-overlapping windows of ``length`` tokens of every file of ``split``, in index
        order; the last window of a file is padded with the tokenizer's PAD id."""
        pad = self.tokenizer.vocab["PAD"].start
        for entry in self.split(split):
            ids = self.tokens(entry)
            for start in range(0, len(ids), length):
                window = ids[start : start + length]
                if len(window) < length:
                    window = np.concatenate([window, np.full(length - len(window), pad)])
                yield window


class RandomWindows:
    """Random windows of ``length`` tokens from one split, files drawn in proportion to their length."""

    def __init__(
        self, corpus: TokenCorpus, split: str = "train", length: int = 512, augmentation: Augmentation | None = None
    ):
        self.corpus, self.length = corpus, int(length)
        self.entries = [e for e in corpus.split(split) if e["length"] > 0]
        if not self.entries:
            raise EspressivoError(f"no {split} files in {corpus.root}")
        sizes = np.array([e["length"] for e in self.entries], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.augmentation = augmentation or Augmentation()
        tok = corpus.tokenizer
        self.block = getattr(tok, "block", 1)
        self.pad = tok.vocab["PAD"].start

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        entry = self.entries[int(rng.choice(len(self.entries), p=self.weights))]
        ids = self.corpus.tokens(entry)
        span = int(self.length * 1.25) + self.block
        start = int(rng.integers(0, max(len(ids) - span, 0) + 1))
        start -= start % self.block  # note tokenizers: start on a note
        piece = ids[start : start + span]
        if self.augmentation.active:
            tok = self.corpus.tokenizer
            piece = tok.encode(self.augmentation(tok.decode(piece), rng)).astype(np.int64)
        window = piece[: self.length]
        if len(window) < self.length:
            window = np.concatenate([window, np.full(self.length - len(window), self.pad)])
        return window

    def torch_dataset(self, seed: int = 0):
        """An ``IterableDataset`` of int64 tensors; each DataLoader worker gets its own seeded stream."""
        import torch

        sampler = self

        class _Windows(torch.utils.data.IterableDataset):
            def __iter__(self):
                info = torch.utils.data.get_worker_info()
                rng = np.random.default_rng([seed, info.id if info else 0])
                while True:
                    yield torch.from_numpy(sampler.sample(rng))

        return _Windows()
