"""Sweep rendering settings on a split without re-sampling; prints JSON.

Each score is sampled max(``--consensus``) times once per ``--temperature``, ``--tempo-guard`` and
``--estimate-tempo`` (1: a score without a metronome mark at the estimated tempo, 0: at 120 qpm); every
(consensus K, tempo drift, dynamics drift, chord spread, roll step) setting is then built from
the same samples (the consensus of the first K) and compared with every human performance as ``espressivo
evaluate render`` does: per note, tempo curves, and the JS distances of the distributions (seed ``--seed``).
The mean per setting, with deadpan and human rows for scale.

    python tools/sweep_render.py --split validation --consensus 1,4,8 --dynamics-drift 0,4,16 --temperature 1,0.8
"""

from __future__ import annotations

import argparse
import itertools
import json
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
from espressivo.render.base import RenderOptions, with_score_tempo
from espressivo.render.notewise import consensus_slots, performance, sample_slots, score_inputs


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


SAMPLING = ("temperature", "tempo_guard", "estimate_tempo")  # each value draws its own samples
SHAPING = ("consensus", "tempo_drift", "dynamics_drift", "chord_spread", "roll_step")


def grid(args, names) -> list[dict]:
    """Every combination of the listed values of ``names``."""
    values = [floats(getattr(args, name)) for name in names]
    combos = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    return [c | {"estimate_tempo": bool(c["estimate_tempo"])} if "estimate_tempo" in c else c for c in combos]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="renderer-small")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument(
        "--segment", type=int, default=RenderOptions().sampling.segment, help="notes per side-by-side segment"
    )
    parser.add_argument("--max-pieces", type=int, default=0)
    defaults = RenderOptions().flat()
    for name in SAMPLING + SHAPING:
        default = {"consensus": "1,8", "tempo_guard": "0"}.get(name, str(float(defaults[name])))
        parser.add_argument("--" + name.replace("_", "-"), default=default, help=f"comma-separated (default {default})")
    args = parser.parse_args()
    pretrained = load_pretrained(args.model)
    draws = grid(args, SAMPLING)
    shapes = grid(args, SHAPING)
    samples_needed = int(max(s["consensus"] for s in shapes))
    settings = [d | s for d in draws for s in shapes]
    base = RenderOptions.of(top_p=args.top_p, seed=args.seed, segment=args.segment)
    results: list[list] = [[] for _ in settings]
    stats: list[list] = [[] for _ in settings]
    deadpan, human, reference = [], [], []
    for piece in load_pieces(args.pairs, args.split, max_pieces=args.max_pieces):
        score = piece["score"]
        views = [h["view"] for h in piece["humans"]]
        reference += [note_statistics(h["performance"]) for h in piece["humans"]]
        tempos = [with_score_tempo(score, base.replace(**d)).timing.tempo for d in draws]  # the estimate, if any
        inputs = [score_inputs(score, pretrained.tokenizer, tempo) for tempo in tempos]
        samples = [sample_slots(pretrained, inputs[k], base.replace(**d), None, samples_needed)
                   for k, d in enumerate(draws)]  # fmt: skip
        dp = rendered_view(score, score.to_performance(velocity=64))
        deadpan += [compare(dp, v) for v in views]
        human += [compare(views[i], views[j]) for i in range(len(views)) for j in range(i + 1, len(views))]
        for k, setting in enumerate(settings):
            draw = draws.index({name: setting[name] for name in SAMPLING})
            options = base.replace(**setting | {"consensus": int(setting["consensus"]), "tempo": tempos[draw]})
            slots = consensus_slots(samples[draw][: options.sampling.consensus], inputs[draw].src[:, 1])
            perf = performance(slots, inputs[draw], score, options, pretrained)
            stats[k].append(note_statistics(perf))
            results[k] += [compare(rendered_view(score, perf), v) for v in views]

    def row(m: dict) -> dict:
        return {"velocity_r": m["velocity"]["r"], "velocity_mae": m["velocity"]["mae"], "timing_r": m["timing"]["r"],
                "timing_mae_ms": 1000 * m["timing"]["mae"], "micro_timing_r": m["micro_timing"]["r"],
                "micro_timing_mae_ms": 1000 * m["micro_timing"]["mae"], "articulation_r": m["articulation"]["r"],
                "tempo_r": m["tempo"]["r"], "tempo_curve_mae_bpm": m["tempo_curve_mae_bpm"],
                "tempo_curve_r": m["tempo_curve_r"]}  # fmt: skip

    out = {"split": args.split, "model": args.model, "seed": args.seed, "samples": samples_needed,
           "segment": args.segment, "deadpan": row(mean_of(deadpan)), "human": row(mean_of(human)),
           "settings": [setting | row(mean_of(results[k]))
                        | {"js_distance": {name: v["js_distance"]
                                           for name, v in distribution_scores(stats[k], reference).items()}}
                        for k, setting in enumerate(settings)]}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
