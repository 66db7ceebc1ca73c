"""Per-note features: score-relative expression (performance codec) and score features for renderers."""

from espressivo.features.expression import EXPRESSION_DTYPE, Expression, decode_expression, encode_expression
from espressivo.features.score import SCORE_FEATURE_DTYPE, score_features

__all__ = [
    "EXPRESSION_DTYPE",
    "SCORE_FEATURE_DTYPE",
    "Expression",
    "decode_expression",
    "encode_expression",
    "score_features",
]
