"""Copy a trained run's best checkpoint into the package as a shipped model (fp16 safetensors), with its
test evaluation and training summary in config.json (``default`` picks the lowest test NLL).

    python tools/ship_model.py RUN_DIR NAME EVALUATION.json [SYSTEM]

For a renderer or a CVRNN, EVALUATION.json is an ``espressivo evaluate render`` report and SYSTEM the label
of this run's model in it (default: NAME); for an embedder, an ``espressivo evaluate embed`` report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.viz.training import read_log

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "espressivo" / "checkpoints"


def _evaluation(pretrained, report: dict, system: str) -> dict:
    if pretrained.model_type in ("renderer", "phrase"):
        entry = report["systems"][system]
        return {
            "split": report["split"],
            "distribution_overall": entry["distribution"]["overall"],
            "per_note": entry["per_note"],
            "shape": entry.get("shape"),
            "primed": report.get("primed", {}).get(system, {}).get("model"),
        }
    if pretrained.model_type == "cvrnn":
        entry = report["systems"][system]
        primed = report.get("primed_cvrnn", {}).get(system, {})
        return {
            "split": report["split"],
            "distribution_overall": entry["distribution"]["overall"],
            "per_note": entry["per_note"],
            "primed": {k: primed.get(k) for k in ("z_zero", "z_prior", "starting_points")},
            "latent_consistency": report.get("latent_consistency", {}).get(system, {}).get("same_sign_share"),
            "latent_dimensions": report.get("latent_consistency", {}).get(system, {}).get("dimensions"),
            "kl_per_dimension": report.get("kl_per_dimension", {}).get(system),
        }
    if pretrained.model_type == "embedder":  # an `espressivo evaluate embed` report
        tasks = {t: e["results"][system]["all"] for t, e in report["tasks"].items()}
        return {"split": "test", "probe": tasks, "retrieval": report["retrieval"][system],
                "snippet_retrieval": report.get("snippet_retrieval", {}).get(system),
                "max_chunks": report["max_chunks"]}  # fmt: skip
    return {
        "split": report["split"],
        "test_nll_nats_per_token": round(report["nll_nats_per_token"], 4),
        "bits_per_second": round(report["bits_per_second"], 2),
        "nll_by_position": report.get("nll_by_position"),
        "context": report.get("context"),
        "sampling": report.get("sampling"),
        **{part: report[part] for part in ("improvisation", "continuation", "infill") if part in report},
    }


DATA = {
    "lm": "(n)ASAP train + SUPRA, performance-rnn tokens",
    "denoise": "(n)ASAP train + SUPRA performances, note tokens, masked denoising",
    "render": "aligned (n)ASAP train pairs (espressivo data pairs)",
    "cvrnn": "aligned (n)ASAP train pairs (espressivo data pairs), CVRNN classes",
    "phrase": "aligned (n)ASAP train pairs (espressivo data pairs), beat curves and note deviations",
    "contrastive": "(n)ASAP train + SUPRA performances, two slices per performance (NT-Xent)",
}


def main(run: str, name: str, evaluation: str, system: str = "") -> None:
    run_dir = Path(run)
    pretrained = load_pretrained(run_dir / "best")
    report = json.loads(Path(evaluation).read_text())
    log = read_log(run_dir / "log.csv")
    train = pretrained.config.get("train", {})
    task = train.get("task", "lm")
    if task == "auto":
        task = {"renderer": "render", "cvrnn": "cvrnn", "phrase": "phrase"}.get(pretrained.model_type, "lm")
    extra = {
        "name": name,
        "evaluation": _evaluation(pretrained, report, system or name),
        "training": {
            "data": DATA.get(task, task),
            "steps": int(log["step"][-1]),
            "tokens": int(log["tokens"][-1]),
            "best_validation_nll": min(log["val_loss"]) if log["val_loss"] else None,
            "config": {k: v for k, v in train.items() if k not in ("data", "out")},
        },
    }
    if pretrained.config.get("sampling"):  # a phrase renderer's calibration (tools/calibrate_phrase.py)
        extra["sampling"] = pretrained.config["sampling"]
    out = save_checkpoint(
        PACKAGE / name, pretrained.model, pretrained.model_type, pretrained.tokenizer, dtype="float16", extra=extra
    )
    size = (out / "model.safetensors").stat().st_size
    print(f"shipped {name}: {size / 2**20:.1f} MiB at {out}")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(*sys.argv[1:])
