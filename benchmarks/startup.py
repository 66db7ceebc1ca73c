"""Start-up: how long `espressivo --help` takes (fresh processes), and which heavy libraries it imports (none).

python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

HEAVY = ("torch", "partitura", "matplotlib", "scipy", "symusic", "mido", "starlette", "safetensors")
PROBE = ("import sys; from espressivo.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
         f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "espressivo", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
        assert b"usage: espressivo" in done.stdout
    heavy = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stderr.strip()
    print(
        json.dumps(
            {
                "help_seconds_min": round(min(times), 3),
                "help_seconds_median": round(statistics.median(times), 3),
                "runs": args.runs,
                "heavy_libraries_imported": heavy.split(",") if heavy else [],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
