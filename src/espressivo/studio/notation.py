"""The score as notation: Verovio engraves MusicXML, MXL, MEI and kern as SVG pages whose notes keep the score
file's note ids (the ids partitura reads too), so the page can light the notes a take is playing and go to a note
that is clicked.  A MIDI score has no notation: the piano roll stays its view.

Verovio is C++: a hostile file could crash it, so it engraves in a process of its own (``python -m
espressivo.studio.notation SCORE FOLDER``), bounded in time; a crash or a hang costs that one request, answered in
one line, never the studio.

>>> pages, total = engrave(Path("etude.musicxml"), Path("out/"))   # out/notation-1.svg ...; pages written, in all
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from espressivo.errors import EspressivoError

FORMATS = (".musicxml", ".xml", ".mxl", ".mei", ".krn")
MAX_PAGES = 60  # a page is 50-600 KB of SVG; longer scores show their first pages
TIMEOUT_SEC = 120.0
OPTIONS = {"pageWidth": 2100, "pageHeight": 2970, "adjustPageHeight": True, "scale": 35, "breaks": "auto",
           "header": "none", "footer": "none", "svgViewBox": True, "svgRemoveXlink": True}  # fmt: skip
REFUSED = "this score could not be engraved as notation (its notes still render)"


def engrave(path: Path, folder: Path) -> tuple[int, int]:
    """Engrave the score at ``path`` into ``folder``/notation-K.svg (its first ``MAX_PAGES``), in a process of its
    own; returns (pages written, pages in the score)."""
    if path.suffix.lower() not in FORMATS:
        raise EspressivoError("a MIDI score has no notation to show: its piano roll is its view")
    command = [sys.executable, "-m", "espressivo.studio.notation", str(path), str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SEC, check=False)
        pages, total = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else (0, 0)
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        pages = total = 0
    if not pages:
        raise EspressivoError(REFUSED)
    return int(pages), int(total)


def _engrave_here(path: Path, folder: Path) -> tuple[int, int]:
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    toolkit = verovio.toolkit()
    toolkit.setOptions(OPTIONS)
    data = path.read_bytes()
    if path.suffix.lower() == ".mxl":
        loaded = toolkit.loadZipDataBase64(base64.b64encode(data).decode("ascii"))
    else:
        loaded = toolkit.loadData(data.decode("utf-8", errors="replace"))
    total = toolkit.getPageCount() if loaded else 0
    pages = min(total, MAX_PAGES)
    for k in range(1, pages + 1):
        (folder / f"notation-{k}.svg").write_text(toolkit.renderToSVG(k))
    return pages, total


if __name__ == "__main__":
    print(json.dumps(_engrave_here(Path(sys.argv[1]), Path(sys.argv[2]))))
