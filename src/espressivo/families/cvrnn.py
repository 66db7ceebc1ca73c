"""CVRNN (Maezawa et al.): renders note by note with an interpretation latent z that can be steered by hand
(``shift``) or taken from a reference performance (``reference_state``)."""

from espressivo.families.base import Family

FAMILY = Family(
    name="cvrnn",
    kind="renderer",
    summary="CVRNN — with interpretation sliders: steer its reading, or play in a reference's style",
    config="espressivo.models.cvrnn:CVRNNConfig",
    model="espressivo.models.cvrnn:CVRNN",
    tasks=("cvrnn",),
    features="espressivo.features.cvrnn:SCORE_CATEGORIES",
    render="espressivo.render.cvrnn:render_cvrnn",
    controls=frozenset({"top_p"}),
    steering=frozenset({"shift", "reference_state"}),
    evaluations=("espressivo.evaluate.cvrnn:cvrnn_protocols",),
    card="espressivo.evaluate.cards:cvrnn_card",
)
