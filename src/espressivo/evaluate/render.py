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

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from espressivo.core import Alignment, Performance, Score
from espressivo.errors import EspressivoError
from espressivo.evaluate.lm import js_distance
from espressivo.evaluate.shape import shape_of, summarise, with_pedal_ratio
from espressivo.render.timing import DEFAULT_TEMPO_GUARD

PAPER_CVRNN_10 = {"velocity": 0.72, "onset_deviation": 0.07, "duration": 0.77, "tempo": 0.21}
HIST_SPECS = {
    "velocity": (0, 128, 128),
    "duration_ms": (0, 500, 250),
    "ioi_ms": (0, 200, 200),
    "pedal_pattern": (0, 16, 16),
}
NOTE_FEATURES = ("velocity", "timing", "micro_timing", "articulation", "tempo")
MICRO_FWHM_BEATS = 2.0  # CVRNN's tempo curve: Gaussian regression of the time map, FWHM 2 beats


# ---------------------------------------------------------------------------- (a) distributions
def note_statistics(perf: Performance) -> dict[str, np.ndarray]:
    """Velocity, duration (ms), IOI (ms) and the 4-sample binary pedal pattern of every note."""
    from espressivo.features.slots import render_tokenizer

    tok = render_tokenizer()
    if len(perf) == 0:
        return {k: np.zeros(0) for k in HIST_SPECS}
    block = tok.encode(perf).reshape(-1, tok.block).astype(np.int64)
    starts = np.array([s for s, _ in tok.slot_ranges])
    block = block - starts
    pedal = block[:, 4:8]
    return {
        "velocity": tok._level_velocity(block[:, 2]).astype(np.float64),
        "duration_ms": block[:, 3] * tok.config.time_step_ms,
        "ioi_ms": block[1:, 1] * tok.config.time_step_ms,
        "pedal_pattern": (pedal * np.array([8, 4, 2, 1])).sum(1).astype(np.float64),
    }


def histogram(values: np.ndarray, name: str) -> np.ndarray:
    low, high, bins = HIST_SPECS[name]
    return np.histogram(values[(values >= low) & (values < high)], bins=bins, range=(low, high))[0]


def distribution_scores(generated: list[dict], reference: list[dict]) -> dict:
    out, js, inter = {}, [], []
    for name in HIST_SPECS:
        g = histogram(np.concatenate([s[name] for s in generated]), name).astype(np.float64)
        r = histogram(np.concatenate([s[name] for s in reference]), name).astype(np.float64)
        d = js_distance(g, r)
        i = float(np.minimum(g / max(g.sum(), 1), r / max(r.sum(), 1)).sum())
        out[name] = {"js_distance": d, "intersection": i}
        js.append(d)
        inter.append(i)
    out["overall"] = {"js_distance": float(np.mean(js)), "intersection": float(np.mean(inter))}
    return out


# ---------------------------------------------------------------------------- (b, c) per note
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    sa, sb = a.std(), b.std()
    if sa < 1e-12 or sb < 1e-12:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


@dataclass
class NoteView:
    """Per score note: velocity, timing, articulation_log, tempo (BPM) and whether it was played."""

    values: dict[str, np.ndarray]
    played: np.ndarray
    beat_curve: np.ndarray  # log tempo at every score beat


def note_view(score: Score, expression_features: np.ndarray) -> NoteView:
    f = expression_features
    beat = score.notes["onset_beat"]
    order, group, _, seconds = time_map_of(beat, f["beat_period"])
    onset = np.empty(len(f))
    onset[order] = seconds[group] - f["timing"][order]  # the performed onsets (the codec's, origin 0)
    values = {
        "velocity": f["velocity"] * 127.0,
        "timing": f["timing"],
        "micro_timing": micro_timing(beat, onset, f["matched"]),
        "articulation": f["articulation_log"],
        "tempo": 60.0 / np.maximum(f["beat_period"], 1e-6),
    }
    return NoteView(values, f["matched"].copy(), beat_tempo_curve(beat, f["beat_period"]))


def time_map_of(onset_beat: np.ndarray, beat_period: np.ndarray):
    """The performance's time map from the codec's beat periods: ``(order, group, beats, seconds)`` — notes
    sorted by score onset, each sorted note's onset group, and each group's score beat and time (from 0).  The
    per-group beat periods integrate to the codec's ``eq_onsets`` (monotone)."""
    from espressivo.features.expression import onset_groups

    order = np.argsort(onset_beat, kind="stable")
    beats, period = onset_beat[order], beat_period[order]
    group, starts = onset_groups(beats)
    u = beats[starts]
    bp = np.bincount(group, weights=period) / np.bincount(group)
    return order, group, u, np.concatenate([[0.0], np.cumsum(np.maximum(bp[:-1], 1e-4) * np.diff(u))])


def micro_timing(onset_beat: np.ndarray, onset_sec: np.ndarray, played: np.ndarray,
                 fwhm_beats: float = MICRO_FWHM_BEATS) -> np.ndarray:  # fmt: skip
    """Each played note's onset deviation from the smooth time map, in seconds (positive = early; 0 where not
    played): CVRNN's micro-onset timing, whose ideal onset comes from a tempo curve fitted by Gaussian
    regression over a full width at half maximum of 2 beats.  Here: a local-linear regression of the onset
    groups' mean times on their score beats, Gaussian weights of that width (times the group's note count),
    evaluated at each group.  A steady or steadily changing tempo leaves 0; a note played ahead of its
    neighbours' line stands out, however the tempo drifts over the piece."""
    out = np.zeros(len(onset_beat))
    beat, t = np.asarray(onset_beat, np.float64)[played], np.asarray(onset_sec, np.float64)[played]
    if len(beat) < 2:
        return out
    key = np.rint(beat * 1e4).astype(np.int64)
    unique, group = np.unique(key, return_inverse=True)
    group = group.reshape(-1)
    x, count = unique / 1e4, np.bincount(group).astype(np.float64)
    y = np.bincount(group, weights=t) / count
    sigma = fwhm_beats / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    fit = np.empty(len(x))
    for lo in range(0, len(x), 256):  # blocks of groups against the groups within 4 sigma of them
        hi = min(lo + 256, len(x))
        a, b = np.searchsorted(x, x[lo] - 4 * sigma), np.searchsorted(x, x[hi - 1] + 4 * sigma, side="right")
        dx = x[None, a:b] - x[lo:hi, None]
        w = np.exp(-0.5 * (dx / sigma) ** 2) * count[None, a:b]
        s0, s1, s2 = w.sum(1), (w * dx).sum(1), (w * dx * dx).sum(1)
        t0, t1 = w @ y[a:b], (w * dx) @ y[a:b]
        det = s0 * s2 - s1 * s1
        steady = det > 1e-9 * np.maximum(s0 * s2, 1e-300)
        fit[lo:hi] = np.where(steady, (s2 * t0 - s1 * t1) / np.where(steady, det, 1.0), t0 / s0)
    out[np.flatnonzero(played)] = fit[group] - t
    return out


def beat_tempo_curve(onset_beat: np.ndarray, beat_period: np.ndarray) -> np.ndarray:
    """Log tempo (beats per minute) of every whole score beat, measured over the beat.

    The per-group beat periods integrate to the performance's time map (score beat -> seconds, monotone:
    the codec's ``eq_onsets``); each beat's tempo is 60 / (time at beat k + 1 - time at beat k).  A beat
    of fast notes is one measurement instead of several noisy local ones, so two pianists' curves are
    compared on their rubato, not on how evenly they spaced a run.
    """
    _, _, u, seconds = time_map_of(onset_beat, beat_period)
    grid = np.arange(math.ceil(u[0]), math.floor(u[-1]) + 1, dtype=np.float64)
    if len(grid) < 2:
        return np.zeros(0)
    return np.log(60.0 / np.maximum(np.diff(np.interp(grid, u, seconds)), 1e-4))


def rendered_view(score: Score, perf: Performance) -> NoteView:
    """A rendering (notes' ``id`` = score rows) seen through the expression codec."""
    from espressivo.features import encode_expression

    alignment = Alignment.from_pairs(score.notes["id"][perf.notes["id"]], perf.notes["id"])
    return note_view(score, encode_expression(score, perf, alignment).features)


def compare(a: NoteView, b: NoteView) -> dict:
    """Per-note r and MAE of ``a`` against the human ``b`` over the notes both played; tempo-curve r."""
    both = a.played & b.played
    out = {}
    for name in NOTE_FEATURES:
        x, y = a.values[name][both], b.values[name][both]
        out[name] = {"r": pearson(x, y), "mae": float(np.abs(x - y).mean()) if len(x) else float("nan")}
    out["tempo_curve_r"] = pearson(a.beat_curve, b.beat_curve)
    # per-note tempo MAE is dominated by near-simultaneous onsets (tiny local beat periods); the beat-level
    # curve gives a readable one
    diff = np.abs(np.exp(a.beat_curve) - np.exp(b.beat_curve))
    out["tempo_curve_mae_bpm"] = float(diff.mean()) if len(diff) else float("nan")
    return out


def mean_of(results: list[dict]) -> dict:
    if not results:
        return {}
    out = {}
    for name in NOTE_FEATURES:
        out[name] = {k: float(np.nanmean([r[name][k] for r in results])) for k in ("r", "mae")}
    out["tempo_curve_r"] = float(np.nanmean([r["tempo_curve_r"] for r in results]))
    out["tempo_curve_mae_bpm"] = float(np.nanmean([r["tempo_curve_mae_bpm"] for r in results]))
    out["pairs"] = len(results)
    return out


# ---------------------------------------------------------------------------- primed protocol
def _segment_features(slots: np.ndarray, src: np.ndarray, beats: np.ndarray, tok) -> dict[str, np.ndarray]:
    """:func:`segment_features` of consecutive notes given as renderer slots."""
    step = tok.config.time_step_ms / 1000.0
    return segment_features(np.cumsum(slots[:, 1] * step), slots[:, 3] * step, slots[:, 2], beats)


def segment_features(onset, duration, velocity, beats) -> dict[str, np.ndarray]:
    """Velocity, onset deviation, duration and tempo of the notes of a segment.

    Tempo: beats per minute between consecutive distinct score onsets (zero-order hold); onset deviation:
    the note's onset minus its onset group's mean onset plus the group's lag behind the straight line
    through the segment's group onsets — computed the same way for the model and the human."""
    onset = np.asarray(onset, dtype=np.float64)
    key = np.rint(beats * 1e4).astype(np.int64)
    _, group = np.unique(key, return_inverse=True)
    count = np.bincount(group)
    g_onset = np.bincount(group, weights=onset) / count
    g_beat = np.bincount(group, weights=beats) / count
    if len(g_onset) > 1:
        bpm = 60.0 * np.diff(g_beat) / np.maximum(np.diff(g_onset), 1e-3)
        bpm = np.append(bpm, bpm[-1])
        fit = np.polyfit(g_beat, g_onset, 1)
        lag = g_onset - np.polyval(fit, g_beat)
    else:
        bpm, lag = np.full(1, np.nan), np.zeros(1)
    return {
        "velocity": np.asarray(velocity, dtype=np.float64),
        "onset_deviation": onset - g_onset[group] + lag[group],
        "duration": np.asarray(duration, dtype=np.float64),
        "tempo": bpm[group],
    }


def scale_time_slots(slots: np.ndarray, factor: float, sizes) -> np.ndarray:
    """Time slot classes (IOI, duration) stretched by ``factor`` (kept within 0.2..5), within their ``sizes``."""
    factor = float(np.clip(factor, 0.2, 5.0)) if np.isfinite(factor) and factor > 0 else 1.0
    return np.clip(np.rint(slots * factor), 0, np.asarray(sizes) - 1).astype(slots.dtype)


def primed_protocol(
    pretrained,
    pieces: list[dict],
    *,
    prime: int = 20,
    horizons=(10, 40),
    stride: int = 400,
    seed: int = 0,
    temperature: float = 1.0,
    top_p: float = 0.95,
    tempo_guard: float = DEFAULT_TEMPO_GUARD,
) -> dict:
    """Pooled Pearson r over starting points; also the same protocol with another human as the prediction."""
    from espressivo.features.slots import plain_slots
    from espressivo.render.render import RenderOptions, plays_at_given_tempo, render_slots, signed_chords

    tok = pretrained.tokenizer
    at_performed_tempo = plays_at_given_tempo(pretrained)
    signed = signed_chords(pretrained)
    time_sizes = np.array(pretrained.model.config.slot_sizes)[[1, 3]]
    horizon = max(horizons)
    pooled = {h: {k: ([], []) for k in PAPER_CVRNN_10} for h in horizons}
    human_pooled = {h: {k: ([], []) for k in PAPER_CVRNN_10} for h in horizons}
    points = 0
    for piece in pieces:
        inputs, beats = piece["inputs"], piece["beats"]
        humans = piece["human_slots"]
        n = len(inputs.src)
        for h_index, (human, ok) in enumerate(humans):
            for start in range(prime, n - horizon, stride):
                seg = slice(start - prime, start + horizon)
                if not ok[start : start + horizon].all():
                    continue
                sub = type(inputs)(inputs.order[seg], inputs.src[seg].copy(), inputs.features[seg])
                plain = human[seg][:prime].copy()
                plain[0, 1] = 0
                # a signed renderer is primed with the human's signed chord timing (a chord note first in the
                # segment keeps its offset from the chord's first note, as in training windows)
                primed = piece["human_signed"][h_index][seg][:prime].copy() if signed else plain
                if sub.src[0, 1] > 0:
                    primed[0, 1] = 0
                sub.src[0, 1] = 0
                if at_performed_tempo:  # the score at the tempo of the prime (what the model was trained on)
                    factor = plain[1:, 1].sum() / max(sub.src[1:prime, 1].sum(), 1)
                    sub.src[:, 1:4:2] = scale_time_slots(sub.src[:, 1:4:2], factor, time_sizes)
                length = max(64, prime + horizon)
                options = RenderOptions(temperature, top_p, seed + points, window=length, context=length // 4,
                                        tempo_guard=tempo_guard)  # fmt: skip
                out = render_slots(pretrained.model, sub, options, primed)[0]
                if signed:
                    out = plain_slots(out, inputs.src[seg][:, 1], tok)
                truth = human[seg].copy()
                truth[0, 1] = 0
                pred_f = _segment_features(out, inputs.src[seg], beats[seg], tok)
                true_f = _segment_features(truth, inputs.src[seg], beats[seg], tok)
                other = humans[(h_index + 1) % len(humans)] if len(humans) > 1 else None
                other_f = None
                if other is not None and other[1][start : start + horizon].all():
                    o = other[0][seg].copy()
                    o[0, 1] = 0
                    other_f = _segment_features(o, inputs.src[seg], beats[seg], tok)
                for hz in horizons:
                    window = slice(prime, prime + hz)
                    for k in PAPER_CVRNN_10:
                        pooled[hz][k][0].append(pred_f[k][window])
                        pooled[hz][k][1].append(true_f[k][window])
                        if other_f is not None:
                            human_pooled[hz][k][0].append(other_f[k][window])
                            human_pooled[hz][k][1].append(true_f[k][window])
                points += 1

    return {"starting_points": points, "model": pooled_pearson(pooled), "human": pooled_pearson(human_pooled)}


def pooled_pearson(table: dict) -> dict:
    """``{horizon: {feature: (predicted parts, true parts)}}`` -> ``{"H_notes": {feature: r}}``, Pearson r over
    the concatenated parts (non-finite pairs left out)."""
    out = {}
    for hz, feats in table.items():
        row = {}
        for k, (a, b) in feats.items():
            if a:
                x, y = np.concatenate(a), np.concatenate(b)
                ok = np.isfinite(x) & np.isfinite(y)
                row[k] = pearson(x[ok], y[ok])
        out[f"{hz}_notes"] = row
    return out


# ---------------------------------------------------------------------------- the whole evaluation
def load_pieces(pairs_root: Path, split: str, root=None, max_pieces: int = 0) -> list[dict]:
    """The split's pieces: score, human performances (MIDI), expression features and slots per pair."""
    from espressivo.data.asap import AsapDataset
    from espressivo.data.pairs import PairWindows
    from espressivo.features.slots import performed_slots, render_tokenizer
    from espressivo.io import read_midi, read_score
    from espressivo.render.render import score_inputs

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
                 "human_slots": [], "human_signed": [], "pairs": [],
                 "beats": score.notes["onset_beat"][inputs.order]}  # fmt: skip
        for entry in entries:
            arrays = windows.load(entry)
            if len(arrays["score_ids"]) != len(score) or not np.array_equal(arrays["score_ids"], score.notes["id"]):
                continue  # pairs built from another version of the score
            o = inputs.order
            p = arrays["performed"]
            played = (p["onset_sec"][o], p["duration_sec"][o], score.notes["pitch"][o], p["velocity"][o], p["pedal"][o])
            slots = performed_slots(*played, tok)
            piece["human_signed"].append(performed_slots(*played, tok, anchor=inputs.src[:, 1] > 0))
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
) -> tuple[dict, dict]:
    """The report, and the per-note statistics of every system (for :func:`plot_histograms`).  ``options``:
    the renderers' :class:`~espressivo.render.RenderOptions`, as ``espressivo render`` takes them (default: its
    defaults).  ``score_source="midi"``: renderers and deadpan read each piece's ``midi_score.mid`` instead
    (no markings); their notes are not the aligned ones, so only distributions and shape are measured."""
    from espressivo.io import read_score
    from espressivo.render.render import RenderOptions, render

    if score_source not in ("musicxml", "midi"):
        raise EspressivoError("score_source must be musicxml or midi")
    from_midi = score_source == "midi"
    if from_midi:
        primed = False

    options = options or RenderOptions()
    seed, temperature, top_p = options.seed, options.temperature, options.top_p
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
                other = render(models[name], score, replace(options, seed=seed + 1))[0].performance
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
    if primed:
        from espressivo.evaluate.cvrnn import latent_consistency, primed_cvrnn

        settings = {"stride": stride, "seed": seed, "temperature": temperature, "top_p": top_p}
        report["primed"] = {
            name: primed_protocol(m, pieces, **settings, tempo_guard=options.tempo_guard)
            for name, m in models.items()
            if m.model_type == "renderer"  # a note-by-note renderer can be primed with a pianist's notes
        }
        report["primed_cvrnn"] = {
            name: primed_cvrnn(m, pieces, **settings) for name, m in models.items() if m.model_type == "cvrnn"
        }
        report["latent_consistency"] = {
            name: latent_consistency(m, pieces, seed=seed, temperature=temperature, top_p=top_p)
            for name, m in models.items()
            if m.model_type == "cvrnn"
        }
        report["primed_paper_cvrnn_10_notes"] = PAPER_CVRNN_10
    stats = {"human": all_humans} | {name: s["stats"] for name, s in systems.items()}
    return report, stats


RENDER_SETTINGS = ("seed", "temperature", "top_p", "tempo_smoothing", "tempo_drift", "dynamics_drift", "chord_spread",
                   "consensus", "tempo_guard", "roll_step", "estimate_tempo", "expressiveness")  # fmt: skip


def markdown_table(report: dict) -> str:
    names = list(report["systems"])
    settings = ", ".join(f"{k.replace('_', ' ')} {report[k]}" for k in RENDER_SETTINGS if k in report)
    lines = [f"Split {report['split']}; renderers rendered with {settings}.", ""] if "split" in report else []
    lines += [
        "| system | overall JS dist. ↓ | overall intersection ↑ | velocity r ↑ | velocity MAE ↓ | timing r ↑ "
        "| timing MAE (ms) ↓ | micro-timing r ↑ | micro-timing MAE (ms) ↓ | articulation r ↑ | tempo r ↑ "
        "| tempo-curve MAE (BPM) ↓ | tempo-curve r ↑ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        s = report["systems"][name]
        d = s["distribution"].get("overall", {})
        p = s["per_note"]
        if not p:
            continue
        lines.append(
            f"| {name} | {d.get('js_distance', float('nan')):.4f} | {d.get('intersection', float('nan')):.4f} "
            f"| {p['velocity']['r']:.3f} | {p['velocity']['mae']:.2f} | {p['timing']['r']:.3f} "
            f"| {1000 * p['timing']['mae']:.1f} | {p['micro_timing']['r']:.3f} | {1000 * p['micro_timing']['mae']:.1f} "
            f"| {p['articulation']['r']:.3f} | {p['tempo']['r']:.3f} | {p['tempo_curve_mae_bpm']:.1f} "
            f"| {p['tempo_curve_r']:.3f} |"
        )
    seeds = {n: s["between_seeds"] for n, s in report["systems"].items() if s.get("between_seeds")}
    if seeds:
        lines += ["", "Two seeds of one model against each other (how much performances differ):", "",
                  "| system | velocity r | velocity MAE | timing MAE (ms) | micro-timing r | micro-timing MAE (ms) "
                  "| articulation r | tempo-curve MAE (BPM) | tempo-curve r |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, b in seeds.items():
            lines.append(
                f"| {name} | {b['velocity']['r']:.3f} | {b['velocity']['mae']:.2f} | {1000 * b['timing']['mae']:.1f} "
                f"| {b['micro_timing']['r']:.3f} | {1000 * b['micro_timing']['mae']:.1f} "
                f"| {b['articulation']['r']:.3f} | {b['tempo_curve_mae_bpm']:.1f} | {b['tempo_curve_r']:.3f} |"
            )
    shapes = {n: s["shape"] for n, s in report["systems"].items() if s.get("shape")}
    if shapes:
        lines += ["", "Shape (mean over pieces; pedal: presses per minute over the median of the piece's pianists, "
                  "median over pieces; human: each pianist against the others):", "",
                  "| system | velocity sd inside a performance | melody lead (velocity) | pedal presses / min "
                  "| pedal ratio |", "|---|---|---|---|---|"]  # fmt: skip
        for name, b in shapes.items():
            lines.append(f"| {name} | {b['velocity_sd']:.2f} | {b['melody_lead']:+.2f} | {b['pedal_per_minute']:.1f} "
                         f"| {b['pedal_ratio_median']:.2f} |")  # fmt: skip
    header = "| system | velocity JS | duration JS | IOI JS | pedal JS | velocity ∩ | duration ∩ | IOI ∩ | pedal ∩ |"
    lines += ["", header, "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        d = report["systems"][name]["distribution"]
        if not d:
            continue
        keys = list(HIST_SPECS)
        lines.append(
            f"| {name} | " + " | ".join(f"{d[k]['js_distance']:.4f}" for k in keys) + " | "
            + " | ".join(f"{d[k]['intersection']:.4f}" for k in keys) + " |"
        )  # fmt: skip
    if report.get("primed"):
        lines += ["", "Primed protocol (Pearson r, pooled; CVRNN paper at 10 notes: velocity 0.72, onset deviation "
                  "0.07, duration 0.77, tempo 0.21)", "",
                  "| system | notes | velocity | onset deviation | duration | tempo | starting points |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, res in report["primed"].items():
            for who in ("model", "human"):
                for hz, row in res[who].items():
                    label = name if who == "model" else f"human (another performance), vs {name} points"
                    vals = " | ".join(f"{row.get(k, float('nan')):.3f}" for k in PAPER_CVRNN_10)
                    lines.append(f"| {label} | {hz.split('_')[0]} | {vals} | {res['starting_points']} |")
    for name, res in report.get("primed_cvrnn", {}).items():
        lines += ["", f"CVRNN primed protocol, {name} (the paper's Table 2: prime 20 notes, decode 10 and 40; "
                  f"{res['starting_points']} starting points)", "",
                  "| z | notes | velocity | onset deviation | duration | tempo | paper: velocity | onset | duration "
                  "| tempo |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for mode in ("z_zero", "z_prior"):
            for hz, row in res[mode].items():
                paper = res["paper"][hz][mode]
                vals = " | ".join(f"{row.get(k, float('nan')):.3f}" for k in PAPER_CVRNN_10)
                ref = " | ".join(f"{paper[k]:.2f}" for k in PAPER_CVRNN_10)
                label = "0" if mode == "z_zero" else "primed prior"
                lines.append(f"| {label} | {hz.split('_')[0]} | {vals} | {ref} |")
    for name, kl in report.get("kl_per_dimension", {}).items():
        lines += ["", f"KL(q || p) per z dimension, {name} (nats per note; near 0 = an unused dimension): "
                  + ", ".join(f"z{d + 1} {v:.3f}" for d, v in enumerate(kl))]  # fmt: skip
    for name, res in report.get("latent_consistency", {}).items():
        share = res["same_sign_share"]
        lines += ["", f"Latent consistency, {name}: the same random Δ applied to two segments of "
                  f"{res['segment_notes']} notes ({res['pairs']} pairs); share of pairs whose change has the same "
                  "sign (0.5 = chance): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in share.items()), "",
                  "| dimension | velocity change (+2sigma vs -2sigma) | same sign | tempo change (%) | same sign "
                  "| articulation change (log2) | same sign |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for dim, row in res["dimensions"].items():
            cells = " | ".join(f"{row[m]['mean_change_plus2_vs_minus2']:+.2f} | {row[m]['same_sign_share']:.2f}"
                               for m in ("velocity", "tempo_percent", "articulation_log2"))  # fmt: skip
            lines.append(f"| {dim} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_report(report: dict, path) -> Path:
    from espressivo.viz.plot import _pyplot, _save

    plt = _pyplot()
    names = [n for n in report["systems"] if report["systems"][n]["per_note"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    features = list(NOTE_FEATURES)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        p = report["systems"][name]["per_note"]
        axes[0].bar(np.arange(len(features)) + k * width, [p[f]["r"] for f in features], width, label=name)
    axes[0].set_xticks(np.arange(len(features)) + 0.4 - width / 2, features)
    axes[0].set_ylabel("Pearson r with the human (per note)")
    axes[0].legend(fontsize=8)
    dims = list(HIST_SPECS)
    for k, name in enumerate(names):
        d = report["systems"][name]["distribution"]
        if d:
            axes[1].bar(np.arange(len(dims)) + k * width, [d[x]["js_distance"] for x in dims], width, label=name)
    axes[1].set_xticks(np.arange(len(dims)) + 0.4 - width / 2, dims)
    axes[1].set_ylabel("JS distance to human histograms (lower is better)")
    fig.tight_layout()
    return _save(fig, path)


def plot_tempo_curves(report: dict, path, piece: str | None = None) -> Path:
    """The beat tempo curves of one piece: each renderer, deadpan and every pianist (thin grey)."""
    from espressivo.viz.plot import _pyplot, _save

    curves = report.get("tempo_curves", {})
    if not curves:
        raise EspressivoError("the report holds no tempo curves")
    if piece is None or piece not in curves:  # the piece with the most pianists
        piece = max(curves, key=lambda k: (len(curves[k]["human"]), k))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(13, 4))
    for k, curve in enumerate(curves[piece]["human"]):
        ax.plot(curve, color="0.6", lw=0.8, label="pianists" if k == 0 else None)
    for name, curve in curves[piece].items():
        if name != "human":
            ax.plot(curve, lw=1.4 if name != "deadpan" else 0.8, label=name)
    ax.set_xlabel("score beat")
    ax.set_ylabel("tempo (beats per minute)")
    ax.set_title(f"{piece}: tempo over each score beat")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_histograms(stats: dict[str, list[dict]], path) -> Path:
    from espressivo.viz.plot import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, name in zip(axes, HIST_SPECS, strict=True):
        low, high, bins = HIST_SPECS[name]
        centres = np.linspace(low, high, bins, endpoint=False)
        for system, items in stats.items():
            h = histogram(np.concatenate([s[name] for s in items]), name).astype(np.float64)
            ax.plot(centres, h / max(h.sum(), 1), label=system, lw=1)
        ax.set_title(name)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def write_report(report: dict, json_path=None) -> None:
    if json_path:
        from espressivo.io.files import atomic_write_bytes

        atomic_write_bytes(json_path, json.dumps(report, indent=1, default=float).encode())
