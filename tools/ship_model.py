"""Copy a trained run's best checkpoint into the package as a shipped model (fp16 safetensors), with its
test evaluation and training summary in config.json (``default`` picks the lowest test NLL).

    python tools/ship_model.py RUN_DIR NAME EVALUATION.json [SYSTEM]

EVALUATION.json is the report of the evaluation the model's family is measured by (a renderer: ``espressivo
evaluate render``, SYSTEM the label of this run's model in it, default NAME; a language model: ``espressivo
evaluate lm``; an embedder: ``espressivo evaluate embed``); the family's ``card`` says which figures are kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from espressivo.evaluate.regression import regression_figures
from espressivo.families import family
from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.train.tasks import default_task
from espressivo.viz.training import read_log

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "espressivo" / "checkpoints"
ASAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "asap"


DATA = {
    "lm": "(n)ASAP train + SUPRA, performance-rnn tokens",
    "events": "(n)ASAP train + SUPRA performances, aria events encoded on the fly (Aria's augmentation, FIM)",
    "denoise": "(n)ASAP train + SUPRA performances, note tokens, masked denoising",
    "render": "aligned (n)ASAP train pairs (espressivo data pairs)",
    "cvrnn": "aligned (n)ASAP train pairs (espressivo data pairs), CVRNN classes",
    "phrase": "aligned (n)ASAP train pairs (espressivo data pairs), beat curves and note deviations",
    "contrastive": "(n)ASAP train + SUPRA performances, two slices per performance (NT-Xent)",
    "classify": "labelled (n)ASAP train performances, one slice per file",
}


def main(run: str, name: str, evaluation: str, system: str = "") -> None:
    run_dir = Path(run)
    pretrained = load_pretrained(run_dir / "best")
    report = json.loads(Path(evaluation).read_text())
    log = read_log(run_dir / "log.csv")
    train = pretrained.config.get("train", {})
    task = train.get("task", "auto")
    if task == "auto":
        task = default_task(pretrained.model_type, train.get("data", ""), train.get("label", ""))
    extra = {
        "name": name,
        "evaluation": family(pretrained.model_type).part("card")(report, system or name),
        "training": {
            "data": DATA.get(task, task),
            "steps": int(log["step"][-1]),
            # the log counts tokens per stretch of a resumed run: the whole run's from its steps
            "tokens": int(log["step"][-1]) * int(train.get("batch_size", 1)) * int(train.get("grad_accum", 1))
            * int(train.get("seq_len", 1)) if train.get("seq_len") else int(log["tokens"][-1]),
            "best_validation_nll": min(log["val_loss"]) if log["val_loss"] else None,
            "config": {k: v for k, v in train.items() if k not in ("data", "out")},
        },
    }
    if pretrained.config.get("sampling"):  # a phrase renderer's calibration (tools/calibrate_phrase.py)
        extra["sampling"] = pretrained.config["sampling"]
    out = save_checkpoint(
        PACKAGE / name, pretrained.model, pretrained.model_type, pretrained.tokenizer, dtype="float16", extra=extra
    )
    config = json.loads((out / "config.json").read_text())  # the figures of the fp16 weights, as shipped:
    config["regression"] = regression_figures(load_pretrained(out), ASAP)  # what tests/test_regression.py checks
    (out / "config.json").write_text(json.dumps(config, indent=2))
    size = (out / "model.safetensors").stat().st_size
    print(f"shipped {name}: {size / 2**20:.1f} MiB at {out}")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(*sys.argv[1:])
