"""The note-by-note renderer: an encoder over the score's notes, a decoder that samples each note's timing,
velocity, duration and pedal in turn (Pianist Transformer's rendering, pretrained by denoising)."""

from espressivo.families.base import Family

FAMILY = Family(
    name="notewise",
    kind="renderer",
    summary="note by note: samples every note's timing, loudness and pedal in turn",
    config="espressivo.models.notewise:NotewiseConfig",
    model="espressivo.models.notewise:NotewiseRenderer",
    tasks=("render", "denoise"),
    features="espressivo.features.slots:SCORE_FEATURES",
    render="espressivo.render.notewise:render_notewise",
    prime="espressivo.render.notewise:render_notewise",
    controls=frozenset(
        {
            "top_p",
            "tempo_drift",
            "dynamics_drift",
            "chord_spread",
            "consensus",
            "tempo_guard",
            "roll_step",
            "window",
            "context",
            "segment",
            "overlap",
        }
    ),
    evaluations=("espressivo.evaluate.primed:notewise_protocols",),
    card="espressivo.evaluate.cards:renderer_card",
    aliases=("renderer",),
)
