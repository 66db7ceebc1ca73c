"""Whole performances and what is known of them, for embeddings and classification, and the note slices
and token batches the embedder reads.

>>> items, failed = load_items("asap,supra", splits=("train",))      # (n)ASAP with split/composer/piece
>>> views = SliceSampler(items, 48, 160).pairs(rng, batch=32)        # rows i and 32 + i: one performance
>>> idx, last = pack(tokenizer, views, max_tokens=1024)              # right-padded ids, EOS positions

A *piece* groups the performances of one score ((n)ASAP ``composer/title``); a file of unknown piece is its
own.  Labels come from the composer: ``composer`` (classes with enough training pieces) and ``period``.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espressivo.core import PIANO_MAX_PITCH, PIANO_MIN_PITCH, Performance
from espressivo.data.augment import Augmentation
from espressivo.data.prepare import Source, list_sources
from espressivo.data.workers import pool as worker_pool
from espressivo.errors import EspressivoError
from espressivo.io.midi import read_midi
from espressivo.io.safety import read_bytes

# Style period of each (n)ASAP composer.  Rachmaninoff and Scriabin (whose (n)ASAP works date from 1892-1917)
# count as Romantic by style; Debussy, Ravel and Prokofiev as 20th century.
PERIODS = {
    "Bach": "Baroque",
    "Haydn": "Classical",
    "Mozart": "Classical",
    "Beethoven": "Classical",
    "Schubert": "Romantic",
    "Chopin": "Romantic",
    "Schumann": "Romantic",
    "Liszt": "Romantic",
    "Brahms": "Romantic",
    "Glinka": "Romantic",
    "Balakirev": "Romantic",
    "Rachmaninoff": "Romantic",
    "Scriabin": "Romantic",
    "Debussy": "20th century",
    "Ravel": "20th century",
    "Prokofiev": "20th century",
}
LABEL_TASKS = ("composer", "period")
MIN_TRAIN_PIECES = 3  # a composer is a class when the train split holds at least this many of its pieces


@dataclass(frozen=True, eq=False)
class Item:
    """One performance file: ``notes`` in onset order (NOTE_DTYPE)."""

    name: str
    path: str
    split: str
    composer: str
    piece: str
    notes: np.ndarray

    def __len__(self) -> int:
        return len(self.notes)


def _read(source) -> tuple[object, np.ndarray | str]:
    try:
        return source, read_midi(source.path).notes
    except EspressivoError as err:
        return source, str(err)


def load_items(
    spec: str = "asap", root: str | os.PathLike | None = None, splits: tuple[str, ...] | None = None, workers: int = 2
) -> tuple[list[Item], list[tuple[str, str]]]:
    """Read every file of the sources (``asap``, ``supra``, folders; see ``list_sources``) in ``splits``;
    returns the items and ``(file, reason)`` for each file that could not be read or has no notes."""

    return read_sources([s for s in list_sources(spec, root) if splits is None or s.split in splits], workers)


def read_sources(sources: list, workers: int = 2) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items of ``data.prepare.Source`` records, read in parallel; and the files that failed, with why."""
    items, failed = [], []
    if workers <= 1 or len(sources) < 16:
        results = map(_read, sources)
    else:
        pool = worker_pool(workers)
        results = pool.map(_read, sources, chunksize=16)
    try:
        for source, notes in results:
            if isinstance(notes, str) or len(notes) == 0:
                failed.append((source.path, notes if isinstance(notes, str) else "no notes"))
                continue
            piece = f"{source.composer}/{source.title}" if source.title else source.path
            items.append(Item(source.name, source.path, source.split, source.composer, piece, notes))
    finally:
        if not isinstance(results, map):
            pool.shutdown(cancel_futures=True)
    return items, failed


def composer_classes(items: list[Item], min_pieces: int = MIN_TRAIN_PIECES) -> list[str]:
    """Composers with at least ``min_pieces`` pieces in the train split, sorted."""
    pieces: dict[str, set] = {}
    for item in items:
        if item.split == "train" and item.composer:
            pieces.setdefault(item.composer, set()).add(item.piece)
    return sorted(c for c, p in pieces.items() if len(p) >= min_pieces)


def labels_for(items: list[Item], task: str, classes: list[str] | None = None) -> list[str | None]:
    """Each item's label for ``task`` (None: outside the task's classes)."""
    if task not in LABEL_TASKS:
        raise EspressivoError(f"unknown label task {task!r} (available: {', '.join(LABEL_TASKS)})")
    if task == "period":
        return [PERIODS.get(item.composer) for item in items]
    allowed = set(classes if classes is not None else composer_classes(items))
    return [item.composer if item.composer in allowed else None for item in items]


def read_label_table(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """A labels CSV: columns ``file`` and ``label`` (and optionally ``split``: train / validation / test);
    files relative to the CSV's folder.  Returns ``(path, label, split)`` rows (split ``train`` if absent)."""
    import csv

    path = Path(path)
    try:
        text = read_bytes(path, 16 * 2**20).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EspressivoError(f"{path}: the labels file is not UTF-8 text") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise EspressivoError(f"{path}: a labels CSV needs a header with columns file,label[,split] and rows")
    out = []
    for n, row in enumerate(rows, start=2):
        file, label, split = (row.get("file") or "").strip(), (row.get("label") or "").strip(), row.get("split")
        split = (split or "train").strip() or "train"
        if not file or not label or split not in ("train", "validation", "test"):
            raise EspressivoError(f"{path}, line {n}: needs a file, a label and a split of train/validation/test")
        out.append((str(path.parent / file), label, split))
    return out


def labelled_items(
    label: str, spec: str = "asap", root: str | os.PathLike | None = None
) -> tuple[list[Item], list[str], list[str]]:
    """Items with a label and the sorted class names.  ``label``: ``composer`` or ``period`` (from the (n)ASAP
    metadata of ``spec``), or a labels CSV (see :func:`read_label_table`)."""
    if label in LABEL_TASKS:
        items, _ = load_items(spec, root)
        labels = labels_for(items, label)
    else:
        if not Path(label).is_file():
            raise EspressivoError(f"--label must be composer, period or a labels CSV file, got {label!r}")

        table = read_label_table(label)
        items, failed = read_sources([Source("labels", p, Path(p).name, split) for p, _, split in table])
        if failed:
            raise EspressivoError(f"{failed[0][0]}: {failed[0][1]}")
        labels = [lab for _, lab, _ in table]
        items = [Item(i.name, i.path, i.split, "", i.path, i.notes) for i in items]  # each file its own piece
    classes = sorted({lab for item, lab in zip(items, labels, strict=True) if item.split == "train" and lab})
    if len(classes) < 2:
        raise EspressivoError(f"{label}: need labelled training files of two or more classes")
    keep = [i for i, lab in enumerate(labels) if lab in classes]  # a class without training files is dropped
    return [items[i] for i in keep], [labels[i] for i in keep], classes


def note_slice(notes: np.ndarray, start: int, count: int) -> Performance:
    """``count`` notes from note ``start``, moved to begin at 0 s."""
    part = notes[start : start + count].copy()
    if len(part):
        part["onset_sec"] -= part["onset_sec"][0]
    return Performance(part)


def chunk_spans(n_notes: int, chunk_notes: int, max_chunks: int = 0) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, count)`` spans covering ``n_notes`` in ``ceil(n / chunk_notes)`` near-equal
    chunks of at most ``chunk_notes``; with ``max_chunks``, that many of them spread evenly over the file."""
    if n_notes <= 0:
        return []
    n = -(-n_notes // chunk_notes)
    bounds = np.linspace(0, n_notes, n + 1).round().astype(int)
    spans = [(int(a), int(b - a)) for a, b in itertools.pairwise(bounds)]
    if max_chunks and len(spans) > max_chunks:
        spans = [spans[i] for i in np.linspace(0, len(spans) - 1, max_chunks).round().astype(int)]
    return spans


def pack(tokenizer, performances: list[Performance], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Token rows ``[slice tokens ..., EOS]`` (cut to ``max_tokens``), right-padded with PAD, and the position
    of each row's EOS."""
    rows = [tokenizer.encode(p)[: max_tokens - 1] for p in performances]
    width = max(len(r) for r in rows) + 1
    idx = np.full((len(rows), width), tokenizer.pad_id, dtype=np.int64)
    last = np.array([len(r) for r in rows], dtype=np.int64)
    for i, row in enumerate(rows):
        idx[i, : len(row)] = row
    idx[np.arange(len(rows)), last] = tokenizer.eos_id
    return idx, last


class SliceSampler:
    """Random slices of ``min_notes..max_notes`` notes.  ``pairs`` gives SimCLR's positive pairs: two
    independent slices of one performance, for ``batch`` performances of distinct pieces (another
    performance of the same piece would be a false negative).  Both views share one transposition; each
    gets its own tempo and velocity change."""

    def __init__(
        self,
        items: list[Item],
        min_notes: int,
        max_notes: int,
        augmentation: Augmentation | None = None,
        weights: np.ndarray | None = None,
    ):
        if not 1 <= min_notes <= max_notes:
            raise EspressivoError("need 1 <= min_notes <= max_notes")
        self.items = [i for i in items if len(i) >= min_notes]
        if len(self.items) < 2:
            raise EspressivoError(f"need two or more performances of at least {min_notes} notes")
        self.min_notes, self.max_notes = min_notes, max_notes
        if weights is None:  # longer files give more distinct slices
            weights = np.array([len(i) for i in self.items], dtype=np.float64)
        else:
            weights = np.asarray(weights, dtype=np.float64)[[len(i) >= min_notes for i in items]]
        self.weights = weights / weights.sum()
        aug = augmentation or Augmentation()
        self.transpose = aug.transpose
        self.per_view = Augmentation(0, aug.stretch, aug.velocity_shift, aug.velocity_scale)

    def _span(self, item: Item, rng: np.random.Generator) -> tuple[int, int]:
        count = int(rng.integers(self.min_notes, min(self.max_notes, len(item)) + 1))
        return int(rng.integers(0, len(item) - count + 1)), count

    def _semitones(self, views: list[Performance], rng: np.random.Generator) -> int:
        if not self.transpose:
            return 0
        pitches = np.concatenate([v.notes["pitch"] for v in views])
        low, high = (
            max(-self.transpose, PIANO_MIN_PITCH - int(pitches.min())),
            min(self.transpose, PIANO_MAX_PITCH - int(pitches.max())),
        )
        return int(rng.integers(low, high + 1)) if low <= high else 0

    def _augment(self, views: list[Performance], rng: np.random.Generator) -> list[Performance]:
        semitones = self._semitones(views, rng)
        if semitones:
            views = [v.transpose(semitones)[0] for v in views]
        return [self.per_view(v, rng) for v in views]

    def draw(self, rng: np.random.Generator, batch: int, distinct_pieces: bool = True) -> list[int]:
        """``batch`` item indices drawn by weight, without two of one piece (as many as there are)."""
        order = rng.choice(len(self.items), size=len(self.items), replace=False, p=self.weights)
        chosen, seen = [], set()
        for i in order:
            piece = self.items[i].piece
            if distinct_pieces and piece in seen:
                continue
            seen.add(piece)
            chosen.append(int(i))
            if len(chosen) == batch:
                break
        return chosen

    def pairs(self, rng: np.random.Generator, batch: int) -> list[Performance]:
        """``2 * b`` views (b = min(batch, pieces)): view one of performance i at row i, view two at row b + i."""
        first, second = [], []
        for i in self.draw(rng, batch):
            item = self.items[i]
            views = [note_slice(item.notes, *self._span(item, rng)) for _ in range(2)]
            a, b = self._augment(views, rng)
            first.append(a)
            second.append(b)
        return first + second

    def singles(self, rng: np.random.Generator, batch: int) -> tuple[list[Performance], list[int]]:
        """One augmented slice each of ``batch`` performances (pieces may repeat), and their item indices."""
        chosen = [int(i) for i in rng.choice(len(self.items), size=batch, p=self.weights)]
        views = []
        for i in chosen:
            item = self.items[i]
            views += self._augment([note_slice(item.notes, *self._span(item, rng))], rng)
        return views, chosen
