"""Performance embeddings: one vector per file, similarity search, classification on frozen vectors."""

from espressivo.embed.classify import LinearProbe, accuracy, macro_f1
from espressivo.embed.files import EmbeddingIndex, FileEmbedder, collect_midi, embed_paths
from espressivo.embed.stats import STATISTICS, performance_statistics

__all__ = [
    "STATISTICS",
    "EmbeddingIndex",
    "FileEmbedder",
    "LinearProbe",
    "accuracy",
    "collect_midi",
    "embed_paths",
    "macro_f1",
    "performance_statistics",
]
