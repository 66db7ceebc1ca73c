"""Rendering speed on this CPU: seconds to render a ~10-minute score of about 6,000 notes; prints JSON.

    python benchmarks/render.py [--model renderer-small] [--notes 6000] [--threads 2] [--repeat 2] [--consensus K]
                                [--segment N] [--no-one-pass]

The score is the (n)ASAP test-split score with the most notes, repeated end to end until it has ``--notes``
notes (a real piece's texture, at the length asked).  Timed: reading nothing, only ``render`` (score
features, windowed encoder + decoder sampling, decoding to a performance) — the best of ``--repeat`` runs,
after one warm-up render of 256 notes.  The goal in the issue is <= 5 s for 6,000 notes on 2 cores.

``--consensus K``: each rendering the consensus of K samples (drawn side by side in the same batch).

The phrase renderer (``--model phrase-small``) predicts every window of the score in one batch, then samples
its curves with numpy: one timing ("windows").

A CVRNN (``--model cvrnn-small``) walks the score in one sequential pass (its state carries the
interpretation), so it is timed that way only.  For a renderer, twice: with the default side-by-side
segments, and in one sequential pass (``segment=0``, one run); for each, ``tempo_jumps`` compares the change
of local tempo between consecutive score onsets near the segment seams with the change everywhere (measured
against the default segment plan in both, as a control).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def tiled_score(notes: int):
    from espressivo.core import Score
    from espressivo.data.asap import AsapDataset
    from espressivo.io import read_score

    items = [i for i in AsapDataset(quiet=True).performances("test") if i.alignment_fits_score]
    paths = sorted({str(i.score_path) for i in items})
    scores = {p: read_score(p) for p in paths}
    path, base = max(scores.items(), key=lambda kv: len(kv[1]))
    n = base.notes
    span = float((n["onset_quarter"] + n["duration_quarter"]).max())
    copies = -(-notes // len(n))
    parts = []
    for k in range(copies):
        part = n.copy()
        part["onset_quarter"] += k * span
        part["onset_beat"] = base.beat_from_quarter(part["onset_quarter"] - k * span) + k * float(
            base.beat_from_quarter(span)
        )
        part["id"] = np.char.add(part["id"], f"-r{k}")
        parts.append(part)
    tiled = np.concatenate(parts)[:notes]
    return Score(tiled, base.time_signatures, base.key_signatures, base.tempo_markings, base.dynamics,
                 title=f"{base.title} x{copies}"), "/".join(Path(path).parts[-4:-1])  # fmt: skip


def main() -> None:
    from espressivo.families import family_of
    from espressivo.models.checkpoint import load_pretrained
    from espressivo.render import RenderOptions, render

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="renderer-small")
    parser.add_argument("--notes", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--consensus", type=int, default=RenderOptions().sampling.consensus, help="samples per rendering"
    )
    parser.add_argument("--no-one-pass", action="store_true", help="time the side-by-side segments only")
    parser.add_argument(
        "--segment", type=int, default=RenderOptions().sampling.segment, help="notes per side-by-side segment"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pretrained = load_pretrained(args.model)
    score, title = tiled_score(args.notes)
    warm = type(score)(score.notes[:256], score.time_signatures, score.key_signatures, score.tempo_markings)
    render(pretrained, warm, RenderOptions.of(seed=0))
    report = {"model": args.model, "score": title, "notes": len(score), "threads": args.threads, "goal_seconds": 5.0,
              "consensus": args.consensus, "segment": args.segment}  # fmt: skip
    segmented = "segment" in family_of(pretrained).controls  # note by note: segments side by side, or one pass
    one_pass = () if args.no_one_pass else (("one_pass", 0),)
    modes = (("segments", args.segment), *one_pass) if segmented else (("one_pass", 0),)  # else one pass by design
    for label, segment in modes:
        times, perf = [], None
        for k in range(args.repeat if segment or not segmented else 1):
            started = time.perf_counter()
            options = (
                RenderOptions.of(seed=k, segment=segment, consensus=args.consensus)
                if segmented
                else RenderOptions.of(seed=k)
            )
            perf = render(pretrained, score, options)[0].performance
            times.append(time.perf_counter() - started)
        best = min(times)
        report[label] = {
            "seconds": round(best, 3),
            "all_seconds": [round(t, 3) for t in times],
            "notes_per_second": round(len(score) / best, 1),
            "rendered_minutes": round(perf.end_sec / 60, 2),
        }
        if segmented:
            report[label]["tempo_jumps"] = seam_jumps(score, perf, RenderOptions.of(segment=args.segment))
    print(json.dumps(report, indent=1))


def seam_jumps(score, perf, options) -> dict:
    """Mean |change of log tempo| between consecutive score onsets near the segment seams (the middle of
    each overlap, +-8 onsets) and everywhere: a seam that jumped would stand out."""
    from espressivo.features.slots import render_tokenizer
    from espressivo.render.notewise import plan_segments, score_inputs
    from espressivo.render.tempo_map import anchors

    quarters, seconds = anchors(score, perf, max_qpm=1e4, min_qpm=1e-3)
    change = np.abs(np.diff(np.log(np.diff(quarters) / np.diff(seconds))))
    order = score_inputs(score, render_tokenizer()).order
    segments = plan_segments(len(score), options.sampling.segment, options.sampling.overlap)
    seam_q = [score.notes["onset_quarter"][order[start + options.sampling.overlap // 2]] for start, _ in segments[1:]]
    near = np.zeros(len(change), bool)
    for q in seam_q:
        k = int(np.searchsorted(quarters, q))
        near[max(k - 8, 0) : k + 8] = True
    return {
        "seams": len(seam_q),
        "near_seams": round(float(change[near].mean()), 4) if near.any() else None,
        "everywhere": round(float(change.mean()), 4),
    }


if __name__ == "__main__":
    main()
