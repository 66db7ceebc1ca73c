"""Copy a trained run's best checkpoint into the package as a shipped model (fp16 safetensors), with its
test evaluation and training summary in config.json (``default`` picks the lowest test NLL).

    python tools/ship_model.py RUN_DIR NAME EVALUATION.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.viz.training import read_log

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "espressivo" / "checkpoints"


def main(run: str, name: str, evaluation: str) -> None:
    run_dir = Path(run)
    pretrained = load_pretrained(run_dir / "best")
    report = json.loads(Path(evaluation).read_text())
    log = read_log(run_dir / "log.csv")
    train = pretrained.config.get("train", {})
    extra = {
        "name": name,
        "evaluation": {
            "split": report["split"],
            "test_nll_nats_per_token": round(report["nll_nats_per_token"], 4),
            "bits_per_second": round(report["bits_per_second"], 2),
            "grammar_error_rate": report.get("grammar_error_rate"),
        },
        "training": {
            "data": "(n)ASAP train + SUPRA, performance-rnn tokens",
            "steps": int(log["step"][-1]),
            "tokens": int(log["tokens"][-1]),
            "best_validation_nll": min(log["val_loss"]) if log["val_loss"] else None,
            "config": {k: v for k, v in train.items() if k not in ("data", "out")},
        },
    }
    out = save_checkpoint(
        PACKAGE / name, pretrained.model, pretrained.model_type, pretrained.tokenizer, dtype="float16", extra=extra
    )
    size = (out / "model.safetensors").stat().st_size
    print(f"shipped {name}: {size / 2**20:.1f} MiB at {out}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
