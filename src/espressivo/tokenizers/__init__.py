"""Tokenizers: one interface (encode/decode/vocab/save/load), a registry, several vocabularies."""

from espressivo.tokenizers.aria import AriaTokenizer
from espressivo.tokenizers.base import TOKENIZERS, Tokenizer, Vocabulary, from_dict, from_name, load_tokenizer
from espressivo.tokenizers.note import NoteTokenizer
from espressivo.tokenizers.performance_rnn import PerformanceRNNTokenizer

__all__ = [
    "TOKENIZERS",
    "AriaTokenizer",
    "NoteTokenizer",
    "PerformanceRNNTokenizer",
    "Tokenizer",
    "Vocabulary",
    "from_dict",
    "from_name",
    "load_tokenizer",
]
