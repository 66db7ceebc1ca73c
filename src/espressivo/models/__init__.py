"""Model families, one readable file each; every model's ``forward`` returns ``(output, loss)``."""

from __future__ import annotations

from dataclasses import asdict

from espressivo.errors import EspressivoError
from espressivo.models.cvrnn import CVRNN, CVRNNConfig
from espressivo.models.embedder import Embedder, EmbedderConfig
from espressivo.models.perfrnn import PerfRNN, PerfRNNConfig
from espressivo.models.phrase import PhraseConfig, PhraseRenderer
from espressivo.models.renderer import Renderer, RendererConfig
from espressivo.models.transformer import Transformer, TransformerConfig

MODEL_TYPES = {
    "perfrnn": (PerfRNNConfig, PerfRNN),
    "transformer": (TransformerConfig, Transformer),
    "renderer": (RendererConfig, Renderer),
    "cvrnn": (CVRNNConfig, CVRNN),
    "phrase": (PhraseConfig, PhraseRenderer),
    "embedder": (EmbedderConfig, Embedder),
}


def build_model(model_type: str, config: dict | str, **overrides):
    """A model from its type and a preset name or a config dict (plus overrides such as ``vocab_size``)."""
    if model_type not in MODEL_TYPES:
        raise EspressivoError(f"unknown model type {model_type!r} (available: {', '.join(MODEL_TYPES)})")
    config_cls, model_cls = MODEL_TYPES[model_type]
    if isinstance(config, str):
        cfg = config_cls.from_name(config, **overrides)
    else:
        known = set(config_cls.__dataclass_fields__)
        unknown = set(config) - known
        if unknown:
            raise EspressivoError(f"unknown {model_type} settings: {', '.join(sorted(unknown))}")
        cfg = config_cls(**(dict(config) | overrides))
    return model_cls(cfg)


def model_config_dict(model) -> dict:
    return asdict(model.config)


__all__ = [
    "CVRNN",
    "MODEL_TYPES",
    "CVRNNConfig",
    "Embedder",
    "EmbedderConfig",
    "PerfRNN",
    "PerfRNNConfig",
    "PhraseConfig",
    "PhraseRenderer",
    "Renderer",
    "RendererConfig",
    "Transformer",
    "TransformerConfig",
    "build_model",
    "model_config_dict",
]
