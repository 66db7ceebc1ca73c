"""How different are two takes?  Tempo-curve and velocity correlation between two seeds of a renderer, by
sampling temperature, on every fourth (n)ASAP test piece (five), beside two pianists' tempo curves on the same
pieces; prints JSON.

    python tools/take_variety.py [--model phrase-small] [--temperatures 1,2,3]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from espressivo.core import TimeMap
from espressivo.data import AsapDataset
from espressivo.models.checkpoint import load_pretrained
from espressivo.render import RenderOptions, render


def log_beat_periods(tm: TimeMap, lo: float, hi: float) -> np.ndarray:
    """Log seconds per whole score beat between ``lo`` and ``hi``."""
    grid = np.arange(np.ceil(lo), np.floor(hi) + 1)
    return np.log(np.maximum(np.diff(tm(grid)), 1e-3))


def rendered_curve(score, perf) -> np.ndarray:
    tm = TimeMap.of(score.notes["onset_beat"][perf.notes["id"]], perf.notes["onset_sec"])
    return log_beat_periods(tm, tm.position[0], tm.position[-1])


def velocities(perf) -> np.ndarray:
    out = np.zeros(int(perf.notes["id"].max()) + 1)
    out[perf.notes["id"]] = perf.notes["velocity"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="phrase-small")
    parser.add_argument("--temperatures", default="1,2,3")
    args = parser.parse_args()
    pretrained = load_pretrained(args.model)
    by_piece: dict[str, list] = {}
    for item in AsapDataset(quiet=True).performances("test"):
        if item.alignment_fits_score:
            by_piece.setdefault(item.folder, []).append(item)
    folders = list(by_piece)[::4][:5]
    takes = {}
    for t in [float(x) for x in args.temperatures.split(",")]:
        tempo_r, velocity_r = [], []
        for folder in folders:
            score = by_piece[folder][0].load_score()
            a, b = (render(pretrained, score, RenderOptions.of(seed=s, temperature=t))[0].performance for s in (1, 2))
            tempo_r.append(np.corrcoef(rendered_curve(score, a), rendered_curve(score, b))[0, 1])
            velocity_r.append(np.corrcoef(velocities(a), velocities(b))[0, 1])
        takes[t] = {
            "tempo_curve_r": round(float(np.mean(tempo_r)), 3),
            "velocity_r": round(float(np.mean(velocity_r)), 3),
        }
    pianists = []
    for folder in folders:
        pair = by_piece[folder][:2]
        if len(pair) < 2:
            continue
        score = pair[0].load_score()
        maps = []
        for item in pair:
            perf = item.load_performance()
            s_idx, p_idx = item.load_alignment().indices(score, perf)
            maps.append(TimeMap.of(score.notes["onset_beat"][s_idx], perf.notes["onset_sec"][p_idx]))
        lo, hi = max(m.position[0] for m in maps), min(m.position[-1] for m in maps)
        pianists.append(np.corrcoef(*(log_beat_periods(m, lo, hi) for m in maps))[0, 1])
    print(json.dumps({"model": args.model, "pieces": folders, "two seeds, by temperature": takes,
                      "two pianists, tempo_curve_r": round(float(np.mean(pianists)), 3)}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
