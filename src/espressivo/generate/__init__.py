"""Generation: sampling (temperature, top-k, top-p, min-p), beam search, priming, variations."""

from espressivo.generate.draw import SamplingConfig
from espressivo.generate.sampling import generate_ids, generate_performances

__all__ = ["SamplingConfig", "generate_ids", "generate_performances"]
