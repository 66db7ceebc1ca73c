"""The primed protocol (CVRNN's Table 2): a renderer primed with a pianist's 20 notes before a starting point
samples the next notes; Pearson r, pooled over starting points, for velocity, onset deviation, duration and
tempo over the next 10 and 40 notes."""

from __future__ import annotations

import numpy as np

from espressivo.evaluate.metrics import pearson
from espressivo.render.base import RenderOptions
from espressivo.render.notewise import plays_at_given_tempo, render_slots
from espressivo.render.timing import DEFAULT_TEMPO_GUARD

PAPER_CVRNN_10 = {"velocity": 0.72, "onset_deviation": 0.07, "duration": 0.77, "tempo": 0.21}


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

    tok = pretrained.tokenizer
    at_performed_tempo = plays_at_given_tempo(pretrained)
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
                primed = human[seg][:prime].copy()
                primed[0, 1] = 0
                sub.src[0, 1] = 0
                if at_performed_tempo:  # the score at the tempo of the prime (what the model was trained on)
                    factor = primed[1:, 1].sum() / max(sub.src[1:prime, 1].sum(), 1)
                    sub.src[:, 1:4:2] = scale_time_slots(sub.src[:, 1:4:2], factor, time_sizes)
                length = max(64, prime + horizon)
                options = RenderOptions.of(temperature=temperature, top_p=top_p, seed=seed + points, window=length,
                                           context=length // 4, tempo_guard=tempo_guard)  # fmt: skip
                out = render_slots(pretrained.model, sub, options, primed)[0]
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


def notewise_protocols(pretrained, pieces: list[dict], settings: dict) -> dict:
    """The note-by-note renderer's own figures in ``evaluate render``: primed with a pianist's notes."""
    if not settings["primed"]:
        return {}
    keys = ("stride", "seed", "temperature", "top_p", "tempo_guard")
    return {"primed": primed_protocol(pretrained, pieces, **{k: settings[k] for k in keys})}
