"""The generation protocol of ``espressivo evaluate lm``: what a language model plays, beside real music of the
same split.

- **Likelihood**: every performance scored in consecutive windows of the model's trained context, each without
  context before it (an event model's windows start at a note, as in training): nats per id, **bits per second of
  music** (comparable across tokenizers) and the NLL by position in the window.
- **Improvisation**: ``samples`` unconditional samples of ``seconds`` against real windows of the same length
  (from the middle of the split's performances).
- **Continuation**: the first ``prompt_seconds`` of one performance of each of ``pieces`` pieces (spread over the
  composers), continued for ``continue_seconds`` with ``seeds`` seeds, against what the pianist played next.
- **Infill** (event models): the same openings with ``gap`` seconds after the prompt played again, against the
  real gap; the seams are the onset rate and register 2 s either side of each join.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from espressivo.core import Performance
from espressivo.evaluate import music
from espressivo.generate import generate_performances
from espressivo.generate.infill import infill
from espressivo.tokenizers.aria import AriaTokenizer

SEAM_SEC = 2.0
POSITION_BINS = (0, 64, 128, 256, 512, 768, 1024, 2048, 4096)


def _tiles(tok, perf: Performance, context: int) -> tuple[list[np.ndarray], float]:
    """An event model's windows over a whole performance: each encoded from the first note the previous ones did
    not hold (BOS, then at most ``context - 1`` ids), as training windows are; and the seconds of music."""
    onset = np.sort(perf.notes["onset_sec"])
    windows, start = [], 0
    while start < len(onset):
        ids, _, _ = tok.encode_events(perf, float(onset[start]))
        ids = np.concatenate([tok.start_ids(), ids])[:context]
        windows.append(ids)
        _, kind, _, _ = tok.parse(ids)
        start += max(int(np.count_nonzero(kind == 1)), 1)  # the notes this window held whole
    return windows, float(onset[-1] - onset[0]) if len(onset) else 0.0


def likelihood(pretrained, performances: list[Performance], context: int, batch: int = 8) -> dict:
    """Nats per id, bits per second of music and NLL by position, in windows of ``context`` ids."""
    import torch

    model, tok = pretrained.model, pretrained.tokenizer
    pad = tok.vocab["PAD"].start
    windows, seconds = [], 0.0
    for perf in performances:
        if isinstance(tok, AriaTokenizer):
            tiles, covered = _tiles(tok, perf, context)
            windows += tiles
            seconds += covered
        else:
            ids = tok.encode(perf).astype(np.int64)
            seconds += float(tok.time_advance(ids).sum())
            windows += [ids[s : s + context] for s in range(0, len(ids), context) if len(ids[s : s + context]) >= 2]
    sums, counts = np.zeros(context), np.zeros(context)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(windows), batch):
            rows = windows[start : start + batch]
            data = np.full((len(rows), max(len(r) for r in rows)), pad, np.int64)
            for i, r in enumerate(rows):
                data[i, : len(r)] = r
            data = torch.from_numpy(data)
            logits, _ = model(data[:, :-1])
            targets = data[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
            keep = (targets != pad).float()
            sums[: nll.size(1)] += (nll * keep).sum(0).numpy()
            counts[: nll.size(1)] += keep.sum(0).numpy()
    total = float(sums.sum())
    by_position = {}
    for low, high in itertools.pairwise(POSITION_BINS):
        if low < context and counts[low:high].sum():
            by_position[f"{low}-{min(high, context)}"] = round(float(sums[low:high].sum() / counts[low:high].sum()), 4)
    quarter = context * 3 // 4
    return {
        "nll_nats_per_token": total / max(counts.sum(), 1),
        "bits_per_second": total / math.log(2) / max(seconds, 1e-9),
        "nll_by_position": by_position,
        "nll_last_quarter": round(float(sums[quarter:].sum() / max(counts[quarter:].sum(), 1)), 4),
        "nll_256_512": round(float(sums[256:512].sum() / max(counts[256:512].sum(), 1)), 4) if context > 256 else None,
        "tokens_scored": int(counts.sum()),
        "seconds_of_music": round(seconds, 1),
        "windows": len(windows),
        "context": context,
    }


def openings(items, performances: list[Performance], count: int, need_sec: float) -> list[int]:
    """Indices of one performance of each of ``count`` pieces, spread over the composers, long enough."""
    by_composer: dict[str, list[int]] = {}
    seen_pieces = set()
    for i, (item, perf) in enumerate(zip(items, performances, strict=True)):
        piece = (item.composer, item.title)
        if piece in seen_pieces or not len(perf) or perf.notes["onset_sec"].max() < need_sec:
            continue
        seen_pieces.add(piece)
        by_composer.setdefault(item.composer, []).append(i)
    chosen, round_ = [], 0
    while len(chosen) < count and any(len(v) > round_ for v in by_composer.values()):
        for composer in sorted(by_composer):
            if len(by_composer[composer]) > round_ and len(chosen) < count:
                chosen.append(by_composer[composer][round_])
        round_ += 1
    return chosen


def _gen_stats(perf: Performance, start: float, end: float) -> dict:
    return music.stats(music.window(perf, start, end), end - start)


def protocol(pretrained, items, performances: list[Performance], config, *, samples: int = 10, seconds: float = 30.0,
             pieces: int = 5, seeds: int = 3, prompt_seconds: float = 10.0, continue_seconds: float = 20.0,
             gap: float = 8.0, num_threads: int = 1) -> dict:  # fmt: skip
    """Improvisation, continuation and (event models) infill against the real music (see the module docstring)."""
    from dataclasses import replace

    report: dict = {}
    if samples:
        generated = generate_performances(pretrained, config, seconds=seconds, variations=samples,
                                          num_threads=num_threads)  # fmt: skip
        real = []
        for perf in performances:
            end = float(perf.notes["onset_sec"].max()) if len(perf) else 0.0
            if end >= seconds + 10:
                start = (end - seconds) / 2
                real.append(_gen_stats(perf, start, start + seconds))
        gen_rows = [_gen_stats(p, 0.0, seconds) for p in generated]
        report["improvisation"] = _versus(gen_rows, real)
        report["improvisation"]["seconds"] = seconds
        report["_improvised"] = generated
    chosen = openings(items, performances, pieces, prompt_seconds + continue_seconds)
    cont_rows, cont_rel, real_rows, real_rel, examples = [], [], [], [], []
    for i in chosen:
        perf = performances[i]
        head = perf.slice(0, prompt_seconds, clip=False)
        prompt_stats = _gen_stats(perf, 0.0, prompt_seconds)
        truth = _gen_stats(perf, prompt_seconds, prompt_seconds + continue_seconds)
        real_rows.append(truth)
        real_rel.append(music.relation(prompt_stats, truth))
        for seed in range(seeds):
            out = generate_performances(pretrained, replace(config, seed=config.seed + seed), prompt_performance=head,
                                        prompt_cut_sec=prompt_seconds, seconds=continue_seconds,
                                        num_threads=num_threads)[0]  # fmt: skip
            after = _gen_stats(out, prompt_seconds, prompt_seconds + continue_seconds)
            cont_rows.append(after)
            cont_rel.append(music.relation(prompt_stats, after))
            if seed == 0:
                examples.append((items[i], perf, out))
    report["continuation"] = _versus(cont_rows, real_rows)
    report["continuation"]["relation"] = {"generated": music.relations_summary(cont_rel),
                                          "real": music.relations_summary(real_rel)}  # fmt: skip
    report["continuation"]["pieces"] = [f"{items[i].composer} {items[i].title} ({items[i].performer})" for i in chosen]
    report["_continued"] = examples
    if isinstance(pretrained.tokenizer, AriaTokenizer) and gap > 0:
        report["infill"] = _infill(pretrained, items, performances, chosen, config, seeds, prompt_seconds, gap,
                                   num_threads)  # fmt: skip
    return report


def _infill(pretrained, items, performances, chosen, config, seeds, start, gap, num_threads) -> dict:
    from dataclasses import replace

    end = start + gap
    gen_rows, real_rows, gen_seams, real_seams = [], [], [], []
    for i in chosen:
        perf = performances[i]
        real_rows.append(_gen_stats(perf, start, end))
        real_seams.append(_seams(perf, start, end))
        takes = infill(pretrained, replace(config, seed=config.seed), perf, start, end, variations=seeds,
                       num_threads=num_threads)  # fmt: skip
        for take in takes:
            gen_rows.append(_gen_stats(take, start, end))
            gen_seams.append(_seams(take, start, end))
    out = _versus(gen_rows, real_rows)
    out["gap"] = [start, end]
    out["seams"] = {"generated": _seam_summary(gen_seams), "real": _seam_summary(real_seams)}
    return out


def _seams(perf: Performance, start: float, end: float) -> dict:
    """Onset-rate and register changes across the two joins (2 s either side)."""
    spans = {"before": (start - SEAM_SEC, start), "first": (start, start + SEAM_SEC),
             "last": (end - SEAM_SEC, end), "after": (end, end + SEAM_SEC)}  # fmt: skip
    s = {k: _gen_stats(perf, max(a, 0.0), b) for k, (a, b) in spans.items()}
    return {
        "rate_jump_in": s["first"]["notes_per_sec"] - s["before"]["notes_per_sec"],
        "rate_jump_out": s["after"]["notes_per_sec"] - s["last"]["notes_per_sec"],
        "register_jump_in": s["first"]["mean_pitch"] - s["before"]["mean_pitch"],
        "register_jump_out": s["after"]["mean_pitch"] - s["last"]["mean_pitch"],
    }


def _seam_summary(rows: list[dict]) -> dict:
    return {k: round(float(np.nanmean([abs(r[k]) for r in rows])), 3) for k in rows[0]} if rows else {}


def _versus(generated: list[dict], real: list[dict]) -> dict:
    g, r = music.summary(generated), music.summary(real)
    out = {
        "generated": {k: v for k, v in g.items() if k != "ioi_hist"},
        "real": {k: v for k, v in r.items() if k != "ioi_hist"},
    }
    if g and r:
        out["ioi_js"] = round(music.js_distance(g["ioi_hist"], r["ioi_hist"]), 4)
    return out
