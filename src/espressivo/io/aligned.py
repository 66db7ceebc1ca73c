"""A score, a performance of it and their note alignment, read together: the alignment file when given (the
unfolded or the written score, whichever it fits), else parangonar's."""

from __future__ import annotations

from pathlib import Path

from espressivo.core.alignment import align
from espressivo.errors import EspressivoError
from espressivo.io.alignment import read_alignment
from espressivo.io.midi import read_midi
from espressivo.io.score import read_score

MIN_ALIGNED_SHARE = 0.5  # of the performance's notes, or of the score's, that must align


def read_aligned(score_path: Path, perf_path: Path, alignment: Path | None):
    """Score, performance and their alignment (parangonar's when no file is given)."""

    for path in (score_path, perf_path, alignment):
        if path is not None and not path.is_file():
            raise EspressivoError(f"{path}: no such file")
    the_score = read_score(score_path, unfold=True)
    perf = read_midi(perf_path)
    if len(perf) == 0:
        raise EspressivoError(f"{perf_path}: the performance has no notes")
    if alignment is None:
        found = align(the_score, perf)
    else:  # (n)ASAP aligns to the unfolded score, other tools to the score as written: take what fits
        found = read_alignment(alignment)
        as_written = read_score(score_path, unfold=False)
        if len(found.indices(as_written, perf)[0]) > len(found.indices(the_score, perf)[0]):
            the_score = as_written
    matched = len(found.indices(the_score, perf)[0])
    if matched < 2:
        raise EspressivoError(f"{perf_path}: fewer than two notes align with {score_path.name}")
    if max(matched / len(perf), matched / len(the_score)) < MIN_ALIGNED_SHARE:  # a snippet or an excerpt is fine
        raise EspressivoError(
            f"{perf_path}: only {matched} of its {len(perf)} notes align with the {len(the_score)} notes of "
            f"{score_path.name}; is it a performance of that score?"
        )
    return the_score, perf, found
