"""MIDI -> performance-rnn ids for every (n)ASAP + SUPRA performance, espressivo vs miditok; prints JSON.

    python benchmarks/tokenize.py [--data ../shared/data] [--limit N] [--only espressivo,miditok]

Both sides start from the MIDI file on disk and end with an id array:
- espressivo: ``read_midi`` + ``PerformanceRNNTokenizer.encode`` (413 events, 8 ms, 32 velocities);
- miditok 3.1 ``MIDILike`` with the closest settings (the reference docs' recipe): the file re-timed with
  symusic to 1000 ticks per beat at 60 bpm so that 125 positions per beat are 8 ms steps, 32 velocities,
  no pedal/tempo/time-signature tokens.  It still emits a velocity token per note (espressivo: per change).
Also times the whole ``espressivo data prepare`` pipeline (2 processes) on the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named like the standard library's `tokenize`: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def files_of(data: Path, limit: int) -> list[Path]:
    from espressivo.data.prepare import list_sources

    sources = list_sources("asap,supra", data)
    paths = [Path(s.path) for s in sources]
    return paths[:limit] if limit else paths


def bench_espressivo(paths: list[Path]) -> dict:
    from espressivo import read_midi
    from espressivo.tokenizers import from_name

    tok = from_name("performance-rnn")
    tok.encode(read_midi(paths[0]))  # warm-up
    start = time.perf_counter()
    notes = tokens = 0
    for path in paths:
        perf = read_midi(path)
        tokens += len(tok.encode(perf))
        notes += len(perf)
    seconds = time.perf_counter() - start
    return {"files": len(paths), "notes": notes, "tokens": tokens, "seconds": round(seconds, 3),
            "notes_per_sec": round(notes / seconds)}  # fmt: skip


def _miditok_tokenizer():
    from miditok import MIDILike, TokenizerConfig

    config = TokenizerConfig(
        pitch_range=(0, 127), beat_res={(0, 1): 125}, num_velocities=32, use_pitchdrum_tokens=False,
        special_tokens=["PAD"], use_tempos=False, use_time_signatures=False, use_sustain_pedals=False,
    )  # fmt: skip
    return MIDILike(config)


def _retime(path: Path):
    """1 beat = 1 s: 1000 ticks per quarter at 60 bpm, times from symusic's seconds."""
    import symusic

    source = symusic.Score(str(path), ttype="second")
    score = symusic.Score(1000)
    score.tempos.append(symusic.Tempo(0, qpm=60.0))
    for trk in source.tracks:
        n = trk.notes.numpy()
        track = symusic.Track(trk.name, trk.program, trk.is_drum)
        on = np.rint(n["time"] * 1000).astype(np.int32)
        track.notes = symusic.Note.from_numpy(
            on, np.maximum(np.rint(n["duration"] * 1000).astype(np.int32), 1), n["pitch"], n["velocity"], "tick"
        )
        score.tracks.append(track)
    return score


def bench_miditok(paths: list[Path]) -> dict:
    tok = _miditok_tokenizer()
    tok(_retime(paths[0]))  # warm-up
    start = time.perf_counter()
    notes = tokens = 0
    for path in paths:
        score = _retime(path)
        notes += score.note_num()
        out = tok(score)
        seqs = out if isinstance(out, list) else [out]
        tokens += sum(len(s.ids) for s in seqs)
    seconds = time.perf_counter() - start
    return {"files": len(paths), "notes": notes, "tokens": tokens, "seconds": round(seconds, 3),
            "notes_per_sec": round(notes / seconds), "vocab": len(tok)}  # fmt: skip


def bench_prepare(data: Path) -> dict:
    from espressivo.data.prepare import list_sources, prepare
    from espressivo.tokenizers import from_name

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        index = prepare(list_sources("asap,supra", data), from_name("performance-rnn"), out, workers=2, progress=False)
        seconds = time.perf_counter() - start
        again = time.perf_counter()
        prepare(list_sources("asap,supra", data), from_name("performance-rnn"), out, workers=2, progress=False)
        rerun = time.perf_counter() - again
    return {"files": index["files"], "notes": index["notes"], "tokens": index["tokens"], "seconds": round(seconds, 3),
            "notes_per_sec": round(index["notes"] / seconds), "rerun_seconds": round(rerun, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--only", default="espressivo,miditok,prepare")
    args = parser.parse_args()
    paths = files_of(args.data, args.limit)
    chosen = args.only.split(",")
    result: dict = {"corpus": "(n)ASAP + SUPRA performances", "tokenizer": "performance-rnn"}
    if "espressivo" in chosen:
        result["espressivo"] = bench_espressivo(paths)
    if "miditok" in chosen:
        result["miditok"] = bench_miditok(paths)
    if "espressivo" in result and "miditok" in result:
        result["speedup"] = round(result["espressivo"]["notes_per_sec"] / result["miditok"]["notes_per_sec"], 1)
    if "prepare" in chosen and not args.limit:
        result["prepare_pipeline"] = bench_prepare(args.data)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
