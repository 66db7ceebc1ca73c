"""``espressivo data scan``, ``data prepare``, ``data pairs``: corpora, token shards, aligned pairs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from espressivo.cli.app import app
from espressivo.cli.common import (
    _parse_settings,
    _print,
)
from espressivo.errors import EspressivoError


@app.command("data scan")
def data_scan(
    source: str = "asap",
    root: Path | None = None,
    split: Literal["train", "validation", "test"] | None = None,
    json: bool = False,
) -> None:
    """Read every performance of a corpus (with a progress bar) and report files, notes, hours and problems.

    Args:
        source: asap, supra, or a folder of MIDI files
        root: dataset folder (default: $ESPRESSIVO_DATA/<source> or ../shared/data/<source>)
        split: only this (n)ASAP split
        json: print JSON
    """
    import warnings

    from tqdm import tqdm

    from espressivo.data import AsapDataset, MidiFolder, supra

    if source == "asap":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = AsapDataset(root)
        items, skipped = dataset.performances(split), [f"{row}: {why}" for row, why in dataset.skipped]
        repaired = len(dataset.repaired)
    else:
        if split is not None:
            raise EspressivoError("--split applies to --source asap only")
        folder = supra(root) if source == "supra" else MidiFolder(root or Path(source))
        items, skipped, repaired = folder.items, [], 0
    notes, seconds, failed = 0, 0.0, []
    for item in tqdm(items, desc=f"scanning {source}", unit="file", file=sys.stderr, disable=None):
        try:
            perf = item.load_performance()
        except EspressivoError as err:
            failed.append(str(err))
            continue
        notes += len(perf)
        seconds += perf.end_sec
    summary = {
        "source": source,
        "files": len(items) - len(failed),
        "notes": notes,
        "hours": round(seconds / 3600, 2),
        "skipped_rows": skipped,
        "repaired_rows": repaired,
        "unreadable": failed,
    }
    _print(summary, json)


@app.command("data prepare")
def data_prepare(
    source: str = "asap",
    tokenizer: str = "performance-rnn",
    out: Path | None = None,
    root: Path | None = None,
    workers: int = 2,
    tokenizer_config: str = "",
    json: bool = False,
) -> None:
    """Tokenise a corpus into sharded token files plus an index (split, composer, performer, duration per file),
    in parallel; a re-run skips the finished shards.

    Args:
        source: asap, supra, a folder of MIDI files, or several joined by commas (asap,supra)
        tokenizer: tokenizer name (performance-rnn, note)
        out: output folder (required)
        root: the shared data folder holding asap/ and supra/ (default: $ESPRESSIVO_DATA or ../shared/data)
        workers: processes
        tokenizer_config: tokenizer settings as key=value pairs joined by commas (e.g. sustain=true)
        json: print the summary as JSON
    """
    from espressivo.data.prepare import list_sources, prepare
    from espressivo.tokenizers import from_name

    if out is None:
        raise EspressivoError("give the output folder with --out DIR")
    if not 1 <= workers <= 64:
        raise EspressivoError("--workers must lie in 1..64")
    tok = from_name(tokenizer, **_parse_settings(tokenizer_config))
    index = prepare(list_sources(source, root), tok, out, workers=workers)
    summary = {k: index[k] for k in ("files", "notes", "tokens", "shards", "shards_reused")}
    summary["failed"] = len(index["failed"])
    summary["splits"] = {s: sum(e["split"] == s for e in index["entries"]) for s in ("train", "validation", "test")}
    _print(summary, json)


@app.command("data pairs")
def data_pairs(
    out: Path | None = None,
    root: Path | None = None,
    split: Literal["train", "validation", "test"] | None = None,
    workers: int = 2,
    limit: int = 0,
    json: bool = False,
) -> None:
    """Build aligned score/performance pairs from (n)ASAP for renderers: per score note, score features and
    expression targets (tempo, timing, articulation, velocity, pedal), one file per performance.

    Args:
        out: output folder (required)
        root: the shared data folder holding asap/
        split: only this split
        workers: processes
        limit: only the first N performances (0: all)
        json: print the summary as JSON
    """
    from espressivo.data.pairs import build_pairs

    if out is None:
        raise EspressivoError("give the output folder with --out DIR")
    if not 1 <= workers <= 64 or limit < 0:
        raise EspressivoError("--workers must lie in 1..64 and --limit be >= 0")
    summary = build_pairs(out, root=root, split=split, workers=workers, limit=limit)
    reasons: dict[str, int] = {}
    for entry in summary["dropped_entries"]:
        reason = entry["reason"].split(" 0.")[0] if entry["reason"].startswith("pitch") else entry["reason"]
        reasons[reason] = reasons.get(reason, 0) + 1
    result = {k: summary[k] for k in ("performances", "kept", "dropped")}
    result["notes"] = sum(e.get("notes", 0) for e in summary["entries"])
    result["matched_notes"] = sum(e.get("matched", 0) for e in summary["entries"])
    result["drop_reasons"] = reasons
    _print(result, json)
