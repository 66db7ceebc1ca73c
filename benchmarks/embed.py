"""Embedding speed on this CPU: files/s and notes/s of ``espressivo embed`` over real performances; prints JSON.

    python benchmarks/embed.py [--model embed-small] [--files 24] [--threads 2] [--max-chunks 0]

The files are the first ``--files`` (n)ASAP test-split performances (whole files: every chunk unless
``--max-chunks``).  Timed: ``embed_paths`` as the command runs it — reading the MIDI files, chunking,
tokenising, the network — after a warm-up on one file; bfloat16 autocast and float32 both.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402


def main() -> None:
    from espressivo.data.asap import AsapDataset
    from espressivo.embed.files import FileEmbedder, embed_paths

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embed-small")
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-chunks", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = [str(i.performance_path) for i in AsapDataset(quiet=True).performances("test")][: args.files]
    result = {"model": args.model, "files": len(paths), "threads": args.threads, "max_chunks": args.max_chunks}
    for precision in ("bfloat16", "float32"):
        embedder = FileEmbedder.load(args.model, max_chunks=args.max_chunks, precision=precision)
        embed_paths(embedder, paths[:1])  # warm-up
        started = time.perf_counter()
        index, _ = embed_paths(embedder, paths)
        seconds = time.perf_counter() - started
        notes = sum(len(c) for p in paths for c in embedder.chunks(_read(p)))
        result[precision] = {
            "seconds": round(seconds, 2),
            "files_per_sec": round(len(index.names) / seconds, 2),
            "notes_per_sec": round(notes / seconds),
            "notes_embedded": notes,
        }
    print(json.dumps(result, indent=2))


def _read(path: str):
    from espressivo.io.midi import read_midi

    return read_midi(path)


if __name__ == "__main__":
    main()
