"""``espressivo train``: any model, from a YAML config (+ ``--key value`` overrides)."""

from __future__ import annotations

import json as json_module
import os
from pathlib import Path

from espressivo.cli.app import app


@app.command("train")
def train_command(config: Path, resume: bool = False, overrides: list[str] | None = None) -> None:
    """Train a model with the shared engine: CONFIG.yaml holds the settings (see espressivo/train/engine.py),
    any --key value after it overrides one (e.g. --max-steps 500 --lr 3e-4); --resume continues OUT/last.

    Args:
        config: YAML file of training settings
        resume: continue the run in its output folder exactly where its last checkpoint left it
    """
    from espressivo.train import TrainConfig, train

    settings = TrainConfig.from_file(config, overrides)
    result = train(settings, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json_module.dumps(result))
