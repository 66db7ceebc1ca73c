"""Reading and writing: performance MIDI (symusic), scores (partitura), alignments (TSV)."""

from espressivo.io.alignment import read_alignment
from espressivo.io.midi import read_midi, write_midi
from espressivo.io.score import SCORE_SUFFIXES, read_score

__all__ = ["SCORE_SUFFIXES", "read_alignment", "read_midi", "read_score", "write_midi"]
