"""Score reading time against length: the bundled etude's measures repeated (ids renamed) to N notes; prints JSON.

    python benchmarks/score_read.py [--copies 60,200,400,595] [--partitura-original]

Timed: ``read_score`` (MusicXML guards, partitura's parse, the notes and markings per note), after a warm-up
read that imports partitura.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "espressivo" / "examples" / "etude.musicxml"


def tiled(copies: int) -> str:
    text = EXAMPLE.read_text()
    head, rest = text.split("<measure", 1)
    body, tail = "<measure" + rest[: rest.rindex("</part>")], rest[rest.rindex("</part>") :]
    measures = re.findall(r"<measure.*?</measure>", body, re.S)
    out, number = [], 0
    for copy in range(copies):
        for measure in measures:
            number += 1
            m = re.sub(r'number="\d+"', f'number="{number}"', measure, count=1)
            if copy:
                m = re.sub(r"<attributes>.*?</attributes>", "", m, flags=re.S)
                m = re.sub(r' id="([^"]+)"', lambda g, c=copy: f' id="{g.group(1)}-c{c}"', m)
            out.append(m)
    return head + "".join(out) + tail


def main() -> None:
    from espressivo.io import read_score

    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", default="60,200,400,595")
    parser.add_argument("--partitura-original", action="store_true",
                        help="time partitura's own (quadratic) steps instead of espressivo's linear ones")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    read_score(EXAMPLE)
    if args.partitura_original:
        from espressivo.io.partitura_linear import _add_point
        from espressivo.io.score import import_partitura

        pt = import_partitura()
        pt.utils.music.note_array_from_note_list = pt.utils.music.note_array_from_note_list.original
        pt.score.Part._add_point = _add_point.original
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for copies in (int(c) for c in args.copies.split(",")):
            path = Path(folder) / f"tiled{copies}.musicxml"
            path.write_text(tiled(copies))
            started = time.perf_counter()
            score = read_score(path)
            rows.append({"notes": len(score), "seconds": round(time.perf_counter() - started, 2)})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
