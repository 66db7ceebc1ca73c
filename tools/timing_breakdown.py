"""Where the per-note timing MAE of ``espressivo evaluate render`` comes from: its share per kind of note.

The codec's ``timing`` measures each note against its onset group's mean time, so it is chord asynchrony, the
place of grace notes, and the rare single notes the codec's monotone time map moves.  For each system (deadpan,
the renderer under each ``--chord-spread`` x ``--roll-step`` setting, one sample per score as ``render`` draws
it, and the pianists leave-one-out) the mean over (rendering, human) pairs of each kind's share of the pair's
MAE, in ms — the shares add up to the timing MAE of the evaluation:

- ``single``: the only note at its score onset;
- ``chord``: a chord note (another note at its onset, no grace note there, no arpeggio sign);
- ``rolled``: a note of a chord the score marks arpeggiated;
- ``grace``: a grace note;
- ``grace_group``: another note at the onset of a grace note (its main note, the other hand).

    python tools/timing_breakdown.py --split test --chord-spread 1,0 --roll-step 0.11,0   # prints JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from espressivo.errors import EspressivoError
from espressivo.evaluate.render import load_pieces, rendered_view
from espressivo.models.checkpoint import load_pretrained
from espressivo.render.base import RenderOptions, with_score_tempo
from espressivo.render.notewise import performance, sample_slots, score_inputs
from espressivo.render.rolls import roll_groups

KINDS = ("single", "chord", "rolled", "grace", "grace_group")


def note_kinds(score) -> np.ndarray:
    """Index into ``KINDS`` of every score note."""
    notes = score.notes
    _, group = np.unique(np.rint(notes["onset_quarter"] * 1e4).astype(np.int64), return_inverse=True)
    group = group.reshape(-1)
    size = np.bincount(group)
    with_grace = np.bincount(group, weights=notes["is_grace"].astype(np.float64)) > 0
    kind = np.where(size[group] > 1, 1, 0)
    kind = np.where(roll_groups(notes)[0] >= 0, 2, kind)
    kind = np.where(with_grace[group], 4, kind)
    return np.where(notes["is_grace"], 3, kind)


def shares(view, human, kind) -> np.ndarray:
    """Each kind's share of the pair's timing MAE (s), over the notes both played."""
    both = view.played & human.played
    error = np.abs(view.values["timing"] - human.values["timing"])[both]
    return np.bincount(kind[both], weights=error, minlength=len(KINDS)) / max(both.sum(), 1)


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="renderer-small")
    parser.add_argument("--split", default="validation", choices=("train", "validation", "test"))
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chord-spread", type=floats, default=[1.0])
    parser.add_argument("--roll-step", type=floats, default=[RenderOptions().shaping.roll_step])
    args = parser.parse_args()
    try:
        print(json.dumps(breakdown(args), indent=1))
    except EspressivoError as error:  # a missing model or pairs folder: one line, exit 2
        parser.error(str(error))


def breakdown(args) -> dict:
    pretrained = load_pretrained(args.model)
    settings = [(s, r) for s in args.chord_spread for r in args.roll_step]
    names = ["deadpan"] + [f"{args.model} spread {s:g} roll {r:g}" for s, r in settings] + ["human"]
    total = {name: np.zeros(len(KINDS)) for name in names}
    pairs = dict.fromkeys(names, 0)
    counts = np.zeros(len(KINDS), np.int64)
    for piece in load_pieces(args.pairs, args.split):
        score, views = piece["score"], [h["view"] for h in piece["humans"]]
        kind = note_kinds(score)
        counts += np.bincount(kind, minlength=len(KINDS))
        options = with_score_tempo(score, RenderOptions.of(seed=args.seed))
        inputs = score_inputs(score, pretrained.tokenizer, options.timing.tempo)
        slots = sample_slots(pretrained, inputs, options)[0]  # one draw, re-used by every setting
        rendered = {"deadpan": rendered_view(score, score.to_performance(velocity=64))}
        for name, (spread, roll) in zip(names[1:-1], settings, strict=True):
            perf = performance(slots, inputs, score, options.replace(chord_spread=spread, roll_step=roll), pretrained)
            rendered[name] = rendered_view(score, perf)
        for name, view in rendered.items():
            for human in views:
                total[name] += shares(view, human, kind)
                pairs[name] += 1
        for i, a in enumerate(views):
            for j, b in enumerate(views):
                if i != j:
                    total["human"] += shares(a, b, kind)
                    pairs["human"] += 1
    report = {"split": args.split, "model": args.model, "seed": args.seed,
              "score_notes": dict(zip(KINDS, counts.tolist(), strict=True)), "timing_mae_ms": {}}  # fmt: skip
    for name in names:
        ms = 1000 * total[name] / max(pairs[name], 1)
        report["timing_mae_ms"][name] = {k: round(float(v), 2) for k, v in zip(KINDS, ms, strict=True)}
        report["timing_mae_ms"][name]["total"] = round(float(ms.sum()), 2)
    return report


if __name__ == "__main__":
    main()
