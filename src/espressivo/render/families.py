"""The renderer families: what each kind of score -> performance model can do, in one registry.

A family names its model type, the training task that makes it, the rendering controls it honours beyond the
common ones (seed, temperature, tempo, tempo scale, dynamics scale), whether it can continue from a pianist's
first notes (``prime``: the function that does it, or None), the steering its render function takes, whether it
reads the score's performance markings, and the function that renders a score with it.  :func:`family_of` is the
one place that looks at a checkpoint's ``model_type``; :func:`check_controls` refuses, in one line, a control the
family does not use.  A new renderer is one module with a ``render_*`` function plus one line in ``FAMILIES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from espressivo.core import Score
from espressivo.errors import EspressivoError
from espressivo.render.base import Rendering, RenderOptions, with_score_tempo

DEFAULT_RENDERER = "phrase-small"  # what `espressivo render`, `evaluate render` and the demo use by default
DEFAULT_OPTIONS = RenderOptions()
COMMON = frozenset({"temperature", "seed", "tempo", "tempo_scale", "dynamics_scale", "estimate_tempo", "threads"})


@dataclass(frozen=True)
class Family:
    model_type: str
    task: str
    controls: frozenset[str]
    prime: Callable | None  # (pretrained, score, options, prime slots, variations) -> list[Rendering]; None: cannot
    render: Callable  # (pretrained, score, options, variations, **steering) -> list[Rendering]
    threads: int = 1  # torch threads by default: 1 for note-by-note sampling loops, 0 (torch's) for batched work
    steering: frozenset[str] = frozenset()  # keyword arguments of its render beyond the options
    markings: bool = False  # reads the score's performance markings (a MIDI score has none: said on stderr)


def _render_notewise(pretrained, score, options, variations):
    from espressivo.render.render import render_notewise

    return render_notewise(pretrained, score, options, variations=variations)


def _prime_notewise(pretrained, score, options, prime, variations):
    from espressivo.render.render import render_notewise

    return render_notewise(pretrained, score, options, prime, variations)


def _render_cvrnn(pretrained, score, options, variations, **steering):
    from espressivo.render.cvrnn import render_cvrnn

    return render_cvrnn(pretrained, score, options, variations=variations, **steering)


def _render_phrase(pretrained, score, options, variations):
    from espressivo.render.phrase import render_phrase

    return render_phrase(pretrained, score, options, variations=variations)


FAMILIES: dict[str, Family] = {
    "renderer": Family("renderer", "render", frozenset({"top_p", "tempo_drift", "dynamics_drift", "chord_spread",
                       "consensus", "tempo_guard", "roll_step", "window", "context", "segment", "overlap"}),
                       _prime_notewise, _render_notewise),
    "cvrnn": Family("cvrnn", "cvrnn", frozenset({"top_p"}), None, _render_cvrnn,
                    steering=frozenset({"shift", "reference_state"})),
    "phrase": Family("phrase", "phrase", frozenset({"expressiveness", "roll_step"}), None, _render_phrase, 0,
                     markings=True),
}  # fmt: skip


def family_of(pretrained) -> Family:
    family = FAMILIES.get(pretrained.model_type)
    if family is None:
        raise EspressivoError(f"{pretrained.path.name} is a {pretrained.model_type} model, not a renderer "
                              f"({', '.join(FAMILIES)})")  # fmt: skip
    return family


def check_controls(family: Family, options: RenderOptions, name: str = "") -> None:
    """Refuse a rendering control set away from its default that ``family`` does not use."""
    for key in options.changed():
        if key not in COMMON and key not in family.controls:
            flag = "--" + key.replace("_", "-")
            raise EspressivoError(f"{name or family.model_type}: a {family.model_type} renderer does not use {flag}")


def render(
    pretrained, score: Score, options: RenderOptions = DEFAULT_OPTIONS, prime: np.ndarray | None = None,
    variations: int = 1, **steering,
) -> list[Rendering]:  # fmt: skip
    """Render ``score`` ``variations`` times with any renderer family (:mod:`espressivo.render.families`); a
    control the family does not use is refused in one line.  The tempo: :func:`with_score_tempo` (each
    rendering's ``options.timing.tempo`` says which was used).  ``prime``: a note-by-note renderer continues from
    a pianist's first notes (the evaluation's primed protocol).  ``steering``: what the family's ``steering``
    names (a CVRNN: ``shift``, the interpretation; ``reference_state``, a reference's style); ``None`` is no
    steering."""
    options = with_score_tempo(score, options)
    family = family_of(pretrained)
    check_controls(family, options, pretrained.path.name)
    steering = {k: v for k, v in steering.items() if v is not None}
    if set(steering) - family.steering:
        raise EspressivoError(f"a {family.model_type} renderer cannot be steered (--interpretation, --reference); "
                              "a CVRNN can (--model cvrnn-small)")  # fmt: skip
    from espressivo.generate.draw import threads

    with threads(options.sampling.threads or family.threads):
        if prime is not None:
            if family.prime is None:
                raise EspressivoError(f"a {family.model_type} renderer does not continue from a primed performance")
            return family.prime(pretrained, score, options, prime, variations)
        return family.render(pretrained, score, options, variations, **steering)
