"""Rendering and generation on a busy machine: beside CPU-burning processes, with torch's default threads (the
previous behaviour) and with the thread count espressivo now chooses; prints JSON.

    python benchmarks/busy.py [--burners 2] [--notes 2000] [--tokens 300] [--repeat 2]

``--burners N`` busy-loop processes run for the whole measurement (0: an idle machine).  Timed: the note-by-note
renderer (renderer-small) on the first ``--notes`` notes of the test split's largest score, the phrase renderer
(the default) on the same, and ``generate`` of ``--tokens`` tokens with the default language model; each with
``threads`` = torch's default (every core) and the default choice (one thread for note-by-note sampling and
token loops; torch's setting for the phrase renderer's batched windows).  Best of ``--repeat``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402


def _burn() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def _best(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(min(times), 3)


def main() -> None:
    import torch

    from espressivo.core import Score
    from espressivo.generate import SamplingConfig, generate_performances
    from espressivo.models.checkpoint import load_pretrained
    from espressivo.render import RenderOptions, render
    from espressivo.render.dispatch import DEFAULT_RENDERER

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from render import tiled_score  # benchmarks/render.py

    parser = argparse.ArgumentParser()
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    score, title = tiled_score(args.notes)
    score = Score(score.notes, score.time_signatures, score.key_signatures, score.tempo_markings, score.dynamics)
    renderers = {name: load_pretrained(name) for name in ("renderer-small", DEFAULT_RENDERER)}
    lm = load_pretrained("default")
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.burners)]
    for b in burners:
        b.start()
    report = {"cores": cores, "burners": args.burners, "score": title, "notes": len(score), "tokens": args.tokens}
    try:
        for name, pretrained in renderers.items():
            row = {}
            for label, threads in (("all_cores", cores), ("default_choice", 0)):
                torch.set_num_threads(cores)  # torch's own default, as before
                options = RenderOptions.of(seed=0, threads=threads)
                row[label] = _best(lambda p=pretrained, o=options: render(p, score, o), args.repeat)
            report[f"render {name} (s)"] = row
        row = {}
        config = SamplingConfig(temperature=1.0, top_p=0.95, seed=0)
        for label, threads in (("all_cores", cores), ("default_choice", 1)):
            torch.set_num_threads(cores)
            seconds = _best(lambda t=threads: generate_performances(lm, config, seconds=0, max_tokens=args.tokens,
                                                                     num_threads=t), args.repeat)  # fmt: skip
            row[label] = round(args.tokens / seconds, 1)
        report["generate tokens/s"] = row
    finally:
        for b in burners:
            b.terminate()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
