"""(n)ASAP note alignments (``note_alignment.tsv[.gz]``) → :class:`Alignment`.

The file has a header ``xml_id  midi_id  track  channel  pitch  onset`` and one row per note:
``n12-1  n40 ...`` a match, ``n12-1  deletion`` a written note not played, ``insertion  n41 ...``
a played note not written.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib

import numpy as np

from espressivo.core.alignment import Alignment, parse_performance_id
from espressivo.errors import EspressivoError
from espressivo.io.safety import read_bytes

MAX_ALIGNMENT_BYTES = 64 * 2**20


def read_alignment(path: str | os.PathLike) -> Alignment:
    raw = read_bytes(path, MAX_ALIGNMENT_BYTES)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
                raw = handle.read(MAX_ALIGNMENT_BYTES * 8 + 1)
        except (OSError, EOFError, zlib.error) as err:
            raise EspressivoError(f"{path}: corrupt gzip file ({err})") from None
        if len(raw) > MAX_ALIGNMENT_BYTES * 8:
            raise EspressivoError(f"{path}: alignment expands to an implausible size")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise EspressivoError(f"{path}: not a text alignment file") from None
    if not lines or not lines[0].startswith("xml_id"):
        raise EspressivoError(f"{path}: not an (n)ASAP note alignment (header must start with xml_id)")
    cells = [line.split("\t") for line in lines[1:] if line.strip()]
    if any(len(row) < 2 for row in cells):
        raise EspressivoError(f"{path}: malformed alignment row (needs at least 2 tab-separated columns)")
    score_col = np.array([row[0] for row in cells], dtype=str)
    perf_col = np.array([row[1] for row in cells], dtype=str)
    deleted = perf_col == "deletion"
    inserted = score_col == "insertion"
    matched = ~deleted & ~inserted
    try:
        return Alignment.from_pairs(
            score_col[matched],
            parse_performance_id(perf_col[matched]),
            deletions=score_col[deleted],
            insertions=parse_performance_id(perf_col[inserted]),
        )
    except EspressivoError as err:
        raise EspressivoError(f"{path}: {err}") from None
