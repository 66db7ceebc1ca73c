"""Tokenise a corpus into shards: ``espressivo data prepare --source asap,supra --tokenizer NAME --out DIR``.

Layout of ``DIR``::

    tokenizer.json          the tokenizer (load_tokenizer)
    shards/00000.bin        token ids of up to ``files_per_shard`` files, concatenated (uint16, or int32
    shards/00000.json       when the vocabulary needs it) and the shard's entries
    index.json              every entry: source, name, split, composer, title, performer, duration_sec,
                            notes, shard, offset, length; plus the failures and the settings

Shards are written atomically and a re-run skips every shard whose ``.json`` exists for the same
settings, so an interrupted run resumes and a finished one costs only the index.  The work is spread
over processes; the output does not depend on how many.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from espressivo.data.asap import AsapDataset
from espressivo.data.folder import MidiFolder, supra
from espressivo.data.workers import pool as worker_pool
from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes
from espressivo.io.midi import read_midi
from espressivo.tokenizers import from_dict

FILES_PER_SHARD = 64


@dataclass(frozen=True)
class Source:
    """One input file and what is known about it."""

    source: str
    path: str
    name: str
    split: str
    composer: str = ""
    title: str = ""
    performer: str = ""


def list_sources(spec: str, root: str | os.PathLike | None = None) -> list[Source]:
    """``asap``, ``supra``, a folder of MIDI files, or several joined by commas."""

    sources: list[Source] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part == "asap":
            asap = AsapDataset(Path(root) / "asap" if root else None, quiet=True)
            sources += [
                Source("asap", str(i.performance_path), i.name, i.split, i.composer, i.title, i.performer) for i in asap
            ]
        elif part == "supra":
            folder = supra(Path(root) / "supra" if root else None)
            sources += [Source("supra", str(f.path), f.name, "train") for f in folder]
        else:
            folder = MidiFolder(part)
            sources += [Source(part, str(f.path), f.name, "train") for f in folder]
    if not sources:
        raise EspressivoError(f"no MIDI files found for source {spec!r}")
    return sources


def _settings_key(tokenizer_spec: dict, sources: list[Source]) -> str:
    digest = hashlib.sha256(json.dumps(tokenizer_spec, sort_keys=True).encode())
    for s in sources:
        digest.update(f"{s.path}|{s.split}\n".encode())
    return digest.hexdigest()[:16]


def _token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.int32)


def _build_shard(job: tuple[int, list[Source], dict, str, str]) -> tuple[int, int, int]:
    """Tokenise one shard's files; returns (shard, files, tokens)."""

    number, sources, tokenizer_spec, out, key = job
    tokenizer = from_dict(tokenizer_spec)
    dtype = _token_dtype(len(tokenizer.vocab))
    chunks, entries, failed, offset = [], [], [], 0
    for src in sources:
        try:
            perf = read_midi(src.path)
            ids = tokenizer.encode(perf)
        except EspressivoError as err:
            failed.append({"name": src.name, "error": str(err)})
            continue
        chunks.append(ids.astype(dtype))
        entry = asdict(src) | {
            "shard": number,
            "offset": offset,
            "length": len(ids),
            "notes": len(perf),
            "duration_sec": round(perf.end_sec, 3),
        }
        entries.append(entry)
        offset += len(ids)
    shard_dir = Path(out) / "shards"
    data = np.concatenate(chunks) if chunks else np.zeros(0, dtype)
    atomic_write_bytes(shard_dir / f"{number:05d}.bin", data.tobytes())
    meta = {"key": key, "dtype": dtype.name, "entries": entries, "failed": failed}
    atomic_write_bytes(shard_dir / f"{number:05d}.json", json.dumps(meta).encode())  # written last: the shard is done
    return number, len(entries), offset


def prepare(
    sources: list[Source],
    tokenizer,
    out: str | os.PathLike,
    *,
    workers: int = 2,
    files_per_shard: int = FILES_PER_SHARD,
    progress: bool = True,
) -> dict:
    """Tokenise ``sources`` into ``out`` (see the module docstring); returns the index."""
    from tqdm import tqdm

    out = Path(out)
    spec = tokenizer.to_dict()
    key = _settings_key(spec, sources)
    try:
        (out / "shards").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EspressivoError(f"{out}: cannot create the output folder ({err.strerror or err})") from None
    for stale in (out / "shards").glob(".*.tmp"):  # partial writes of a killed run
        stale.unlink(missing_ok=True)
    jobs, reused = [], 0
    for number in range(0, (len(sources) + files_per_shard - 1) // files_per_shard):
        chunk = sources[number * files_per_shard : (number + 1) * files_per_shard]
        meta_path = out / "shards" / f"{number:05d}.json"
        if meta_path.is_file() and (out / "shards" / f"{number:05d}.bin").is_file():
            try:
                if json.loads(meta_path.read_text())["key"] == key:
                    reused += 1
                    continue
            except (ValueError, KeyError, OSError):
                pass
        jobs.append((number, chunk, spec, str(out), key))
    pending = sum(len(job[1]) for job in jobs)
    bar = tqdm(total=len(sources), initial=len(sources) - pending, desc="tokenizing", unit="file", disable=not progress)
    if jobs:
        if workers > 1 and len(jobs) > 1:
            with worker_pool(workers) as pool:
                for _, files, _ in pool.map(_build_shard, jobs):
                    bar.update(files)
        else:
            for job in jobs:
                bar.update(_build_shard(job)[1])
    bar.close()
    entries, failed, shards = [], [], (len(sources) + files_per_shard - 1) // files_per_shard
    for number in range(shards):
        meta = json.loads((out / "shards" / f"{number:05d}.json").read_text())
        entries += meta["entries"]
        failed += meta["failed"]
    index = {
        "tokenizer": spec,
        "key": key,
        "dtype": _token_dtype(len(tokenizer.vocab)).name,
        "shards": shards,
        "shards_reused": reused,
        "files": len(entries),
        "tokens": int(sum(e["length"] for e in entries)),
        "notes": int(sum(e["notes"] for e in entries)),
        "entries": entries,
        "failed": failed,
    }
    tokenizer.save(out / "tokenizer.json", own=True)  # the corpus's own files, which a rerun reads first
    atomic_write_bytes(out / "index.json", json.dumps(index, indent=1).encode(), own=True)
    return index
