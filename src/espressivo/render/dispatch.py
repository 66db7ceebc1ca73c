"""``render()``: a score rendered by a model of any renderer family (:mod:`espressivo.families` says what each
family is and does).  A control the family does not use is refused in one line (:func:`check_controls`), and so
is steering it cannot take.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Score
from espressivo.errors import EspressivoError
from espressivo.families import Family, family_of
from espressivo.generate.draw import threads
from espressivo.render.base import Rendering, RenderOptions, with_score_tempo

DEFAULT_RENDERER = "phrase-small"  # what `espressivo render`, `evaluate render` and the demo use by default
DEFAULT_OPTIONS = RenderOptions()
COMMON = frozenset({"temperature", "seed", "tempo", "tempo_scale", "dynamics_scale", "estimate_tempo", "threads"})


def check_controls(family: Family, options: RenderOptions, name: str = "") -> None:
    """Refuse a rendering control set away from its default that ``family`` does not use."""
    for key in options.changed():
        if key not in COMMON and key not in family.controls:
            flag = "--" + key.replace("_", "-")
            raise EspressivoError(f"{name or family.name}: a {family.name} renderer does not use {flag}")


def render(
    pretrained, score: Score, options: RenderOptions = DEFAULT_OPTIONS, prime: np.ndarray | None = None,
    variations: int = 1, **steering,
) -> list[Rendering]:  # fmt: skip
    """Render ``score`` ``variations`` times with any renderer family (:mod:`espressivo.families`); a
    control the family does not use is refused in one line.  The tempo: :func:`with_score_tempo` (each
    rendering's ``options.timing.tempo`` says which was used).  ``prime``: a note-by-note renderer continues from
    a pianist's first notes (the evaluation's primed protocol).  ``steering``: what the family's ``steering``
    names (a CVRNN: ``shift``, the interpretation; ``reference_state``, a reference's style); ``None`` is no
    steering."""
    options = with_score_tempo(score, options)
    family = family_of(pretrained, "renderer")
    check_controls(family, options, pretrained.path.name)
    steering = {k: v for k, v in steering.items() if v is not None}
    if set(steering) - family.steering:
        raise EspressivoError(f"a {family.name} renderer cannot be steered (--interpretation, --reference); "
                              "a CVRNN can (--model cvrnn-small)")  # fmt: skip
    with threads(options.sampling.threads or family.threads):
        if prime is not None:
            if not family.prime:
                raise EspressivoError(f"a {family.name} renderer does not continue from a primed performance")
            return family.part("prime")(pretrained, score, options, prime, variations)
        return family.part("render")(pretrained, score, options, variations=variations, **steering)
