"""The tokenizer interface, its vocabulary as a range table, and the registry.

Every tokenizer turns a :class:`Performance` into a 1-D array of integer ids and back::

    tok = from_name("performance-rnn")
    ids = tok.encode(performance)            # np.ndarray[int32]
    ids, altered = tok.encode_checked(performance)  # ... and counts the notes it had to change (clamped)
    perf = tok.decode(ids)                   # never raises on a bad sequence
    perf, dropped = tok.decode_checked(ids)  # ... and counts what could not be realised
    tok.save("tokenizer.json"); same = load_tokenizer("tokenizer.json")

A vocabulary is a small table of named ranges (note-seq style): ``NOTE_ON`` 0..127 at ids 0..127, and
so on; ``tok.vocab.token(61)`` is ``"NOTE_ON_61"``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from espressivo.core import Performance
from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes
from espressivo.io.safety import read_bytes
from espressivo.registry import Registry


@dataclass(frozen=True)
class Range:
    """``size`` consecutive ids starting at ``start``, for values ``first .. first + size - 1``."""

    name: str
    start: int
    size: int
    first: int = 0

    @property
    def stop(self) -> int:
        return self.start + self.size


class Vocabulary:
    def __init__(self, ranges: list[tuple[str, int, int]]):
        """``ranges``: ``(name, size, first_value)`` in id order."""
        self.ranges: dict[str, Range] = {}
        start = 0
        for name, size, first in ranges:
            self.ranges[name] = Range(name, start, size, first)
            start += size
        self.size = start

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> Range:
        return self.ranges[name]

    def token(self, index: int) -> str:
        """The readable name of one id: ``NOTE_ON_60``, ``TIME_SHIFT_125``, ``PAD``."""
        for r in self.ranges.values():
            if r.start <= index < r.stop:
                return r.name if r.size == 1 else f"{r.name}_{index - r.start + r.first}"
        raise EspressivoError(f"id {index} is outside the vocabulary (size {self.size})")

    def index(self, token: str) -> int:
        """Inverse of :meth:`token`."""
        if token in self.ranges and self.ranges[token].size == 1:
            return self.ranges[token].start
        name, _, value = token.rpartition("_")
        r = self.ranges.get(name)
        if r is None or not value.lstrip("-").isdigit() or not 0 <= int(value) - r.first < r.size:
            raise EspressivoError(f"unknown token {token!r}")
        return r.start + int(value) - r.first

    def tokens(self, ids) -> list[str]:
        return [self.token(int(i)) for i in ids]


class Tokenizer(ABC):
    """Base class: subclasses set ``name`` and ``Config`` and implement the two codec methods."""

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config=None, **overrides):
        config = config if config is not None else self.Config()
        try:
            self.config = dataclasses.replace(config, **overrides)
        except TypeError as err:
            raise EspressivoError(f"{self.name} tokenizer: {err}") from None
        self.vocab = self.build_vocab()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config}, vocab={len(self.vocab)})"

    @abstractmethod
    def build_vocab(self) -> Vocabulary: ...

    @abstractmethod
    def encode(self, performance: Performance) -> np.ndarray: ...

    def encode_checked(self, performance: Performance) -> tuple[np.ndarray, int]:
        """Encode, returning the ids and the number of notes the vocabulary could not hold as they were (a
        duration or a rest beyond its range, clamped).  Decoding cannot know: ``decode_checked`` counts only
        the events of a sequence that cannot be realised."""
        return self.encode(performance), 0

    @abstractmethod
    def decode_checked(self, ids) -> tuple[Performance, int]:
        """Decode, returning the performance and the number of events that could not be realised."""

    def decode(self, ids) -> Performance:
        return self.decode_checked(ids)[0]

    def time_advance(self, ids) -> np.ndarray:
        """Seconds of music each id moves time forward by (for length limits while generating)."""
        return np.zeros(len(ids))

    def start_ids(self) -> np.ndarray:
        """A neutral opening for unconditional generation."""
        return np.zeros(0, np.int64)

    def _as_ids(self, ids) -> np.ndarray:
        array = np.asarray(ids)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise EspressivoError("token ids must be a 1-D integer sequence")
        return array.astype(np.int64)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"tokenizer": self.name, "config": dataclasses.asdict(self.config), "vocab_size": len(self.vocab)}

    def save(self, path: str | os.PathLike, own: bool = False) -> None:
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=2).encode(), own=own)


TOKENIZERS: Registry[type[Tokenizer]] = Registry("tokenizer")  # a tokenizer class registers with @TOKENIZERS.register()


def from_name(name: str, **config) -> Tokenizer:
    """A tokenizer by registry name (``performance-rnn``, ``note``, ...) with config overrides."""
    return TOKENIZERS[name](**config)


def from_dict(spec: dict) -> Tokenizer:
    if not isinstance(spec, dict) or "tokenizer" not in spec or not isinstance(spec.get("config", {}), dict):
        raise EspressivoError("not a tokenizer description (needs 'tokenizer' and 'config')")
    cls = TOKENIZERS.get(spec["tokenizer"])
    if cls is None:
        raise EspressivoError(f"unknown tokenizer {spec['tokenizer']!r}")
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = set(spec.get("config", {})) - fields
    if unknown:
        raise EspressivoError(f"unknown {cls.name} settings: {', '.join(sorted(unknown))}")
    tokenizer = cls(**spec.get("config", {}))
    if "vocab_size" in spec and spec["vocab_size"] != len(tokenizer.vocab):
        raise EspressivoError(
            f"vocabulary size mismatch: file says {spec['vocab_size']}, config gives {len(tokenizer.vocab)}"
        )
    return tokenizer


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    try:
        spec = json.loads(read_bytes(path, 2**20))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EspressivoError(f"{path}: not a tokenizer JSON file ({err})") from None
    return from_dict(spec)
