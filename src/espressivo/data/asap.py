"""The (n)ASAP dataset: 1,066 performances note-aligned to 222 scores, with a fixed piece-level split.

>>> asap = AsapDataset()                      # ../shared/data/asap, or $ESPRESSIVO_DATA/asap
>>> for item in asap.performances(split="test"):
...     perf, score, alignment = item.load_performance(), item.load_score(), item.load_alignment()

Rows of ``metadata.csv`` whose performance or alignment file is missing are skipped and reported
once, as one warning listing them; ``asap.skipped`` keeps them.  The shipped metadata points 31 rows
at alignment files that do not exist, 29 of them through a malformed ``Schubert/Impromptu_op_...``
path.  Where the alignment sits at its conventional place, ``<folder>/<performer>_note_alignments/``
(28 of the 31), the row is repaired and kept, and listed in ``asap.repaired``; pass
``repair=False`` to skip such rows as the metadata says.
Three pieces have no MusicXML: their score is read from ``midi_score.mid`` (``score_format``), and
their alignments, made against a MusicXML that is not shipped, do not fit it (``alignment_fits_score``).
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from espressivo.core import Alignment, Performance, Score
from espressivo.data.paths import default_data_root, existing_dir
from espressivo.errors import EspressivoError
from espressivo.io import read_alignment, read_midi, read_score

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class AsapPerformance:
    """One performance of one piece; files are loaded only when asked for."""

    composer: str
    title: str
    performer: str
    split: str
    robust_alignment: bool
    folder: str
    performance_path: Path
    score_path: Path
    alignment_path: Path
    annotations_path: Path | None

    @property
    def score_format(self) -> str:
        return "musicxml" if self.score_path.suffix == ".mxl" else "midi"

    @property
    def alignment_fits_score(self) -> bool:
        """False for the three pieces without MusicXML: their alignment files name the notes of a
        MusicXML score that is not shipped, so they cannot be matched against ``midi_score.mid``."""
        return self.score_format == "musicxml"

    @property
    def name(self) -> str:
        return f"{self.folder}/{self.performer}"

    def load_performance(self) -> Performance:
        """The performance, its notes numbered as the alignment file numbers them (partitura pairing)."""
        return read_midi(self.performance_path, pairing="partitura")

    def load_score(self, unfold: bool = True) -> Score:
        """The score, by default unfolded as the alignment ids expect (``n12-2`` = second pass)."""
        return read_score(self.score_path, unfold=unfold and self.score_format == "musicxml")

    def load_alignment(self) -> Alignment:
        return read_alignment(self.alignment_path)


class AsapDataset:
    def __init__(self, root: str | os.PathLike | None = None, *, repair: bool = True, quiet: bool = False):
        self.repair = repair
        self.repaired: list[tuple[str, str]] = []
        self.root = existing_dir(root if root is not None else default_data_root() / "asap", "(n)ASAP")
        for name in ("metadata.csv", "splits.csv"):
            if not (self.root / name).is_file():
                raise EspressivoError(f"{self.root}: missing {name}; is this the (n)ASAP folder?")
        self.items, self.skipped = self._scan()
        if self.skipped and not quiet:
            listing = "; ".join(f"{row} ({reason})" for row, reason in self.skipped)
            warnings.warn(
                f"(n)ASAP: skipped {len(self.skipped)} metadata rows with missing files: {listing}", stacklevel=2
            )
        if self.repaired and not quiet:
            warnings.warn(
                f"(n)ASAP: {len(self.repaired)} metadata rows name a missing alignment file; "
                "used the one found beside the performance instead (asap.repaired lists them)",
                stacklevel=2,
            )

    def _read_csv(self, name: str) -> list[dict[str, str]]:
        try:
            with open(self.root / name, newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise EspressivoError(f"{self.root / name}: cannot read ({err})") from None

    def _scan(self) -> tuple[list[AsapPerformance], list[tuple[str, str]]]:
        splits = {(r["composer"], r["title"]): r["split"] for r in self._read_csv("splits.csv")}
        items, skipped = [], []
        for number, row in enumerate(self._read_csv("metadata.csv"), start=2):
            label = f"metadata.csv:{number} {row.get('midi_performance', '?')}"
            try:
                perf = self.root / row["midi_performance"]
                xml, midi_score = self.root / row["xml_score"], self.root / row["midi_score"]
                alignment = self.root / row["note_alignments"]
                key = (row["composer"], row["title"])
                conventional = self.root / row["folder"] / f"{perf.stem}_note_alignments" / "note_alignment.tsv.gz"
            except (KeyError, TypeError):
                skipped.append((label, "malformed row"))
                continue
            if self.repair and not alignment.is_file() and conventional.is_file():
                self.repaired.append((label, str(conventional.relative_to(self.root))))
                alignment = conventional
            missing = [what for what, p in (("performance", perf), ("note alignment", alignment)) if not p.is_file()]
            if not xml.is_file() and not midi_score.is_file():
                missing.append("score")
            if key not in splits:
                missing.append("split")
            if missing:
                skipped.append((label, "missing " + ", ".join(missing)))
                continue
            annotations = self.root / row.get("performance_annotations", "")
            items.append(
                AsapPerformance(
                    composer=row["composer"],
                    title=row["title"],
                    performer=perf.stem,
                    split=splits[key],
                    robust_alignment=row.get("robust_note_alignment", "") in ("1", "1.0", "True"),
                    folder=row["folder"],
                    performance_path=perf,
                    score_path=xml if xml.is_file() else midi_score,
                    alignment_path=alignment,
                    annotations_path=annotations if annotations.is_file() else None,
                )
            )
        return items, skipped

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[AsapPerformance]:
        return iter(self.items)

    def performances(self, split: str | None = None, *, robust_only: bool = False) -> list[AsapPerformance]:
        if split is not None and split not in SPLITS:
            raise EspressivoError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        return [
            item
            for item in self.items
            if (split is None or item.split == split) and (item.robust_alignment or not robust_only)
        ]

    def pieces(self, split: str | None = None) -> list[tuple[str, str]]:
        """Distinct ``(composer, title)`` pieces, in metadata order."""
        return list(dict.fromkeys((i.composer, i.title) for i in self.performances(split)))
