"""The shipped models' outputs at fixed seeds, as MD5 sums: run before and after a change that must not change
behaviour (a restructuring) and compare the two listings.

    python tools/fingerprint.py [OUT_DIR] > before.txt     # ... change ...
    python tools/fingerprint.py [OUT_DIR] > after.txt && diff before.txt after.txt

Each line is ``MD5  name``: renders of the bundled etude with every shipped renderer (the CVRNN steered and
with a reference too), improvisations, continuations and an infill with every shipped language model, and the
embedding of the etude's performance.  Runs the CLI as a user would, one process per command.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "espressivo" / "examples"
SCORE, PERFORMANCE = EXAMPLES / "etude.musicxml", EXAMPLES / "etude_performance.mid"

COMMANDS = {
    "render-phrase": ["render", SCORE, "--model", "phrase-small", "--seed", "3", "--variations", "2"],
    "render-phrase-shaped": ["render", SCORE, "--model", "phrase-small", "--expressiveness", "1.7",
                             "--tempo-scale", "0.9", "--dynamics-scale", "1.2"],
    "render-notewise": ["render", SCORE, "--model", "renderer-small", "--seed", "5"],
    "render-cvrnn": ["render", SCORE, "--model", "cvrnn-small", "--seed", "2", "--interpretation", "1.5,0,0,-1,0"],
    "render-cvrnn-reference": ["render", SCORE, "--model", "cvrnn-small", "--reference", PERFORMANCE, SCORE,
                               EXAMPLES / "etude_alignment.tsv.gz"],
    "tempo-mapped": ["render", SCORE, "--model", "phrase-small", "--tempo-mapped", "{out}/mapped.mid"],
    "generate-perfrnn": ["generate", "--model", "perfrnn-small", "--seconds", "6", "--seed", "1"],
    "generate-transformer": ["generate", "--model", "transformer-small", "--seconds", "6", "--seed", "1",
                             "--variations", "2"],
    "generate-aria": ["generate", "--model", "aria-small", "--seconds", "6", "--seed", "1", "--top-p", "0.9"],
    "continue-transformer": ["continue", PERFORMANCE, "--model", "transformer-small", "--seconds", "4"],
    "continue-aria": ["continue", PERFORMANCE, "--model", "aria-small", "--seconds", "4", "--seed", "7"],
    "infill-aria": ["infill", PERFORMANCE, "--model", "aria-small", "--from", "4", "--to", "7"],
}  # fmt: skip


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, args in COMMANDS.items():
        target = out / f"{name}.mid"
        argv = [str(a).format(out=out) for a in args]
        cmd = [sys.executable, "-m", "espressivo", *argv, "-o", str(target), "--no-wav", "--no-plot"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    embed = out / "embed.npz"
    subprocess.run([sys.executable, "-m", "espressivo", "embed", str(PERFORMANCE), "-o", str(embed)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    import numpy as np

    with np.load(embed) as z:
        vectors = z[next(k for k in z.files if "vector" in k or "embedding" in k)]
    print(f"{hashlib.md5(vectors.astype('<f4').tobytes()).hexdigest()}  embed")
    for path in sorted(out.glob("*.mid")):
        print(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="espressivo-fingerprint-")))
