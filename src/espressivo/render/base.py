"""What every renderer family shares: the options of a rendering (three small groups: :class:`Sampling`,
:class:`Timing`, :class:`Shaping`), its result, the score's tempo and the global controls applied to any
rendering (:func:`finish`).

The groups are what ``espressivo render``, ``espressivo evaluate render`` and the sweeps share: the CLI builder
turns each field into a flag (its help from the group's ``Args:``); a field marked :func:`expert` is accepted but
not listed in ``--help``, and one marked :func:`api_only` is no flag at all (the Python API and configs reach it).

>>> RenderOptions.of(seed=3, tempo=90)                 # flat settings, routed to their group
>>> options.replace(expressiveness=1.5).timing.tempo   # 90.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from espressivo.core import Performance, Score
from espressivo.core.score import mean_qpm, written_qpm
from espressivo.errors import EspressivoError
from espressivo.generate.draw import MAX_SEED
from espressivo.render.dynamics import DEFAULT_DYNAMICS_DRIFT
from espressivo.render.rolls import ROLL_STEP_BEATS
from espressivo.render.score_tempo import chosen_qpm
from espressivo.render.timing import DEFAULT_TEMPO_DRIFT, DEFAULT_TEMPO_GUARD

MAX_CONSENSUS = 32


def expert(default):
    """A setting accepted as a flag but left out of ``--help`` (documented in docs/rendering.md)."""
    return field(default=default, metadata={"expert": True})


def api_only(default):
    """A setting of the Python API and configs, not a flag."""
    return field(default=default, metadata={"flag": False})


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise EspressivoError(message)


@dataclass(frozen=True)
class Sampling:
    """sampling: how a performance is drawn from the renderer

    Args:
        seed: random seed (same seed, same performance)
        temperature: sampling temperature (lower: safer, flatter)
        top_p: nucleus sampling mass (note-by-note renderer and CVRNN)
        consensus: sample this many performances and play their note-by-note consensus (mean chord onsets,
            median spread, velocity and duration, majority pedal; note-by-note renderer)
        threads: torch CPU threads (0: chosen by the renderer: one for note-by-note sampling, which is fastest
            and does not spin on a busy machine; torch's default for the phrase renderer's batched windows)
    """

    seed: int = 0
    temperature: float = 1.0
    top_p: float = expert(0.95)
    consensus: int = expert(1)
    threads: int = expert(0)
    window: int = api_only(256)  # note-by-note renderer: notes the encoder sees at once
    context: int = api_only(64)  # already-rendered notes fed back at each window
    segment: int = api_only(256)  # notes per segment rendered side by side (0: the whole score in one pass)
    overlap: int = api_only(64)  # notes shared by consecutive segments, cross-faded

    def __post_init__(self) -> None:
        _check(0 <= self.seed <= MAX_SEED, f"--seed must lie in 0..{MAX_SEED}")
        _check(0 < self.temperature <= 10 and 0 < self.top_p <= 1, "need 0 < temperature <= 10 and 0 < top-p <= 1")
        _check(1 <= self.consensus <= MAX_CONSENSUS, f"--consensus must lie in 1..{MAX_CONSENSUS}")
        _check(0 <= self.threads <= 256, "--threads must lie in 0..256 (0: chosen by the renderer)")
        _check(16 <= self.window <= 4096 and 0 <= self.context <= self.window // 4,
               "window must lie in 16..4096 notes and context in 0..window/4")  # fmt: skip
        _check(not self.segment or (4 * self.overlap <= self.segment and self.overlap >= 1),
               "segment must be 0 or at least 4 x overlap, and overlap >= 1")  # fmt: skip


@dataclass(frozen=True)
class Timing:
    """tempo: how fast, and how the tempo may move

    Args:
        tempo: overall tempo in quarter notes per minute (default: the score's metronome mark; a score
            without one at the tempo pianists would take, estimated from its notes and tempo word)
        tempo_scale: multiply the tempo (1.1 = 10 % faster)
        estimate_tempo: a score without a metronome mark is played at the estimated tempo
            (--no-estimate-tempo: at 120 quarters per minute, as notation programs assume)
        tempo_drift: take out the note-by-note renderer's departures from the written tempo slower than this
            many beats (0: keep them)
        tempo_guard: while sampling, pull every IOI of the note-by-note renderer towards the score's (a
            log-normal prior of this sigma; 0: off)
    """

    tempo: float | None = None  # quarter notes per minute
    tempo_scale: float = 1.0
    estimate_tempo: bool = expert(True)
    tempo_drift: float = expert(DEFAULT_TEMPO_DRIFT)
    tempo_guard: float = expert(DEFAULT_TEMPO_GUARD)

    def __post_init__(self) -> None:
        _check(self.tempo is None or 10 <= self.tempo <= 400, "--tempo must lie in 10..400 quarter notes per minute")
        _check(0.25 <= self.tempo_scale <= 4, "--tempo-scale must lie in 0.25..4")
        _check(self.tempo_drift == 0 or 2 <= self.tempo_drift <= 1024, "--tempo-drift must be 0 or lie in 2..1024")
        _check(self.tempo_guard == 0 or 0.05 <= self.tempo_guard <= 10, "--tempo-guard must be 0 or lie in 0.05..10")


@dataclass(frozen=True)
class Shaping:
    """shaping: how much expression, and how it is shaped

    Args:
        expressiveness: phrase renderer: how much expression, 0 (deadpan) .. 1 (as trained) .. 3 (exaggerated);
            scales its tempo and loudness curves and note deviations
        dynamics_scale: widen (> 1) or narrow (< 1) the dynamic range around the mean velocity
        dynamics_drift: hold the note-by-note renderer's loudness to the marked dynamics, taking out its
            departures slower than this many beats (0: its own level)
        chord_spread: scale how far chord notes spread around the chord's onset (0: together, 1: as sampled;
            note-by-note renderer)
        roll_step: roll the chords the score marks arpeggiated, this many beats between notes (0: as sampled;
            note-by-note renderer)
    """

    expressiveness: float = 1.0
    dynamics_scale: float = 1.0
    dynamics_drift: float = expert(DEFAULT_DYNAMICS_DRIFT)
    chord_spread: float = expert(1.0)
    roll_step: float = expert(ROLL_STEP_BEATS)

    def __post_init__(self) -> None:
        _check(0 <= self.expressiveness <= 3, "--expressiveness must lie in 0..3")
        _check(0 <= self.dynamics_scale <= 4, "--dynamics-scale must lie in 0..4")
        _check(self.dynamics_drift == 0 or 1 <= self.dynamics_drift <= 1024,
               "--dynamics-drift must be 0 or lie in 1..1024 beats")  # fmt: skip
        _check(0 <= self.chord_spread <= 4, "--chord-spread must lie in 0..4")
        _check(0 <= self.roll_step <= 1, "--roll-step must lie in 0..1 beats")


GROUPS = {"sampling": Sampling, "timing": Timing, "shaping": Shaping}
GROUP_OF = {f.name: group for group, cls in GROUPS.items() for f in fields(cls)}


@dataclass(frozen=True)
class RenderOptions:
    sampling: Sampling = field(default_factory=Sampling)
    timing: Timing = field(default_factory=Timing)
    shaping: Shaping = field(default_factory=Shaping)

    @classmethod
    def of(cls, **settings) -> RenderOptions:
        """Options from flat settings (``seed=3, tempo=90``), each routed to its group."""
        return cls().replace(**settings)

    def replace(self, **settings) -> RenderOptions:
        """A copy with flat settings changed; an unknown name is refused."""
        unknown = set(settings) - set(GROUP_OF)
        if unknown:
            raise EspressivoError(f"unknown rendering settings: {', '.join(sorted(unknown))}")
        groups = {}
        for group in GROUPS:
            mine = {k: v for k, v in settings.items() if GROUP_OF[k] == group}
            groups[group] = replace(getattr(self, group), **mine) if mine else getattr(self, group)
        return RenderOptions(**groups)

    def flat(self) -> dict:
        """Every setting by name."""
        return {k: v for group in GROUPS for k, v in asdict(getattr(self, group)).items()}

    def changed(self) -> dict:
        """The settings away from their defaults."""
        default = RenderOptions().flat()
        return {k: v for k, v in self.flat().items() if v != default[k]}


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
    tempo = options.timing.tempo
    target = tempo if tempo is not None else (written_qpm(score) if anchored else None)
    if target:
        current = _mean_qpm(score, perf)
        if current > 0:
            factor = current / target
    factor /= options.timing.tempo_scale
    if factor != 1.0:
        perf = perf.time_stretch(factor)
    scale = options.shaping.dynamics_scale
    if scale != 1.0 and len(perf):
        v = perf.notes["velocity"].astype(np.float64)
        mean = v.mean()
        notes = perf.notes.copy()
        notes["velocity"] = np.clip(np.rint(mean + scale * (v - mean)), 1, 127)
        perf = Performance(notes, perf.controls)
    return perf


def with_score_tempo(score: Score, options: RenderOptions) -> RenderOptions:
    """``options`` with the tempo to render ``score`` at: ``--tempo`` if given, else for a score without a
    metronome mark the tempo estimated from its notes and tempo word (:mod:`espressivo.render.score_tempo`;
    unless ``estimate_tempo`` is off), else unchanged (the score's own tempo)."""

    if options.timing.tempo is not None or not options.timing.estimate_tempo:
        return options
    qpm = chosen_qpm(score)
    return options if qpm is None else options.replace(tempo=round(qpm, 1))


__all__ = [
    "MAX_CONSENSUS",
    "RenderOptions",
    "Rendering",
    "Sampling",
    "Shaping",
    "Timing",
    "finish",
    "mean_qpm",
    "with_score_tempo",
    "written_qpm",
]
