"""The hostile-input run: ten thousand generated inputs (mutated MIDI, MusicXML, MXL, MEI, kern, command lines,
checkpoint configs; ``tests/hostile.py``) through their entry points.  Prints JSON: tried, accepted, clean
errors, crashes, hangs (by kind), the first findings, peak RSS and wall time.

    python benchmarks/fuzz.py --count 10000 --seed 0
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/tokenize.py is named like the standard library's `tokenize`: keep this folder off the import path,
# and put the repository root (for tests/hostile.py) on it
sys.path[:] = [str(Path(__file__).resolve().parents[1])] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from tests.hostile import cases, run_case  # noqa: E402

from espressivo.models.checkpoint import resolve  # noqa: E402

CHECKPOINTS = ("transformer-small", "perfrnn-small", "phrase-small", "renderer-small", "cvrnn-small", "embed-small")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per input before it counts as a hang")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/asap")
    args = parser.parse_args()
    midi = sorted(args.data.glob("Bach/Fugue/*/*.mid"))[:8] or None  # real performances to mutate, if present
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    findings = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="espressivo-fuzz-") as tmp:
        for k, (kind, name, payload) in enumerate(
            cases(args.seed, args.count, midi, [resolve(c) for c in CHECKPOINTS])
        ):
            work = Path(tmp) / str(k % 64)  # a few folders, emptied as they are reused
            if work.exists():
                for path in sorted(work.rglob("*"), reverse=True):
                    path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
            work.mkdir(exist_ok=True)
            outcome, detail = run_case(kind, name, payload, work, args.timeout)
            counts[kind][outcome] += 1
            if outcome in ("crash", "hang") and len(findings) < 20:
                findings.append({"kind": kind, "name": name, "outcome": outcome, "detail": detail})
    total = collections.Counter()
    for c in counts.values():
        total.update(c)
    report = {
        "tried": sum(total.values()),
        "accepted": total["ok"],
        "clean_errors": total["clean"],
        "crashes": total["crash"],
        "hangs": total["hang"],
        "by_kind": {kind: dict(c) for kind, c in sorted(counts.items())},
        "findings": findings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "wall_seconds": round(time.time() - started, 1),
        "seed": args.seed,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
