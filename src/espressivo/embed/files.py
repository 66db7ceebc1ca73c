"""One vector per performance file.  A performance is cut into near-equal chunks of at most ``chunk_notes``
notes; each chunk is embedded; the file's vector is the mean of its chunks' vectors, L2-normalised (Aria's
global embedding).  Chunks of many files are batched by length.

>>> embedder = FileEmbedder.load("embed-small")
>>> vectors = embedder.embed([perf_a, perf_b])                 # (2, 256) float32 unit rows
>>> index = embed_paths(embedder, ["a.mid", "folder/"])        # EmbeddingIndex(names, vectors, ...)
>>> index.save("embeddings.npz"); EmbeddingIndex.load("embeddings.npz").nearest(vectors[0], k=10)

Any espressivo transformer embeds: an ``embedder`` checkpoint gives its projection at EOS (what it was
trained for); a plain ``transformer`` language model its mean last-layer state (the network before
contrastive training, a baseline).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espressivo.core import Performance
from espressivo.data.performances import chunk_spans, note_slice, pack
from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes
from espressivo.io.midi import read_midi
from espressivo.io.safety import read_bytes, read_zip_member
from espressivo.models.checkpoint import load_pretrained

MIDI_SUFFIXES = (".mid", ".midi")
ROWS_PER_BATCH = 32
MAX_INDEX_BYTES = 2**30


@dataclass
class FileEmbedder:
    model: object
    tokenizer: object
    name: str
    chunk_notes: int = 160
    max_chunks: int = 0  # 0: every chunk of the file
    precision: str = "bfloat16"  # autocast on CPU; float32 for bit-stable results

    def __post_init__(self) -> None:
        if not 8 <= self.chunk_notes <= 1000 or self.max_chunks < 0:
            raise EspressivoError("chunk_notes must lie in 8..1000 and max_chunks be >= 0")
        if self.precision not in ("bfloat16", "float32"):
            raise EspressivoError("precision must be bfloat16 or float32")
        self.kind = "projection" if hasattr(self.model, "proj") else "mean-state"

    @classmethod
    def load(cls, name_or_path: str, **settings) -> FileEmbedder:
        pretrained = load_pretrained(name_or_path)
        if not hasattr(pretrained.model, "pool"):  # pooled hidden states: an embedder, or a transformer's
            raise EspressivoError(
                f"{name_or_path}: a {pretrained.model_type} model cannot embed (an embedder or transformer can)"
            )
        return cls(pretrained.model, pretrained.tokenizer, str(name_or_path), **settings)

    @property
    def dim(self) -> int:
        c = self.model.config
        return c.embed_dim if self.kind == "projection" else c.d_model

    def chunks(self, performance: Performance) -> list[Performance]:
        spans = chunk_spans(len(performance), self.chunk_notes, self.max_chunks)
        return [note_slice(performance.notes, start, count) for start, count in spans]

    def embed_chunks(self, chunks: list[Performance], output: str = "vector") -> np.ndarray:
        """Per chunk: its vector (``vector``; unit length for an embedder), or its class probabilities
        (``classes``, an embedder fine-tuned with a class head)."""
        import torch
        import torch.nn.functional as F

        if output == "classes" and getattr(self.model, "classifier", None) is None:
            raise EspressivoError(f"{self.name}: this model has no class head (train one with `classify train`)")
        width = len(self.model.config.classes) if output == "classes" else self.dim
        max_tokens = self.model.config.max_seq_len
        rows = [self.tokenizer.encode(c) for c in chunks]
        order = np.argsort([len(r) for r in rows], kind="stable")  # similar lengths share a batch
        out = np.zeros((len(chunks), width), np.float32)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bfloat16")
        with torch.no_grad(), autocast:
            for start in range(0, len(order), ROWS_PER_BATCH):
                picked = order[start : start + ROWS_PER_BATCH]
                idx, last = pack(self.tokenizer, [chunks[i] for i in picked], max_tokens)
                idx, last = torch.from_numpy(idx), torch.from_numpy(last)
                if self.kind == "mean-state":
                    vectors = self.model.pool(idx, last, "mean").float()
                else:
                    state = self.model.pool(idx, last, "last")
                    if output == "classes":
                        vectors = torch.softmax(self.model.classifier(state).float(), dim=-1)
                    else:
                        vectors = F.normalize(self.model.proj(state).float(), dim=-1)
                out[picked] = vectors.numpy()
        return out

    def _per_file(self, performances: list[Performance], output: str) -> np.ndarray:
        chunks, owner = [], []
        for i, perf in enumerate(performances):
            if len(perf) == 0:
                raise EspressivoError("cannot embed a performance without notes")
            parts = self.chunks(perf)
            chunks += parts
            owner += [i] * len(parts)
        values = self.embed_chunks(chunks, output)
        weights = np.array([len(c) for c in chunks], np.float64) if output == "classes" else np.ones(len(chunks))
        sums = np.zeros((len(performances), values.shape[1]), np.float64)
        np.add.at(sums, np.asarray(owner, dtype=np.int64), values * weights[:, None])
        return sums

    def embed(self, performances: list[Performance]) -> np.ndarray:
        """(n, dim) float32 unit rows: each performance's mean chunk vector, normalised."""
        sums = self._per_file(performances, "vector")
        return (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def class_probabilities(self, performances: list[Performance]) -> np.ndarray:
        """(n, classes): the chunks' class probabilities averaged, each chunk weighted by its notes."""
        sums = self._per_file(performances, "classes")
        return sums / sums.sum(axis=1, keepdims=True)


def collect_midi(inputs: list[str | os.PathLike]) -> list[Path]:
    """The MIDI files named or found (recursively, sorted) under the folders named; each file once."""
    files, seen = [], set()
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
        elif path.is_file():
            found = [path]
        else:
            raise EspressivoError(f"{path}: no such file or folder")
        for p in found:
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                files.append(p)
    if not files:
        raise EspressivoError("no MIDI files (.mid, .midi) among the inputs")
    return files


@dataclass
class EmbeddingIndex:
    """Unit vectors with the files they came from and the model that made them."""

    names: list[str]
    vectors: np.ndarray
    model: str
    chunk_notes: int

    def save(self, path: str | os.PathLike) -> None:
        import io

        buffer = io.BytesIO()
        np.savez(
            buffer,
            names=np.array(self.names, dtype=str),
            vectors=self.vectors.astype(np.float32),
            model=np.array(self.model),
            chunk_notes=np.array(self.chunk_notes),
        )
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> EmbeddingIndex:
        import io
        import zipfile

        raw = read_bytes(path, MAX_INDEX_BYTES)
        arrays = {}
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                for key in ("names", "vectors", "model", "chunk_notes"):  # each member read with a size cap
                    member = read_zip_member(archive, f"{key}.npy", MAX_INDEX_BYTES, str(path))
                    arrays[key] = np.load(io.BytesIO(member), allow_pickle=False)
            names, vectors = [str(n) for n in arrays["names"]], np.asarray(arrays["vectors"], np.float32)
            model, chunk_notes = str(arrays["model"]), int(arrays["chunk_notes"])
        except (zipfile.BadZipFile, OSError, ValueError, TypeError, EOFError) as err:
            raise EspressivoError(f"{path}: not an embeddings file from `espressivo embed` ({err})") from None
        if vectors.ndim != 2 or len(names) != len(vectors) or not len(names) or not np.isfinite(vectors).all():
            raise EspressivoError(f"{path}: the embeddings file is damaged (names and vectors do not fit)")
        return cls(names, vectors, model, chunk_notes)

    def nearest(self, vector: np.ndarray, k: int = 10, exclude: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` entries of highest cosine similarity to ``vector``, best first."""
        if vector.shape != self.vectors.shape[1:]:
            raise EspressivoError(f"the query has {vector.shape[-1]} dimensions, the index {self.vectors.shape[1]}")
        scores = (
            self.vectors @ vector / np.maximum(np.linalg.norm(self.vectors, axis=1) * np.linalg.norm(vector), 1e-12)
        )
        ranked = [i for i in np.argsort(-scores, kind="stable") if not exclude or self.names[i] not in exclude]
        return [(self.names[i], float(scores[i])) for i in ranked[:k]]


def embed_paths(
    embedder: FileEmbedder, inputs: list[str | os.PathLike], progress: bool = False, files_per_batch: int = 8
) -> tuple[EmbeddingIndex, list[tuple[str, str]]]:
    """Embed every MIDI file of ``inputs``; a file that cannot be read is skipped and reported as
    ``(file, reason)``; none readable is an error."""
    from tqdm import tqdm

    files = collect_midi(inputs)
    names, vectors, skipped = [], [], []
    quiet = 0.0 if sys.stderr.isatty() else 30.0  # no terminal: shown after 30 s, then every 30 s
    bar = tqdm(total=len(files), desc="embedding", unit="file", disable=not progress, file=sys.stderr,
               mininterval=quiet or 0.1, delay=quiet)  # fmt: skip
    for start in range(0, len(files), files_per_batch):
        batch, perfs = [], []
        for path in files[start : start + files_per_batch]:
            try:
                perf = read_midi(path)
            except EspressivoError as err:
                skipped.append((str(path), str(err)))
                continue
            if len(perf) == 0:
                skipped.append((str(path), "no notes"))
                continue
            batch.append(str(path))
            perfs.append(perf)
        if perfs:
            vectors.append(embedder.embed(perfs))
            names += batch
        bar.update(len(files[start : start + files_per_batch]))
    bar.close()
    if not names:
        raise EspressivoError(f"none of the {len(files)} MIDI files could be embedded ({skipped[0][1]})")
    return EmbeddingIndex(names, np.concatenate(vectors), embedder.name, embedder.chunk_notes), skipped
