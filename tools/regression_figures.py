"""Measure the shipped models' regression figures (espressivo.evaluate.regression) and, with --write, record them
in each model's card (config.json ``regression``); tools/ship_model.py records them for a newly shipped model.

    python tools/regression_figures.py [NAME ...] [--write]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from espressivo.evaluate.regression import compare_figures, regression_figures
from espressivo.models.checkpoint import load_pretrained, shipped_models

ASAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "asap"
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "espressivo" / "checkpoints"


def record(name: str, figures: dict) -> None:
    path = PACKAGE / name / "config.json"
    config = json.loads(path.read_text())
    config["regression"] = figures
    path.write_text(json.dumps(config, indent=2))


def main(args: list[str]) -> None:
    write = "--write" in args
    names = [a for a in args if not a.startswith("--")] or shipped_models()
    for name in names:
        pretrained = load_pretrained(name)
        figures = regression_figures(pretrained, ASAP)
        print(name, json.dumps(figures))
        for line in compare_figures(pretrained.config.get("regression", {}), figures):
            print("  moved:", line)
        if write:
            record(name, figures)


if __name__ == "__main__":
    main(sys.argv[1:])
