"""A dummy renderer family for ``tests/test_families.py``: the score played as written at one learned loudness.

It trains with the phrase renderer's task (it reads that task's beat loudness targets and nothing else), so it
needs a config with the settings that task hands every model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from espressivo.families.base import Family


@dataclass(frozen=True)
class LoudnessConfig:
    slot_sizes: tuple[int, ...] = ()
    time_step_ms: float = 1.0
    n_features: int = 0
    n_phrase_features: int = 0
    PRESETS: ClassVar[dict] = {"tiny": {}}

    @classmethod
    def from_name(cls, name: str, **overrides):
        return replace(cls(**cls.PRESETS[name]), **overrides)


class Loudness(nn.Module):
    def __init__(self, config: LoudnessConfig):
        super().__init__()
        self.config = config
        self.level = nn.Parameter(torch.zeros(()))  # the piece's loudness, (velocity - 64) / 16

    def forward(self, level, level_ok, **batch):
        weight = level_ok.float()
        loss = ((self.level - level) ** 2 * weight).sum() / weight.sum().clamp(min=1)
        return self.level, loss


def render_loudness(pretrained, score, options, variations: int = 1):
    from espressivo.render.base import Rendering

    velocity = int(np.clip(round(64 + 16 * float(pretrained.model.level.detach())), 1, 127))
    performance = score.to_performance(options.timing.tempo, velocity=velocity)
    return [Rendering(performance, score, options) for _ in range(variations)]


FAMILY = Family(
    name="loudness",
    kind="renderer",
    summary="loudness — the score as written at one learned loudness (a test family)",
    config="tests.dummy_family:LoudnessConfig",
    model="tests.dummy_family:Loudness",
    tasks=("phrase",),
    render="tests.dummy_family:render_loudness",
    card="espressivo.evaluate.cards:renderer_card",
)
