"""Score -> performance rendering with a trained renderer of any family, and editable (tempo-mapped) output."""

from espressivo.render.base import Rendering, RenderOptions
from espressivo.render.dispatch import render
from espressivo.render.notewise import render_slots, score_inputs
from espressivo.render.tempo_map import tempo_mapped_bytes, write_tempo_mapped

__all__ = [
    "RenderOptions",
    "Rendering",
    "render",
    "render_slots",
    "score_inputs",
    "tempo_mapped_bytes",
    "write_tempo_mapped",
]
