"""`Alignment`: which performed note plays which written note.

Three arrays, in the (n)ASAP / parangonar vocabulary:

``matches``     (``score_id`` unicode, ``performance_id`` int32) — a written note and the key press that played it
``deletions``   score ids the pianist did not play (or the aligner could not find)
``insertions``  performance ids that correspond to no written note (wrong notes, added ornaments, ...)

Performance ids are :attr:`Performance.notes` ``id`` values (partitura's ``n<id>`` numbering without
the ``n``); score ids are :attr:`Score.notes` ``id`` values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.core.performance import Performance
from espressivo.core.score import Score
from espressivo.errors import EspressivoError


def match_dtype(id_length: int = 16) -> np.dtype:
    return np.dtype([("score_id", f"U{max(1, id_length)}"), ("performance_id", "i4")])


@dataclass(frozen=True, eq=False)
class Alignment:
    matches: np.ndarray
    deletions: np.ndarray
    insertions: np.ndarray

    def __post_init__(self) -> None:
        for name in ("matches", "deletions", "insertions"):
            array = np.ascontiguousarray(getattr(self, name))
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    @classmethod
    def from_pairs(cls, score_ids, performance_ids, deletions=(), insertions=()) -> Alignment:
        score_ids = np.asarray(score_ids, dtype=str)
        deletions = np.asarray(deletions, dtype=str)
        length = max(1, score_ids.dtype.itemsize // 4, deletions.dtype.itemsize // 4)
        matches = np.zeros(len(score_ids), match_dtype(length))
        matches["score_id"] = score_ids
        matches["performance_id"] = np.asarray(performance_ids, dtype=np.int64)
        return cls(matches, np.asarray(deletions, dtype=f"U{length}"), np.asarray(insertions, dtype=np.int32))

    def __repr__(self) -> str:
        return (
            f"Alignment(matches={len(self.matches)}, deletions={len(self.deletions)}, "
            f"insertions={len(self.insertions)})"
        )

    def indices(self, score: Score, performance: Performance) -> tuple[np.ndarray, np.ndarray]:
        """Row indices ``(score_rows, performance_rows)`` of the matched pairs present in both objects.

        Pairs naming a note the score or the performance does not have are left out.
        """
        s_idx = score.index_of(self.matches["score_id"])
        perf_ids = performance.notes["id"]
        order = np.argsort(perf_ids, kind="stable")
        pos = np.clip(np.searchsorted(perf_ids[order], self.matches["performance_id"]), 0, max(len(order) - 1, 0))
        if len(order) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        found = perf_ids[order][pos] == self.matches["performance_id"]
        p_idx = np.where(found, order[pos], -1)
        ok = (s_idx >= 0) & (p_idx >= 0)
        return s_idx[ok], p_idx[ok]

    def pitch_agreement(self, score: Score, performance: Performance) -> float:
        """Share of matched pairs (present in both) whose written and played pitches agree: 1.0 for a
        trustworthy alignment; much lower means the files are not the ones the alignment was made on."""
        s_idx, p_idx = self.indices(score, performance)
        if len(s_idx) == 0:
            return 0.0
        return float(np.mean(score.notes["pitch"][s_idx] == performance.notes["pitch"][p_idx]))


def parse_performance_id(values: np.ndarray) -> np.ndarray:
    """``"n12"`` → 12 (partitura's performance note ids)."""
    values = np.char.lstrip(np.asarray(values, dtype=str), "n")
    try:
        return values.astype(np.int64)
    except ValueError:
        raise EspressivoError("performance note ids must look like n<integer>") from None


def align(score: Score, performance: Performance) -> Alignment:
    """Note alignment of a performance to its score with parangonar's dual-DTW note matcher (symbolic,
    no audio); notes it cannot place become deletions and insertions."""
    import parangonar

    if len(score) == 0 or len(performance) == 0:
        raise EspressivoError("cannot align an empty score or performance")
    sn = score.notes
    s = np.zeros(len(sn), [("onset_beat", "f4"), ("duration_beat", "f4"), ("onset_quarter", "f4"),
                           ("duration_quarter", "f4"), ("onset_div", "i4"), ("duration_div", "i4"),
                           ("pitch", "i4"), ("voice", "i4"), ("id", "U256"), ("is_grace", "?")])  # fmt: skip
    for name in ("onset_beat", "duration_beat", "onset_quarter", "duration_quarter", "pitch", "voice", "id",
                 "is_grace"):  # fmt: skip
        s[name] = sn[name]
    s["onset_div"], s["duration_div"] = np.rint(sn["onset_quarter"] * 480), np.rint(sn["duration_quarter"] * 480)
    pn = performance.notes
    p = np.zeros(len(pn), [("onset_sec", "f4"), ("duration_sec", "f4"), ("onset_tick", "i4"),
                           ("duration_tick", "i4"), ("pitch", "i4"), ("velocity", "i4"), ("track", "i4"),
                           ("channel", "i4"), ("id", "U32")])  # fmt: skip
    for name in ("onset_sec", "duration_sec", "pitch", "velocity"):
        p[name] = pn[name]
    p["onset_tick"], p["duration_tick"] = np.rint(pn["onset_sec"] * 1000), np.rint(pn["duration_sec"] * 1000)
    p["id"] = [f"n{i}" for i in pn["id"]]
    try:
        result = parangonar.DualDTWNoteMatcher()(s, p)
    except Exception as err:  # the matcher raises assorted errors on odd input
        raise EspressivoError(f"the note alignment failed ({type(err).__name__}: {err})") from None
    pairs = [(str(r["score_id"]), int(str(r["performance_id"])[1:])) for r in result if r["label"] == "match"]
    deleted = [str(r["score_id"]) for r in result if r["label"] == "deletion"]
    inserted = [int(str(r["performance_id"])[1:]) for r in result if r["label"] == "insertion"]
    if not pairs:
        raise EspressivoError("the performance does not match the score: no note could be aligned")
    ids, perf_ids = zip(*pairs, strict=True)
    return Alignment.from_pairs(ids, perf_ids, deleted, inserted)
