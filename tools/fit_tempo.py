"""Fit the tempo estimate of ``espressivo.render.score_tempo`` for scores without a metronome mark: the log of
the pianists' mean tempo (median over a piece's performances) against the score's fast notes and tempo word,
over the (n)ASAP train scores without a mark; reports the mean |log error| of the written tempo (120 qpm) and of
the estimate per split.

    python tools/fit_tempo.py [--pairs data/pairs]      # prints JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from espressivo.evaluate.render import load_pieces
from espressivo.render.base import mean_qpm, written_qpm
from espressivo.render.score_tempo import estimated_qpm, fit_tempo, has_metronome_mark, tempo_features

SPLITS = ("train", "validation", "test")


def pieces(pairs: Path, split: str) -> list[dict]:
    """Per score of the split: its features, written tempo, whether it is marked, the pianists' tempo."""
    out = []
    for piece in load_pieces(pairs, split):
        score = piece["score"]
        quarters = score.notes["onset_quarter"]
        qpm = [mean_qpm(quarters[a["expression"]["matched"]], a["performed"]["onset_sec"][a["expression"]["matched"]])
               for a in piece["pairs"]]  # fmt: skip
        out.append({"score": score, "name": piece["name"], "features": tempo_features(score),
                    "written": written_qpm(score), "marked": has_metronome_mark(score),
                    "pianists": float(np.median(qpm))})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--ridge", type=float, default=1.0)
    args = parser.parse_args()
    data = {split: pieces(args.pairs, split) for split in SPLITS}
    train = [p for p in data["train"] if not p["marked"]]
    coefficients = fit_tempo(np.array([p["features"] for p in train]), np.log([p["pianists"] for p in train]),
                             args.ridge)  # fmt: skip
    report: dict = {"fit_on": f"train scores without a metronome mark ({len(train)})", "ridge": args.ridge,
                    "coefficients": dict(zip(("intercept", "fast_notes", "word"),
                                             np.round(coefficients, 4).tolist(), strict=True))}  # fmt: skip
    for split, items in data.items():
        marked = [p for p in items if p["marked"]]
        unmarked = [p for p in items if not p["marked"]]

        def error(items, qpm) -> float:
            return round(float(np.mean([abs(np.log(qpm(p) / p["pianists"])) for p in items])), 3) if items else None

        report[split] = {
            "marked": {"scores": len(marked), "written_log_error": error(marked, lambda p: p["written"])},
            "unmarked": {
                "scores": len(unmarked),
                "written_log_error": error(unmarked, lambda p: p["written"]),
                "estimate_log_error": error(unmarked, lambda p: estimated_qpm(p["score"], coefficients)),
                "pieces": {p["name"]: {"pianists": round(p["pianists"], 1), "estimate":
                                       round(estimated_qpm(p["score"], coefficients), 1)} for p in unmarked},
            },
        }  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
