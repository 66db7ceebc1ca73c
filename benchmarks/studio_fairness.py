"""The studio's queue between clients: one client queues 60 takes (10 scores x 6, deadpan with audio), another
then asks for one; prints JSON: how long the other's take took from asking to done, how many of the 60 started
before it, and how long the 60 took.

    python benchmarks/studio_fairness.py [--workers 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from espressivo.studio.service import Studio  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        studio = Studio(Path(folder), workers=args.workers, max_pending=6)
        scores = [studio.open_example("etude") for _ in range(10)]
        started = time.monotonic()
        busy = [studio.submit(s.id, {"kind": "deadpan", "tempo": 60 + k}, client="busy") for s in scores
                for k in range(6)]  # fmt: skip
        time.sleep(0.5)
        other = studio.open_example("etude")
        asked = time.monotonic()
        mine = studio.submit(other.id, {"kind": "deadpan"}, client="other")
        while mine.status in ("queued", "running"):
            time.sleep(0.02)
        waited = time.monotonic() - asked
        while any(t.status in ("queued", "running") for t in busy):
            time.sleep(0.05)
        report = {"queued_by_one_client": len(busy), "other_client_take_seconds": round(waited, 2),
                  "started_before_it": sum(1 for t in busy if t.started < mine.started),
                  "all_60_seconds": round(time.monotonic() - started, 2), "workers": args.workers}  # fmt: skip
        print(json.dumps(report))
        studio.close()


if __name__ == "__main__":
    main()
