"""CVRNN training windows from the aligned pairs (``espressivo data pairs``).

Each performance becomes a :class:`~espressivo.features.cvrnn.ScoreTrack` at the performer's mean tempo (the
written time map scaled to the human's span) and the human's notes, with the smoothed tempo of the whole piece.
A window is ``notes`` consecutive score notes starting on an onset group; its piano rolls see ±radius beats
beyond it.  Unmatched score notes keep their interpolated values as inputs of the recurrence but are left
out of the reconstruction loss (``mask``).

Augmentation (training, seed 002 section 3.3): transposition by up to ``transpose`` semitones (kept on the
88 keys) and zero-reverting (Ornstein-Uhlenbeck) noise on the tempo curve — the performance is re-timed
group by group by a factor that wanders around 1 (``tempo_noise``: its standard deviation; correlation
``TEMPO_NOISE_KEEP`` from one onset group to the next), durations and micro-timing scaled with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.data.pairs import PairWindows, performed_tempo_scale
from espressivo.errors import EspressivoError
from espressivo.features.cvrnn import encode_performance, roll_windows, score_track, smoothed_beat_period
from espressivo.features.expression import onset_groups

TEMPO_NOISE_KEEP = 0.9


@dataclass(frozen=True)
class CVRNNAugmentation:
    transpose: int = 7
    tempo_noise: float = 0.05

    @property
    def active(self) -> bool:
        return bool(self.transpose or self.tempo_noise)


def ou_noise(count: int, sd: float, rng: np.random.Generator, keep: float = TEMPO_NOISE_KEEP) -> np.ndarray:
    """A stationary AR(1) (discrete Ornstein-Uhlenbeck) path of ``count`` values, standard deviation ``sd``."""
    from scipy.signal import lfilter

    eps = rng.standard_normal(count) * sd * np.sqrt(1 - keep**2)
    eps[0] = rng.standard_normal() * sd
    return lfilter([1.0], [1.0, -keep], eps)


def piece_arrays(arrays: dict) -> dict:
    """One performance's track, human notes and smoothed beat period (see the module docstring)."""

    written, performed = arrays["written"], arrays["performed"]
    matched = arrays["expression"]["matched"]
    scale = performed_tempo_scale(written["onset_sec"], performed["onset_sec"], matched)
    track = score_track(arrays["onset_beat"], arrays["score_features"], written["onset_sec"], 1.0 / scale)
    onset = performed["onset_sec"].astype(np.float64)
    group, starts = track.groups
    count = np.bincount(group)
    mean_onset = np.bincount(group, weights=onset) / count
    u = track.onset_beat[starts]
    bp = smoothed_beat_period(u, mean_onset, u)
    return {"track": track, "onset": onset, "duration": performed["duration_sec"].astype(np.float64),
            "velocity": performed["velocity"].astype(np.float64), "pedal": performed["pedal"],
            "beat_period": bp[group], "matched": matched, "group": group, "starts": starts,
            "mean_onset": mean_onset}  # fmt: skip


class CVRNNPairs:
    def __init__(self, root, split: str, config, notes: int = 120, augmentation: CVRNNAugmentation | None = None):
        self.c, self.notes, self.augmentation = config, int(notes), augmentation
        windows = PairWindows(root, split, notes=max(self.notes, 1), hop=max(self.notes, 1))
        self.pieces = []
        for entry in windows.entries:
            arrays = windows.load(entry)
            if "onset_beat" not in arrays or "performed" not in arrays:
                raise EspressivoError(f"{root}: pairs made by an older version; run `espressivo data pairs` again")
            if len(arrays["onset_beat"]) >= 2:
                self.pieces.append(piece_arrays(arrays))
        if not self.pieces:
            raise EspressivoError(f"{root}: no {split} pairs")
        sizes = np.array([len(p["track"]) for p in self.pieces], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def window(self, piece: dict, start: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """The window of ``notes`` notes from ``start`` (moved back to its group's first note)."""
        c, length = self.c, self.notes
        group, starts = piece["group"], piece["starts"]
        g0 = int(group[start])
        start = int(starts[g0])
        rows = slice(start, min(start + length, len(group)))
        # the roll is drawn from the notes within reach of the window's windows
        u = piece["track"].onset_beat
        reach = c.roll_radius_beats + 16.0
        lo = int(np.searchsorted(u, u[rows.start] - reach))
        hi = int(np.searchsorted(u, u[rows.stop - 1] + c.roll_radius_beats, side="right"))
        wide = piece["track"].subset(slice(lo, hi))
        onset, duration = piece["onset"][rows].copy(), piece["duration"][rows].copy()
        bp = piece["beat_period"][rows].copy()
        previous = (float(u[starts[g0 - 1]]), float(piece["mean_onset"][g0 - 1])) if g0 > 0 else None
        aug = self.augmentation
        if rng is not None and aug is not None and aug.active:
            if aug.transpose:
                low = max(-aug.transpose, 21 - int(wide.pitch.min()))
                high = min(aug.transpose, 108 - int(wide.pitch.max()))
                if low <= high:
                    wide = wide.transposed(int(rng.integers(low, high + 1)))
            if aug.tempo_noise:
                onset, duration, bp = _retime(onset, duration, bp, u[rows], previous, aug.tempo_noise, rng)
        track = wide.subset(slice(rows.start - lo, rows.stop - lo))
        x = encode_performance(track, onset, duration, piece["velocity"][rows], piece["pedal"][rows],
                               beat_period=bp, previous=previous)  # fmt: skip
        roll, local_group = roll_windows(wide, c.roll_steps_per_beat, c.roll_radius_beats, c.roll_pitches,
                                         slice(rows.start - lo, rows.stop - lo))  # fmt: skip
        real = len(track)
        out = {
            "cats": np.zeros((length, track.cats.shape[1]), np.int64),
            "roll": np.zeros((length, *roll.shape[1:]), np.uint8),
            "group": np.zeros(length, np.int64),
            "x": np.zeros((length, x.shape[1]), np.int64),
            "mask": np.zeros(length, bool),
            "keep": np.zeros(length, bool),
        }
        out["cats"][:real], out["roll"][: len(roll)], out["group"][:real] = track.cats, roll, local_group
        out["x"][:real], out["keep"][:real] = x, True
        out["mask"][:real] = piece["matched"][rows]
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        piece = self.pieces[int(rng.choice(len(self.pieces), p=self.weights))]
        start = int(rng.integers(0, max(len(piece["track"]) - self.notes, 0) + 1))
        return self.window(piece, start, rng)

    def windows(self):
        """Consecutive windows over every piece, without augmentation."""
        for piece in self.pieces:
            start = 0
            while start < len(piece["track"]):
                w = self.window(piece, start)
                yield w
                after = int(piece["starts"][piece["group"][start]]) + int(w["keep"].sum())
                later = piece["starts"][piece["starts"] > start]
                start = after if after > start else (int(later[0]) if len(later) else len(piece["track"]))


def _retime(onset, duration, bp, beats, previous, sd: float, rng):
    """Re-time a window group by group with a factor ``1 / (1 + noise)`` (zero-reverting noise)."""
    group, _ = onset_groups(beats)
    count = np.bincount(group)
    mean = np.bincount(group, weights=onset) / count
    first = previous[1] if previous is not None else mean[0]
    gaps = np.diff(np.concatenate([[first], mean]))
    factor = 1.0 / (1.0 + np.clip(ou_noise(len(mean), sd, rng), -0.4, 0.4))
    new_mean = first + np.cumsum(gaps * factor)
    f = factor[group]
    onset = new_mean[group] + (onset - mean[group]) * f
    return onset, duration * f, bp * f
