"""Sweep rendering settings on a split without re-sampling; prints JSON.

Each score is sampled max(``--consensus``) times once per ``--temperature`` and ``--tempo-guard``; every
(consensus K, tempo drift, dynamics drift, chord spread) setting is then built from the same samples (the
consensus of the first K) and compared with every human performance as ``espressivo evaluate render`` does:
per note, tempo curves, and the JS distances of the distributions (seed ``--seed``).  The mean per setting,
with deadpan and human rows for scale.

    python tools/sweep_render.py --split validation --consensus 1,4,8 --dynamics-drift 0,4,16 --temperature 1,0.8
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from espressivo.evaluate.render import (
    compare,
    distribution_scores,
    load_pieces,
    mean_of,
    note_statistics,
    rendered_view,
)
from espressivo.models.checkpoint import load_pretrained
from espressivo.render.render import RenderOptions, consensus_slots, performance, sample_slots


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="renderer-small")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--temperature", default="1")
    parser.add_argument("--tempo-guard", default="0")
    parser.add_argument("--segment", type=int, default=RenderOptions.segment, help="notes per side-by-side segment")
    parser.add_argument("--consensus", default="1,8")
    parser.add_argument("--tempo-drift", default="4")
    parser.add_argument("--dynamics-drift", default="0")
    parser.add_argument("--chord-spread", default="1")
    parser.add_argument("--max-pieces", type=int, default=0)
    args = parser.parse_args()
    pretrained = load_pretrained(args.model)
    ks = [int(k) for k in floats(args.consensus)]
    draws = [(T, g) for T in floats(args.temperature) for g in floats(args.tempo_guard)]
    settings = [(T, g, k, t, d, c) for T, g in draws for k in ks for t in floats(args.tempo_drift)
                for d in floats(args.dynamics_drift) for c in floats(args.chord_spread)]  # fmt: skip
    base = RenderOptions(top_p=args.top_p, seed=args.seed, segment=args.segment)
    results: dict = {s: [] for s in settings}
    stats: dict = {s: [] for s in settings}
    deadpan, human, reference = [], [], []
    for piece in load_pieces(args.pairs, args.split, max_pieces=args.max_pieces):
        score, inputs = piece["score"], piece["inputs"]
        views = [h["view"] for h in piece["humans"]]
        reference += [note_statistics(h["performance"]) for h in piece["humans"]]
        samples = {(T, g): sample_slots(pretrained, inputs, replace(base, temperature=T, tempo_guard=g), None,
                                        max(ks)) for T, g in draws}  # fmt: skip
        dp = rendered_view(score, score.to_performance(velocity=64))
        deadpan += [compare(dp, v) for v in views]
        human += [compare(views[i], views[j]) for i in range(len(views)) for j in range(i + 1, len(views))]
        for T, g, k, t, d, c in settings:
            slots = consensus_slots(samples[(T, g)][:k], inputs.src[:, 1])
            options = replace(base, temperature=T, tempo_guard=g, tempo_drift=t, dynamics_drift=d, chord_spread=c,
                              consensus=k)  # fmt: skip
            perf = performance(slots, inputs, score, options, pretrained)
            stats[(T, g, k, t, d, c)].append(note_statistics(perf))
            results[(T, g, k, t, d, c)] += [compare(rendered_view(score, perf), v) for v in views]

    def row(m: dict) -> dict:
        return {"velocity_r": m["velocity"]["r"], "velocity_mae": m["velocity"]["mae"], "timing_r": m["timing"]["r"],
                "timing_mae_ms": 1000 * m["timing"]["mae"], "articulation_r": m["articulation"]["r"],
                "tempo_r": m["tempo"]["r"], "tempo_curve_mae_bpm": m["tempo_curve_mae_bpm"],
                "tempo_curve_r": m["tempo_curve_r"]}  # fmt: skip

    out = {"split": args.split, "model": args.model, "seed": args.seed, "samples": max(ks), "segment": args.segment,
           "deadpan": row(mean_of(deadpan)), "human": row(mean_of(human)),
           "settings": [{"temperature": T, "tempo_guard": g, "consensus": k, "tempo_drift": t, "dynamics_drift": d,
                         "chord_spread": c} | row(mean_of(results[s]))
                        | {"js_distance": {name: v["js_distance"]
                                           for name, v in distribution_scores(stats[s], reference).items()}}
                        for s in settings for T, g, k, t, d, c in [s]]}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
