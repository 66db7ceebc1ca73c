"""On-the-fly augmentation, the same for every tokenizer: transposition, uniform time-stretch and
velocity shift/scale, drawn from a seeded generator (Oore et al. sec. 5.3; Aria; Pianist Transformer).

>>> aug = Augmentation(transpose=3, stretch=0.05, velocity_shift=8)
>>> varied = aug(performance, np.random.default_rng(seed))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.core import PIANO_MAX_PITCH, PIANO_MIN_PITCH, Performance
from espressivo.errors import EspressivoError


@dataclass(frozen=True)
class Augmentation:
    """``transpose``: up to ±k semitones, chosen among the shifts that keep every note on the 88 keys;
    ``stretch``: time factor uniform in [1 - s, 1 + s]; ``velocity_shift``: uniform integer in ±v;
    ``velocity_scale``: factor uniform in [1 - r, 1 + r]."""

    transpose: int = 0
    stretch: float = 0.0
    velocity_shift: int = 0
    velocity_scale: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.transpose <= 24 and 0 <= self.stretch < 0.5):
            raise EspressivoError("transpose must lie in 0..24 semitones and stretch in [0, 0.5)")
        if not (0 <= self.velocity_shift <= 64 and 0 <= self.velocity_scale < 1):
            raise EspressivoError("velocity_shift must lie in 0..64 and velocity_scale in [0, 1)")

    @property
    def active(self) -> bool:
        return bool(self.transpose or self.stretch or self.velocity_shift or self.velocity_scale)

    def draw(self, pitch: np.ndarray, rng: np.random.Generator) -> tuple[int, float, int]:
        """(semitones, time factor, velocity shift) for a window of notes with these pitches, for the pair
        loaders, which shift score and performance arrays themselves: a transposition only when one keeps every
        note on the 88 keys, drawn in this order (the same draws as always, so runs stay reproducible)."""
        semitones, factor, shift = 0, 1.0, 0
        if self.transpose:
            low = max(-self.transpose, PIANO_MIN_PITCH - int(pitch.min()))
            high = min(self.transpose, PIANO_MAX_PITCH - int(pitch.max()))
            semitones = int(rng.integers(low, high + 1)) if low <= high else 0
        if self.stretch:
            factor = float(rng.uniform(1 - self.stretch, 1 + self.stretch))
        if self.velocity_shift:
            shift = int(rng.integers(-self.velocity_shift, self.velocity_shift + 1))
        return semitones, factor, shift

    def __call__(self, performance: Performance, rng: np.random.Generator) -> Performance:
        if not self.active or len(performance) == 0:
            return performance
        if self.transpose:
            low = max(-self.transpose, PIANO_MIN_PITCH - int(performance.notes["pitch"].min()))
            high = min(self.transpose, PIANO_MAX_PITCH - int(performance.notes["pitch"].max()))
            if low <= high:
                performance, _ = performance.transpose(int(rng.integers(low, high + 1)))
        if self.stretch:
            performance = performance.time_stretch(float(rng.uniform(1 - self.stretch, 1 + self.stretch)))
        if self.velocity_shift or self.velocity_scale:
            scale = float(rng.uniform(1 - self.velocity_scale, 1 + self.velocity_scale)) if self.velocity_scale else 1.0
            shift = int(rng.integers(-self.velocity_shift, self.velocity_shift + 1)) if self.velocity_shift else 0
            performance = performance.adjust_velocity(scale=scale, shift=shift)
        return performance
