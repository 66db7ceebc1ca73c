"""How pianists roll chords, measured on a split's aligned performances; prints JSON.

Two kinds of chord are measured: chords *marked* arpeggiated in the score (MusicXML ``<arpeggiate>``; all
marked notes at one score onset, both hands) and *wide* chords that are not marked — notes of one hand (staff)
at one onset spanning at least ``--span`` semitones.  For every such chord with at least two played notes:
whether it was rolled in pitch order (Pearson r of onset with pitch rank > 0.5, ranks counted in the marked
direction), and its step: the least-squares slope of onset over rank, in milliseconds and in beats of the local
tempo.  The median step of marked chords sets :data:`espressivo.render.rolls.ROLL_STEP_BEATS`; the wide chords show
whether unmarked chords should be rolled too (they are not: as often top note first as bottom first).

    python tools/fit_rolls.py --split train --span 15,16,17,19
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from espressivo.data.asap import AsapDataset
from espressivo.data.pairs import PairWindows
from espressivo.io import read_score
from espressivo.render.rolls import roll_groups


def measure(onset, period, pitch, direction, group) -> list[tuple[float, float, float]]:
    """(r of onset with rank, step in s, step in beats) of every group with two or more notes."""
    out = []
    for g in np.unique(group[group >= 0]):
        m = group == g
        if m.sum() < 2:
            continue
        rank = np.argsort(np.argsort(pitch[m] * direction[m])).astype(np.float64)
        t = onset[m]
        if np.ptp(t) <= 0:
            out.append((0.0, 0.0, 0.0))
            continue
        r = float(np.corrcoef(rank, t)[0, 1])
        slope = float(np.polyfit(rank, t, 1)[0])
        out.append((r, slope, slope / max(float(np.median(period[m])), 1e-3)))
    return out


def spread(steps: np.ndarray) -> float | None:
    """Standard deviation of the log of positive steps (how much they vary, as a factor)."""
    return round(float(np.std(np.log(np.maximum(steps, 1e-4)))), 3) if len(steps) else None


def summary(rows: list) -> dict:
    if not rows:
        return {"chords": 0}
    a = np.array(rows)
    rolled = a[:, 0] > 0.5
    return {
        "chords": len(a),
        "rolled_upwards": round(float(rolled.mean()), 3),
        "rolled_downwards": round(float((a[:, 0] < -0.5).mean()), 3),
        "median_step_ms_rolled": round(1000 * float(np.median(a[rolled, 1])), 1) if rolled.any() else None,
        "median_step_beats_rolled": round(float(np.median(a[rolled, 2])), 4) if rolled.any() else None,
        "spread_log_step_ms": spread(a[rolled, 1]),
        "spread_log_step_beats": spread(a[rolled, 2]),
        "median_step_ms_all": round(1000 * float(np.median(a[:, 1])), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--span", default="15,16,17,19")
    args = parser.parse_args()
    spans = [int(s) for s in args.span.split(",")]
    windows = PairWindows(args.pairs, args.split)
    items = {i.name: i for i in AsapDataset(quiet=True).performances(args.split)}
    scores: dict = {}
    rows: dict[str, list] = {"marked": []} | {f"wide_{s}": [] for s in spans}
    for entry in windows.entries:
        item = items.get(entry["name"])
        if item is None:
            continue
        path = str(item.score_path)
        if path not in scores:
            scores[path] = read_score(path, unfold=True)
        score = scores[path]
        arrays = windows.load(entry)
        if not np.array_equal(arrays["score_ids"], score.notes["id"]):
            continue
        played = arrays["expression"]["matched"]
        onset = np.where(played, arrays["performed"]["onset_sec"], np.nan)
        period = arrays["expression"]["beat_period"]
        n = score.notes
        for label, span in [("marked", 0)] + [(f"wide_{s}", s) for s in spans]:
            group, direction = roll_groups(n, marked=label == "marked", wide_span=span)
            group = np.where(played, group, -1)
            rows[label] += measure(onset, period, n["pitch"], direction, group)
    report = {"split": args.split, "performances": len(windows.entries)}
    print(json.dumps(report | {k: summary(v) for k, v in rows.items()}, indent=1))


if __name__ == "__main__":
    main()
