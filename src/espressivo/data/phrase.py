"""Training windows for the phrase renderer from aligned pairs (``espressivo data pairs``).

A window is ``notes`` consecutive score notes (score order) and the score beats they span (at most
``max_beats``; a window that would span more is cut short).  Per note: the score as deadpan slots at the
pianist's mean tempo (the renderer is given the tempo), :func:`~espressivo.features.phrase.phrase_features`,
the beat it falls in, and the note targets; per beat: the tempo and loudness curve targets
(:func:`~espressivo.features.phrase.expression_targets`).

Augmentation (training only): transposition, one time stretch of the deadpan input, a velocity shift of the
loudness curve, and with probability ``drop_marks`` the markings removed (as a score read from MIDI has none).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from espressivo.data.pairs import PairWindows, performed_tempo_scale
from espressivo.errors import EspressivoError
from espressivo.features.phrase import (
    VELOCITY_SCALE,
    drop_markings,
    expression_targets,
    phrase_features,
)
from espressivo.features.slots import dynamics_velocity, score_slots


class PhrasePairs:
    def __init__(
        self, root: str | os.PathLike, split: str, tokenizer, notes: int = 512, max_beats: int = 512,
        augmentation=None, drop_marks: float = 0.0,
    ):  # fmt: skip
        self.tok, self.notes, self.max_beats = tokenizer, int(notes), int(max_beats)
        self.augmentation, self.drop_marks = augmentation, float(drop_marks)
        source = PairWindows(root, split, notes=max(self.notes, 1), hop=max(self.notes, 1))
        self.pieces = []
        for entry in source.entries:
            a = source.load(entry)
            if "marks" not in a:
                raise EspressivoError(f"{root}: pairs made by an older version; run `espressivo data pairs` again")
            sf, written, performed, matched = (
                a["score_features"],
                a["written"],
                a["performed"],
                a["expression"]["matched"],
            )
            if matched.sum() < 2:
                continue
            scale = performed_tempo_scale(written["onset_sec"], performed["onset_sec"], matched)
            marks = a["marks"] if len(a["marks"]) == len(sf) else None
            targets = expression_targets(a["onset_beat"], sf["duration_beat"], written["onset_sec"], performed, matched)
            self.pieces.append(
                {
                    "name": entry["name"],
                    "pitch": sf["pitch"].astype(np.int64),
                    "w_onset": written["onset_sec"] * scale,
                    "w_duration": written["duration_sec"] * scale,
                    "w_velocity": dynamics_velocity(sf["dynamic"]),
                    "features": phrase_features(sf, marks, a["onset_beat"])[0],
                    **targets,
                }
            )
        if not self.pieces:
            raise EspressivoError(f"{root}: no {split} pairs")
        sizes = np.array([len(p["pitch"]) for p in self.pieces], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def _window(self, piece: dict, start: int, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        n, length = len(piece["pitch"]), self.notes
        stop = min(start + length, n)
        beat = piece["beat"][start:stop]
        first = int(beat[0])
        too_far = np.flatnonzero(beat - first >= self.max_beats)
        if len(too_far):
            stop = start + int(too_far[0])
        sl = slice(start, stop)
        beat = piece["beat"][sl] - first
        pitch, w_on, w_dur = piece["pitch"][sl], piece["w_onset"][sl], piece["w_duration"][sl]
        level = piece["level"][first : first + self.max_beats].copy()
        features = piece["features"][sl]
        aug = self.augmentation
        if rng is not None and aug is not None and aug.active:
            semitones, factor, shift = aug.draw(pitch, rng)
            pitch, w_on, w_dur, level = pitch + semitones, w_on * factor, w_dur * factor, level + shift / VELOCITY_SCALE
        if rng is not None and self.drop_marks and rng.random() < self.drop_marks:
            features = drop_markings(features)
        src = score_slots(w_on - w_on[0], w_dur, pitch, piece["w_velocity"][sl], self.tok)
        src[0, 1] = 0
        real = len(src)
        out = {
            "src": np.zeros((length, src.shape[1]), np.int64),
            "features": np.zeros((length, features.shape[1]), np.float32),
            "keep": np.zeros(length, bool),
            "beat": np.zeros(length, np.int64),
            "timing": np.zeros(length, np.float32),
            "velocity": np.zeros(length, np.float32),
            "articulation": np.zeros(length, np.float32),
            "pedal": np.zeros((length, piece["pedal"].shape[1]), np.float32),
            "note_ok": np.zeros(length, bool),
            "tempo": np.zeros(self.max_beats, np.float32),
            "tempo_ok": np.zeros(self.max_beats, bool),
            "level": np.zeros(self.max_beats, np.float32),
            "level_ok": np.zeros(self.max_beats, bool),
        }
        out["src"][:real], out["features"][:real], out["keep"][:real], out["beat"][:real] = src, features, True, beat
        for key in ("timing", "velocity", "articulation", "pedal", "note_ok"):
            out[key][:real] = piece[key][sl]
        used = int(beat.max()) + 1
        out["tempo"][:used] = piece["tempo"][first : first + used]
        out["tempo_ok"][:used] = piece["tempo_ok"][first : first + used]
        out["level"][:used] = level[:used]
        out["level_ok"][:used] = piece["level_ok"][first : first + used]
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        piece = self.pieces[int(rng.choice(len(self.pieces), p=self.weights))]
        start = int(rng.integers(0, max(len(piece["pitch"]) - self.notes, 0) + 1))
        return self._window(piece, start, rng)

    def windows(self, with_piece: bool = False) -> Iterator[dict[str, np.ndarray]]:
        """Consecutive windows over every note of the split, without augmentation (``with_piece``: each with
        ``piece``, the index of its pair)."""
        for index, piece in enumerate(self.pieces):
            start = 0
            while start < len(piece["pitch"]):
                window = self._window(piece, start, None)
                if with_piece:
                    window["piece"] = np.int64(index)
                yield window
                start += int(window["keep"].sum())
