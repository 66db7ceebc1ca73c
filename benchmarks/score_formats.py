"""Score reading by format at 5k / 20k / 50k notes: the bundled etude tiled (``score_read.tiled``), exported by
partitura to MEI and to a MIDI score; prints one JSON line per file.

    python benchmarks/score_formats.py
"""

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))

from score_read import tiled  # noqa: E402

from espressivo.errors import EspressivoError  # noqa: E402
from espressivo.io.score import import_partitura, read_score  # noqa: E402

warnings.simplefilter("ignore")
pt = import_partitura()
out = []
with tempfile.TemporaryDirectory() as d:
    for copies in (60, 238, 595):
        xml = Path(d) / f"t{copies}.musicxml"
        xml.write_text(tiled(copies))
        doc = pt.load_musicxml(str(xml), quiet=True)
        mei = Path(d) / f"t{copies}.mei"
        pt.save_mei(doc, str(mei))
        mid = Path(d) / f"t{copies}.mid"
        pt.save_score_midi(doc, str(mid))
        for path in (xml, mei, mid):
            started = time.perf_counter()
            try:
                notes, result = len(read_score(path)), "ok"
            except EspressivoError as err:
                notes, result = 0, str(err)[:80]
            seconds = round(time.perf_counter() - started, 2)
            out.append({"format": path.suffix, "notes": notes, "seconds": seconds, "result": result})
            print(json.dumps(out[-1]), flush=True)
