"""The phrase renderer (the default): beat-level tempo and loudness curves plus note deviations around them,
predicted in one batch from the score and its markings."""

from espressivo.families.base import Family

FAMILY = Family(
    name="phrase",
    kind="renderer",
    summary="phrase — the default: shapes tempo and loudness by the phrase and reads the markings",
    config="espressivo.models.phrase:PhraseConfig",
    model="espressivo.models.phrase:PhraseRenderer",
    tasks=("phrase",),
    features="espressivo.features.phrase:PHRASE_FEATURES",
    render="espressivo.render.phrase:render_phrase",
    controls=frozenset({"expressiveness", "roll_step"}),
    threads=0,
    markings=True,
    card="espressivo.evaluate.cards:renderer_card",
)
