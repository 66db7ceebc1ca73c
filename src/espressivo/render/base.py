"""What every renderer family shares: the options of a rendering, its result, the score's tempo and the
global controls applied to any rendering (:func:`finish`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from espressivo.core import Performance, Score
from espressivo.core.score import mean_qpm, written_qpm
from espressivo.errors import EspressivoError
from espressivo.render.dynamics import DEFAULT_DYNAMICS_DRIFT
from espressivo.render.rolls import ROLL_STEP_BEATS
from espressivo.render.timing import DEFAULT_TEMPO_DRIFT, DEFAULT_TEMPO_GUARD, DEFAULT_TEMPO_SMOOTHING

MAX_CONSENSUS = 32


@dataclass(frozen=True)
class RenderOptions:
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0
    tempo: float | None = None  # quarter notes per minute
    tempo_scale: float = 1.0
    dynamics_scale: float = 1.0
    window: int = 256
    context: int = 64
    segment: int = 256  # notes per segment rendered side by side (0: the whole score in one pass)
    overlap: int = 64  # notes shared by consecutive segments, cross-faded
    tempo_smoothing: float = DEFAULT_TEMPO_SMOOTHING  # Gaussian sigma, in score beats, on the log tempo (0: off)
    tempo_drift: float = DEFAULT_TEMPO_DRIFT  # departures from the written tempo slower than this many beats removed
    dynamics_drift: float = DEFAULT_DYNAMICS_DRIFT  # loudness departures from the marked level slower than this
    chord_spread: float = 1.0  # chord notes' spread around the chord's onset (0: together, 1: as sampled)
    consensus: int = 1  # performances sampled per rendering and averaged note by note (1: one sample as drawn)
    tempo_guard: float = DEFAULT_TEMPO_GUARD  # sigma (log IOI) of the pull towards the score's IOI (0: off)
    roll_step: float = ROLL_STEP_BEATS  # beats between the notes of a rolled chord (0: chords as sampled)
    estimate_tempo: bool = True  # no --tempo and no metronome mark: play at the tempo estimated from the score
    expressiveness: float = 1.0  # phrase renderer: 0 deadpan, 1 as trained, > 1 exaggerated
    threads: int = 0  # torch CPU threads while rendering (0: the family's choice, see render.families)

    def __post_init__(self) -> None:
        if not 0 < self.temperature <= 10 or not 0 < self.top_p <= 1:
            raise EspressivoError("need 0 < temperature <= 10 and 0 < top-p <= 1")
        if self.tempo is not None and not 10 <= self.tempo <= 400:
            raise EspressivoError("--tempo must lie in 10..400 quarter notes per minute")
        if not 0.25 <= self.tempo_scale <= 4 or not 0 <= self.dynamics_scale <= 4:
            raise EspressivoError("--tempo-scale must lie in 0.25..4 and --dynamics-scale in 0..4")
        if not 16 <= self.window <= 4096 or not 0 <= self.context <= self.window // 4:
            raise EspressivoError("window must lie in 16..4096 notes and context in 0..window/4")
        if self.segment and not (4 * self.overlap <= self.segment and self.overlap >= 1):
            raise EspressivoError("segment must be 0 or at least 4 x overlap, and overlap >= 1")
        if not 0 <= self.tempo_smoothing <= 64 or not (self.tempo_drift == 0 or 2 <= self.tempo_drift <= 1024):
            raise EspressivoError("--tempo-smoothing must lie in 0..64 beats and --tempo-drift be 0 or 2..1024")
        if not (self.dynamics_drift == 0 or 1 <= self.dynamics_drift <= 1024):
            raise EspressivoError("--dynamics-drift must be 0 or lie in 1..1024 beats")
        if not 0 <= self.chord_spread <= 4:
            raise EspressivoError("--chord-spread must lie in 0..4")
        if not 1 <= self.consensus <= MAX_CONSENSUS:
            raise EspressivoError(f"--consensus must lie in 1..{MAX_CONSENSUS}")
        if not (self.tempo_guard == 0 or 0.05 <= self.tempo_guard <= 10):
            raise EspressivoError("--tempo-guard must be 0 or lie in 0.05..10")
        if not 0 <= self.roll_step <= 1:
            raise EspressivoError("--roll-step must lie in 0..1 beats")
        if not 0 <= self.expressiveness <= 3:
            raise EspressivoError("--expressiveness must lie in 0..3")
        if not 0 <= self.threads <= 256:
            raise EspressivoError("--threads must lie in 0..256 (0: chosen by the renderer)")
        if not 0 <= self.seed <= 2**63 - 1 - 64:  # variations count up from it
            raise EspressivoError(f"--seed must lie in 0..{2**63 - 1 - 64}")


@dataclass(frozen=True)
class Rendering:
    performance: Performance  # notes["id"] = score row
    score: Score
    options: RenderOptions


def _mean_qpm(score: Score, perf: Performance) -> float:
    """Quarter notes per minute over the whole rendering."""
    return mean_qpm(score.notes["onset_quarter"][perf.notes["id"]], perf.notes["onset_sec"])


def finish(perf: Performance, score: Score, options: RenderOptions, anchored: bool = False) -> Performance:
    """Apply the global tempo and dynamics controls.  ``anchored``: the model was trained to play around the
    tempo it is given (``score_tempo: performed``), so its mean tempo is set to that tempo — ``--tempo``, else
    the written one — and only its rubato is its own."""
    factor = 1.0
    target = options.tempo if options.tempo is not None else (written_qpm(score) if anchored else None)
    if target:
        current = _mean_qpm(score, perf)
        if current > 0:
            factor = current / target
    factor /= options.tempo_scale
    if factor != 1.0:
        perf = perf.time_stretch(factor)
    if options.dynamics_scale != 1.0 and len(perf):
        v = perf.notes["velocity"].astype(np.float64)
        mean = v.mean()
        notes = perf.notes.copy()
        notes["velocity"] = np.clip(np.rint(mean + options.dynamics_scale * (v - mean)), 1, 127)
        perf = Performance(notes, perf.controls)
    return perf


def with_score_tempo(score: Score, options: RenderOptions) -> RenderOptions:
    """``options`` with the tempo to render ``score`` at: ``--tempo`` if given, else for a score without a
    metronome mark the tempo estimated from its notes and tempo word (:mod:`espressivo.render.score_tempo`;
    unless ``estimate_tempo`` is off), else unchanged (the score's own tempo)."""
    from espressivo.render.score_tempo import chosen_qpm

    if options.tempo is not None or not options.estimate_tempo:
        return options
    qpm = chosen_qpm(score)
    return options if qpm is None else replace(options, tempo=round(qpm, 1))


__all__ = ["MAX_CONSENSUS", "RenderOptions", "Rendering", "finish", "mean_qpm", "with_score_tempo", "written_qpm"]
