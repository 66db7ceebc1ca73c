"""Fit the marked dynamics level of ``espressivo.render.dynamics``: performed velocity against the velocity of
the score's dynamics marking, over every matched note of the (n)ASAP train split.

    python tools/fit_dynamics_level.py [--pairs data/pairs]      # prints JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from espressivo.evaluate.render import load_pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    marking, played = [], []
    pieces = load_pieces(args.pairs, args.split)
    for piece in pieces:
        for slots, matched in piece["human_slots"]:
            marking.append(piece["inputs"].src[matched, 2])
            played.append(slots[matched, 2])
    slope, intercept = np.polyfit(np.concatenate(marking).astype(float), np.concatenate(played).astype(float), 1)
    levels = {int(m): round(intercept + slope * m, 1) for m in np.unique(np.concatenate(marking))}
    report = {"split": args.split, "pieces": len(pieces), "notes": int(sum(map(len, played))),
              "intercept": round(intercept, 2), "slope": round(slope, 4), "level_by_marking": levels}  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
