"""Read every (n)ASAP performance MIDI file with espressivo, pretty_midi and mido; print JSON.

    python benchmarks/io.py [--root ../shared/data/asap] [--limit N] [--only espressivo,mido]

Each reader parses the same files into notes with times in seconds: espressivo ``read_midi``
(symusic underneath; also with ``pairing="partitura"``, the (n)ASAP-compatible mode that re-reads
note events with mido), ``pretty_midi.PrettyMIDI`` and mido (``MidiFile`` plus note-on/off pairing
in seconds, the least a mido user must write).  Also times espressivo's MIDI writer.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py is named like the standard library's `tokenize`: keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402


def mido_notes(path: Path) -> int:
    import mido

    midi = mido.MidiFile(path)
    count, sounding, now = 0, {}, 0.0
    for message in midi:  # merged tracks, message.time in seconds
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding[(message.channel, message.note)] = now
        elif message.type in ("note_off", "note_on") and (message.channel, message.note) in sounding:
            sounding.pop((message.channel, message.note))
            count += 1
    return count


def pretty_midi_notes(path: Path) -> int:
    import pretty_midi

    return sum(len(instrument.notes) for instrument in pretty_midi.PrettyMIDI(str(path)).instruments)


def espressivo_notes(path: Path) -> int:
    from espressivo import read_midi

    return len(read_midi(path))


def espressivo_partitura_notes(path: Path) -> int:
    from espressivo import read_midi

    return len(read_midi(path, pairing="partitura"))


READERS = {
    "espressivo": espressivo_notes,
    "espressivo_partitura_pairing": espressivo_partitura_notes,
    "pretty_midi": pretty_midi_notes,
    "mido": mido_notes,
}


def run(name: str, files: list[Path]) -> dict:
    reader = READERS[name]
    reader(files[0])  # warm-up: imports
    start = time.perf_counter()
    notes = sum(reader(path) for path in files)
    seconds = time.perf_counter() - start
    return {"files": len(files), "notes": notes, "seconds": round(seconds, 3), "notes_per_sec": round(notes / seconds)}


def write_speed(files: list[Path]) -> dict:
    from espressivo import read_midi
    from espressivo.io.midi import midi_bytes

    performances = [read_midi(p) for p in files]
    start = time.perf_counter()
    sizes = sum(len(midi_bytes(p)) for p in performances)
    seconds = time.perf_counter() - start
    notes = sum(len(p) for p in performances)
    return {
        "files": len(files),
        "notes": notes,
        "seconds": round(seconds, 3),
        "notes_per_sec": round(notes / seconds),
        "bytes": sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/asap")
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (0: all)")
    parser.add_argument("--only", default=",".join(READERS), help="comma-separated readers")
    args = parser.parse_args()
    with open(args.root / "metadata.csv", newline="") as handle:
        files = [args.root / row["midi_performance"] for row in csv.DictReader(handle)]
    files = [f for f in files if f.is_file()]
    if args.limit:
        files = files[: args.limit]
    results = {"dataset": "(n)ASAP performances", "read": {}}
    for name in args.only.split(","):
        results["read"][name] = run(name, files)
    base = results["read"].get("espressivo", {}).get("notes_per_sec")
    if base:
        for result in results["read"].values():
            result["espressivo_speedup"] = round(base / result["notes_per_sec"], 1)
    results["write"] = {"espressivo": write_speed(files)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
