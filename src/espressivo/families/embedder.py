"""The embedder (Aria's contrastive embeddings): one vector per performance, with an optional classifier head."""

from espressivo.families.base import Family

FAMILY = Family(
    name="embedder",
    kind="embedder",
    summary="embedder: one vector per performance, for search and classification",
    config="espressivo.models.embedder:EmbedderConfig",
    model="espressivo.models.embedder:Embedder",
    tasks=("classify", "contrastive"),
    card="espressivo.evaluate.cards:embedder_card",
)
