"""The score as notation: Verovio engraves MusicXML, MXL, MEI and kern as SVG pages whose notes keep the score
file's note ids (the ids partitura reads too), so the page can light the notes a take is playing and go to a note
that is clicked.  A MIDI score has no notation: the piano roll stays its view.

>>> pages, total = engrave(Path("etude.musicxml"))   # SVG text per page (at most MAX_PAGES), and the page count
"""

from __future__ import annotations

import base64
from pathlib import Path

from espressivo.errors import EspressivoError

FORMATS = (".musicxml", ".xml", ".mxl", ".mei", ".krn")
MAX_PAGES = 60  # a page is 50-300 KB of SVG; longer scores show their first pages
OPTIONS = {"pageWidth": 2100, "pageHeight": 2970, "adjustPageHeight": True, "scale": 35, "breaks": "auto",
           "header": "none", "footer": "none", "svgViewBox": True, "svgRemoveXlink": True}  # fmt: skip


def engrave(path: Path) -> tuple[list[str], int]:
    """SVG pages of the score at ``path`` (its first ``MAX_PAGES``) and how many pages it has."""
    import verovio

    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise EspressivoError("a MIDI score has no notation to show: its piano roll is its view")
    verovio.enableLog(verovio.LOG_OFF)
    toolkit = verovio.toolkit()
    toolkit.setOptions(OPTIONS)
    data = path.read_bytes()
    if suffix == ".mxl":
        loaded = toolkit.loadZipDataBase64(base64.b64encode(data).decode("ascii"))
    else:
        loaded = toolkit.loadData(data.decode("utf-8", errors="replace"))
    count = toolkit.getPageCount() if loaded else 0
    if not count:
        raise EspressivoError("this score could not be engraved as notation (its notes still render)")
    return [toolkit.renderToSVG(k) for k in range(1, min(count, MAX_PAGES) + 1)], count
