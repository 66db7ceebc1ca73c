"""Decoder-only transformers over performance tokens: ``performance-rnn`` events (a token corpus, task ``lm``)
or Aria's note-level ``aria`` events (MIDI sources encoded on the fly, task ``events``)."""

from espressivo.families.base import Family

FAMILY = Family(
    name="transformer",
    kind="language",
    summary="transformer language model: improvises, continues and fills gaps",
    config="espressivo.models.transformer:TransformerConfig",
    model="espressivo.models.transformer:Transformer",
    tasks=("lm", "events"),
    card="espressivo.evaluate.cards:language_card",
)
