"""Aligned score/performance pairs for renderers: per score note, score features + expression targets.

``espressivo data pairs --out DIR [--split train]`` writes one ``.npz`` per (n)ASAP performance
(``score_features``, ``expression``, ``score_ids``) and ``pairs.json`` with what was kept and why the rest
was dropped.  A re-run skips finished files.  :class:`PairWindows` cuts the pairs into windows of N notes
with overlap, in score order.

Dropped: performances whose alignment does not fit the shipped score (the three pieces without MusicXML),
whose written and played pitches disagree on more than 5 % of the pairs (an alignment made on another file),
or with fewer than ``min_matched`` aligned notes.  Unmatched score notes stay in, flagged
(``expression["matched"]`` False) with interpolated targets, so a loss can mask them.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes

MIN_PITCH_AGREEMENT = 0.95


def _piece_job(job: tuple[list[dict], str, int]) -> list[dict]:
    from espressivo.features import encode_expression, score_features
    from espressivo.io import read_alignment, read_midi, read_score

    items, out, min_matched = job
    results, score, features = [], None, None
    for item in items:
        path = Path(out) / f"{item['key']}.npz"
        record = {k: item[k] for k in ("key", "name", "split", "composer", "title", "performer")}
        if path.is_file():
            try:
                with np.load(path) as done:
                    counts = {"notes": len(done["score_ids"]), "matched": int(done["expression"]["matched"].sum())}
                results.append(record | {"status": "kept", "reused": True} | counts)
                continue
            except (OSError, ValueError, KeyError):
                path.unlink()  # damaged: build it again
        try:
            if score is None:
                score = read_score(item["score_path"], unfold=True)
                features = score_features(score)
            perf = read_midi(item["performance_path"], pairing="partitura")
            alignment = read_alignment(item["alignment_path"])
            agreement = alignment.pitch_agreement(score, perf)
            matched = len(alignment.indices(score, perf)[0])
            if agreement < MIN_PITCH_AGREEMENT:
                results.append(record | {"status": "dropped", "reason": f"pitch agreement {agreement:.3f}"})
                continue
            if matched < min_matched:
                results.append(record | {"status": "dropped", "reason": f"{matched} aligned notes"})
                continue
            expression = encode_expression(score, perf, alignment)
        except EspressivoError as err:
            results.append(record | {"status": "dropped", "reason": str(err)})
            continue
        buffer = io.BytesIO()
        np.savez(buffer, score_features=features, expression=expression.features, score_ids=score.notes["id"],
                 origin_sec=np.array(expression.origin_sec))  # fmt: skip
        atomic_write_bytes(path, buffer.getvalue())
        results.append(record | {"status": "kept", "notes": len(score), "matched": matched})
    return results


def build_pairs(
    out: str | os.PathLike,
    *,
    root=None,
    split: str | None = None,
    workers: int = 2,
    limit: int = 0,
    min_matched: int = 64,
) -> dict:
    from tqdm import tqdm

    from espressivo.data.asap import AsapDataset

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EspressivoError(f"{out}: cannot create the output folder ({err.strerror or err})") from None
    asap = AsapDataset(Path(root) / "asap" if root else None, quiet=True)
    items = asap.performances(split)
    if limit:
        items = items[:limit]
    dropped = [
        {
            "name": i.name,
            "split": i.split,
            "status": "dropped",
            "reason": "alignment names a MusicXML that is not shipped",
        }
        for i in items
        if not i.alignment_fits_score
    ]
    by_piece: dict[str, list[dict]] = {}
    for number, i in enumerate(items):
        if not i.alignment_fits_score:
            continue
        by_piece.setdefault(i.folder, []).append(
            {
                "key": f"{number:05d}",
                "name": i.name,
                "split": i.split,
                "composer": i.composer,
                "title": i.title,
                "performer": i.performer,
                "score_path": str(i.score_path),
                "performance_path": str(i.performance_path),
                "alignment_path": str(i.alignment_path),
            }
        )
    jobs = [(piece, str(out), min_matched) for piece in by_piece.values()]
    results: list[dict] = []
    with tqdm(total=sum(len(j[0]) for j in jobs), desc="pairs", unit="performance", disable=None) as bar:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for part in pool.map(_piece_job, jobs):
                    results += part
                    bar.update(len(part))
        else:
            for job in jobs:
                part = _piece_job(job)
                results += part
                bar.update(len(part))
    results.sort(key=lambda r: r.get("key", ""))
    kept = [r for r in results if r["status"] == "kept"]
    summary = {
        "performances": len(items),
        "kept": len(kept),
        "dropped": len(dropped) + len(results) - len(kept),
        "entries": kept,
        "dropped_entries": dropped + [r for r in results if r["status"] != "kept"],
    }
    atomic_write_bytes(out / "pairs.json", json.dumps(summary, indent=1).encode())
    return summary


class PairWindows:
    """Windows of ``notes`` consecutive score notes (score order) with ``hop`` between starts."""

    def __init__(self, root: str | os.PathLike, split: str = "train", notes: int = 256, hop: int = 128):
        self.root = Path(root)
        path = self.root / "pairs.json"
        if not path.is_file():
            raise EspressivoError(f"{self.root}: no pairs.json; run `espressivo data pairs` first")
        self.entries = [e for e in json.loads(path.read_text())["entries"] if e["split"] == split]
        if notes < 1 or hop < 1:
            raise EspressivoError("window and hop must be positive")
        self.notes, self.hop = notes, hop

    def load(self, entry: dict) -> dict[str, np.ndarray]:
        """All arrays of one performance, in score order (``Score.notes`` is sorted by onset, pitch)."""
        with np.load(self.root / f"{entry['key']}.npz") as data:
            return {k: data[k] for k in data.files}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for entry in self.entries:
            arrays = self.load(entry)
            n = len(arrays["score_ids"])
            starts = list(range(0, max(n - self.notes, 0) + 1, self.hop))
            if starts[-1] + self.notes < n:  # the tail gets a window of its own
                starts.append(n - self.notes)
            for start in starts:
                yield {k: v[start : start + self.notes] for k, v in arrays.items() if v.ndim == 1} | {
                    "name": entry["name"]
                }
