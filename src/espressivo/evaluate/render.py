"""Evaluating renderers against human pianists on (n)ASAP (``espressivo evaluate render``).

Systems: ``deadpan`` (the score at its written tempo, velocity 64, no pedal), each renderer given, and
``human`` (leave-one-out: each performance against the other performances of its piece — the ceiling).
Every renderer plays every test score once (``seed``); it is compared with every human performance of it.

(a) **Distributions** (Pianist Transformer's protocol): corpus histograms of velocity (0..127, 128 bins),
    duration (0-500 ms, 2 ms bins), IOI between consecutive onsets (0-200 ms, 1 ms bins; values outside
    the windows dropped) and the 16 patterns of the four binary pedal samples per note; for each, the
    Jensen-Shannon *distance* (base 2, the square root of the divergence, as scipy's) and the histogram
    intersection (sum of minima); ``overall`` = mean over the four.  Renderers and deadpan are compared with
    all human performances; for the human row one performance per piece (the first) against the others.
(b) **Per note**, through the score alignment: Pearson r and MAE with the human for velocity (MIDI),
    onset timing deviation (s, the codec's ``timing``: each note against its onset group's mean time — chord
    asynchrony and grace notes), micro-timing (s, CVRNN's onset deviation: each note against the time map
    smoothed over 2 beats, :func:`micro_timing` — the timing of notes within the phrase), articulation
    (``articulation_log``) and local tempo (beats per minute), over the notes the human played; mean over
    (rendering, human) pairs.  A constant prediction (deadpan velocity, timing) has no correlation: r = 0 by
    convention.
    **Primed** (CVRNN's Table 2 protocol): at starting points every ``stride`` notes, the renderer is primed
    with the human's 20 notes before the point and samples the next notes; Pearson r (pooled over starting
    points) for velocity, onset deviation, duration and tempo over the next 10 and 40 notes.
(c) **Tempo curves**: the tempo of every whole score beat, measured over the beat from the performance's
    time map (:func:`beat_tempo_curve`); Pearson r of its log and MAE in beats per minute, mean over pairs.

``between_seeds``: the same per-note comparison between two renderings of each score (seeds ``seed`` and
``seed + 1``) — how different two performances of one model are (r = 1 and MAE = 0 would be identical).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from espressivo.data.asap import AsapDataset
from espressivo.data.pairs import PairWindows
from espressivo.errors import EspressivoError
from espressivo.evaluate.metrics import (
    compare,
    distribution_scores,
    mean_of,
    note_statistics,
    note_view,
    rendered_view,
)
from espressivo.evaluate.primed import PAPER_CVRNN_10
from espressivo.evaluate.shape import shape_of, summarise, with_pedal_ratio
from espressivo.families import family_of, resolve
from espressivo.features.slots import performed_slots, render_tokenizer
from espressivo.io import read_midi, read_score
from espressivo.render import RenderOptions, render
from espressivo.render.notewise import score_inputs


# ---------------------------------------------------------------------------- the whole evaluation
def load_pieces(pairs_root: Path, split: str, root=None, max_pieces: int = 0) -> list[dict]:
    """The split's pieces: score, human performances (MIDI), expression features and slots per pair."""

    tok = render_tokenizer()
    windows = PairWindows(pairs_root, split)
    asap = {i.name: i for i in AsapDataset(Path(root) / "asap" if root else None, quiet=True).performances(split)}
    by_piece: dict[str, list[dict]] = {}
    for entry in windows.entries:
        item = asap.get(entry["name"])
        if item is not None:
            by_piece.setdefault(str(item.score_path), []).append(entry | {"item": item})
    pieces = []
    for score_path, entries in sorted(by_piece.items()):
        score = read_score(score_path, unfold=True)
        inputs = score_inputs(score, tok)
        piece = {"name": entries[0]["item"].folder, "score": score, "inputs": inputs, "humans": [],
                 "midi_score_path": Path(score_path).with_name("midi_score.mid"),
                 "human_slots": [], "pairs": [],
                 "beats": score.notes["onset_beat"][inputs.order]}  # fmt: skip
        for entry in entries:
            arrays = windows.load(entry)
            if len(arrays["score_ids"]) != len(score) or not np.array_equal(arrays["score_ids"], score.notes["id"]):
                continue  # pairs built from another version of the score
            o = inputs.order
            p = arrays["performed"]
            played = (p["onset_sec"][o], p["duration_sec"][o], score.notes["pitch"][o], p["velocity"][o], p["pedal"][o])
            slots = performed_slots(*played, tok)
            piece["humans"].append(
                {
                    "name": entry["name"],
                    "performance": read_midi(entry["item"].performance_path),
                    "view": note_view(score, arrays["expression"]),
                }
            )
            piece["human_slots"].append((slots, arrays["expression"]["matched"][o]))
            piece["pairs"].append(arrays)  # score order, as built (the CVRNN's protocol reads them)
        if piece["humans"]:
            pieces.append(piece)
        if max_pieces and len(pieces) >= max_pieces:
            break
    if not pieces:
        raise EspressivoError(f"no {split} pieces with pairs in {pairs_root}")
    return pieces


def evaluate_renderers(
    models: dict[str, object],
    pieces: list[dict],
    options=None,
    *,
    primed: bool = True,
    stride: int = 400,
    score_source: str = "musicxml",
    progress=None,
    pairs: Path | None = None,
    split: str = "",
) -> tuple[dict, dict]:
    """The report, and the per-note statistics of every system (for :func:`plot_histograms`).  ``options``:
    the renderers' :class:`~espressivo.render.RenderOptions`, as ``espressivo render`` takes them (default: its
    defaults).  ``score_source="midi"``: renderers and deadpan read each piece's ``midi_score.mid`` instead
    (no markings); their notes are not the aligned ones, so only distributions and shape are measured.
    ``pairs``, ``split``: where the pieces' pairs were read (a family's protocols may read its own windows)."""

    if score_source not in ("musicxml", "midi"):
        raise EspressivoError("score_source must be musicxml or midi")
    from_midi = score_source == "midi"
    if from_midi:
        primed = False

    options = options or RenderOptions()
    seed, temperature, top_p = options.sampling.seed, options.sampling.temperature, options.sampling.top_p
    systems: dict[str, dict] = {"deadpan": {"stats": [], "pairs": []}}
    systems |= {name: {"stats": [], "pairs": [], "seconds": 0.0, "notes": 0} for name in models}
    human_gen, human_ref, human_pairs = [], [], []
    human_piece_shapes: list[dict] = []
    piece_curves: dict[str, dict] = {}
    all_humans = [note_statistics(h["performance"]) for p in pieces for h in p["humans"]]
    for piece in pieces:
        score = piece["score"]
        views = [h["view"] for h in piece["humans"]]
        stats = [note_statistics(h["performance"]) for h in piece["humans"]]
        if len(stats) > 1:
            human_gen.append(stats[0])
            human_ref += stats[1:]
            for i in range(len(views)):
                for j in range(i + 1, len(views)):
                    human_pairs.append(compare(views[i], views[j]))
        human_shapes = [
            shape_of(score, h["performance"], pair["expression"]["velocity"] * 127.0, pair["expression"]["matched"])
            for h, pair in zip(piece["humans"], piece["pairs"], strict=True)
        ]
        human_pedal = [s["pedal_per_minute"] for s in human_shapes]
        for i, shape in enumerate(human_shapes):  # each pianist against the others of the piece
            human_piece_shapes.append(with_pedal_ratio(shape, human_pedal[:i] + human_pedal[i + 1 :]))
        curves = piece_curves.setdefault(piece["name"], {"human": [v.beat_curve for v in views]})
        if from_midi:
            score = read_score(piece["midi_score_path"], unfold=True)
        rendered = {"deadpan": score.to_performance(velocity=64)}  # notes' id = score rows
        import time

        for name, pretrained in models.items():
            started = time.perf_counter()
            rendered[name] = render(pretrained, score, options)[0].performance
            systems[name]["seconds"] += time.perf_counter() - started
            systems[name]["notes"] += len(score)
        for name, perf in rendered.items():
            systems[name]["stats"].append(note_statistics(perf))
            systems[name].setdefault("shape", []).append(with_pedal_ratio(shape_of(score, perf), human_pedal))
            if from_midi:
                continue
            view = rendered_view(score, perf)
            curves[name] = view.beat_curve
            systems[name]["pairs"] += [compare(view, h) for h in views]
            if name in models:  # how much two seeds differ: the same comparison between two renderings
                other = render(models[name], score, options.replace(seed=seed + 1))[0].performance
                systems[name].setdefault("seeds", []).append(compare(rendered_view(score, other), view))
        if progress:
            progress(piece["name"])
    report: dict = {"pieces": len(pieces), "human_performances": len(all_humans), "systems": {}}
    for name, s in systems.items():
        entry = {"distribution": distribution_scores(s["stats"], all_humans), "per_note": mean_of(s["pairs"])}
        entry["shape"] = summarise(s.get("shape", []))
        if s.get("seeds"):
            entry["between_seeds"] = mean_of(s["seeds"])
        if "seconds" in s:
            entry["render_seconds"] = round(s["seconds"], 2)
            entry["notes_per_second"] = round(s["notes"] / max(s["seconds"], 1e-9), 1)
        report["systems"][name] = entry
    report["systems"]["human"] = {
        "distribution": distribution_scores(human_gen, human_ref) if human_gen else {},
        "per_note": mean_of(human_pairs),
        "shape": summarise(human_piece_shapes),
    }
    report["tempo_curves"] = {
        name: {system: np.exp(c).round(2).tolist() if system != "human" else [np.exp(x).round(2).tolist() for x in c]
               for system, c in curves.items()}
        for name, curves in piece_curves.items()
    }  # fmt: skip
    settings = {"primed": primed, "stride": stride, "seed": seed, "temperature": temperature, "top_p": top_p,
                "tempo_guard": options.timing.tempo_guard, "pairs": pairs, "split": split}  # fmt: skip
    for name, m in models.items():  # each family's own protocols (families/: `evaluations`)
        for protocol in family_of(m).evaluations:
            for key, value in resolve(protocol)(m, pieces, settings).items():
                report.setdefault(key, {})[name] = value
    if primed:
        report["primed_paper_cvrnn_10_notes"] = PAPER_CVRNN_10
    stats = {"human": all_humans} | {name: s["stats"] for name, s in systems.items()}
    return report, stats
