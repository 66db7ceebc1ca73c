"""What only a CVRNN is evaluated on (``espressivo evaluate render`` with a CVRNN model).

**Primed protocol** (seed 002, Table 2): at starting points every ``stride`` notes of every test
performance, the model encodes the human's 20 notes before the point (inference network; the reference tempo
is the prime's own) and decodes the next 10 and 40 notes twice — with z = 0 and with z sampled from the primed
prior.  Pearson r with the human (pooled over starting points) for velocity, onset deviation, duration and
tempo, measured as for the renderers (:func:`espressivo.evaluate.render.segment_features`).

**Consistency of the latent** (section 4.2, measured instead of listened to): two non-overlapping segments
A and B of a test score; Δ ~ N(0, I); each segment is rendered with z = µ + Δ ⊗ sigma and z = µ - Δ ⊗ sigma (same
sampling noise otherwise); for mean velocity, tempo and articulation, how often the change from - to + has
the same sign in A and in B (0.5 = chance, 1 = always).  Also, per z dimension, the mean change that a shift
of ±2 sigmas makes (what the dimension does, for ``--interpretation``) and how consistent its sign is.

**KL per dimension** on validation windows: which z dimensions carry information (posterior collapse shows
as a KL near 0).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from espressivo.data.cvrnn import CVRNNPairs, piece_arrays
from espressivo.evaluate.primed import PAPER_CVRNN_10, pooled_pearson, segment_features
from espressivo.features.cvrnn import decode_performance, encode_performance, track_from_score, written_bpm
from espressivo.render.cvrnn import run, score_context


def _piece_context(model, arrays: dict):
    """The track of a piece at a human's mean tempo and the score context of all its notes."""

    info = piece_arrays(arrays)
    return info, score_context(model, info["track"])


def primed_cvrnn(pretrained, pieces: list[dict], *, prime: int = 20, horizons=(10, 40), stride: int = 400,
                 seed: int = 0, temperature: float = 1.0, top_p: float = 0.95) -> dict:  # fmt: skip

    model = pretrained.model
    horizon = max(horizons)
    modes = ("prior", "zero")
    pooled = {m: {h: {k: ([], []) for k in PAPER_CVRNN_10} for h in horizons} for m in modes}
    points = 0
    for piece in pieces:
        for arrays in piece["pairs"]:
            info, ctx = _piece_context(model, arrays)
            track, group, starts = info["track"], info["group"], info["starts"]
            written = written_bpm(arrays["onset_beat"], arrays["written"]["onset_sec"])
            n = len(track)
            for point in range(prime, n - horizon, stride):
                a = int(starts[group[point - prime]])
                seg = slice(a, a + prime + horizon)
                if seg.stop > n or not info["matched"][seg].all():
                    continue
                on, dur, vel = info["onset"][seg], info["duration"][seg], info["velocity"][seg]
                beats = track.onset_beat[seg]
                p_span, w_span = on[prime - 1] - on[0], beats[prime - 1] - beats[0]
                factor = 1.0  # the reference tempo: the prime's own
                if p_span > 0 and w_span > 0:
                    factor = float(np.clip(60.0 * w_span / p_span / written[a], 0.2, 5.0))
                sub = replace(track.subset(seg), ref_bpm=written[seg] * factor)
                x = encode_performance(sub, on, dur, vel, arrays["performed"]["pedal"][seg])
                truth = segment_features(on, dur, vel, beats)
                for mode in modes:
                    classes, _ = run(model, ctx[:, seg], prime=x[:prime], seed=seed + points, temperature=temperature,
                                     top_p=top_p, zero_z=mode == "zero")  # fmt: skip
                    perf = decode_performance(sub, classes[0], sampled=True)
                    rows = perf.notes["id"]
                    o = np.empty(len(rows))
                    o[rows] = perf.notes["onset_sec"]
                    d = np.empty(len(rows))
                    d[rows] = perf.notes["duration_sec"]
                    v = np.empty(len(rows))
                    v[rows] = perf.notes["velocity"]
                    pred = segment_features(o, d, v, beats)
                    for hz in horizons:
                        window = slice(prime, prime + hz)
                        for k in PAPER_CVRNN_10:
                            pooled[mode][hz][k][0].append(pred[k][window])
                            pooled[mode][hz][k][1].append(truth[k][window])
                points += 1
    out = {
        "starting_points": points,
        "z_prior": pooled_pearson(pooled["prior"]),
        "z_zero": pooled_pearson(pooled["zero"]),
    }
    out["paper"] = {"10_notes": {"z_zero": {"velocity": 0.61, "onset_deviation": 0.02, "duration": 0.77, "tempo": 0.07},
                                 "z_prior": PAPER_CVRNN_10},
                    "40_notes": {"z_zero": {"velocity": 0.37, "onset_deviation": 0.19, "duration": 0.82, "tempo": 0.00},
                                 "z_prior": {"velocity": 0.68, "onset_deviation": 0.24, "duration": 0.82,
                                             "tempo": 0.14}}}  # fmt: skip
    return out


def _segment_measures(track, classes) -> np.ndarray:
    """Mean velocity, tempo (% of the reference, from the onsets) and articulation (log2 performed /
    written duration at the segment's tempo) of a rendered segment."""
    perf = decode_performance(track, classes, sampled=True)
    rows = perf.notes["id"]
    onset = perf.notes["onset_sec"]
    beats = track.onset_beat[rows]
    span_b, span_t = float(beats.max() - beats.min()), float(onset.max() - onset.min())
    ref = float(np.mean(track.ref_bpm))
    tempo = 100.0 * (60.0 * span_b / span_t / ref - 1.0) if span_t > 0 and span_b > 0 else 0.0
    written = track.duration_beat[rows] * 60.0 / track.ref_bpm[rows]
    ok = written > 0
    ratio = np.maximum(perf.notes["duration_sec"][ok], 1e-3) / written[ok]
    artic = float(np.mean(np.log2(ratio))) if ok.any() else 0.0
    return np.array([float(perf.notes["velocity"].mean()), tempo, artic])


MEASURES = ("velocity", "tempo_percent", "articulation_log2")


def _segment_renderer(model, context, track, segment: int, temperature: float, top_p: float):
    """``rendered(start, shift, seed)`` -> the measures of one segment rendered with z = mu + shift * sigma."""

    def rendered(start: int, shift: np.ndarray, noise_seed: int) -> np.ndarray:
        seg = slice(start, start + segment)
        classes, _ = run(model, context[:, seg], seed=noise_seed, shift=shift, sample_z=False,
                         temperature=temperature, top_p=top_p)  # fmt: skip
        return _segment_measures(track.subset(seg), classes[0])

    return rendered


def latent_consistency(pretrained, pieces: list[dict], *, segment: int = 64, trials: int = 4, seed: int = 0,
                       temperature: float = 1.0, top_p: float = 0.95) -> dict:  # fmt: skip

    model = pretrained.model
    z_dim = model.config.z_dim
    rng = np.random.default_rng(seed)
    agree, pairs = np.zeros(len(MEASURES)), 0
    effects = {d: [] for d in range(z_dim)}
    for piece in pieces:
        track = track_from_score(piece["score"])
        if len(track) < 4 * segment:
            continue
        context = score_context(model, track)
        rendered = _segment_renderer(model, context, track, segment, temperature, top_p)
        for _ in range(trials):
            a, b = sorted(rng.choice(len(track) // segment - 1, 2, replace=False) * segment)
            delta = rng.standard_normal(z_dim)
            s = int(rng.integers(1 << 30))
            change_a = rendered(a, delta, s) - rendered(a, -delta, s)
            change_b = rendered(b, delta, s) - rendered(b, -delta, s)
            agree += np.sign(change_a) == np.sign(change_b)
            pairs += 1
        start = int(rng.integers(0, len(track) - segment))
        s = int(rng.integers(1 << 30))
        for d in range(z_dim):
            unit = np.zeros(z_dim)
            unit[d] = 2.0
            effects[d].append(rendered(start, unit, s) - rendered(start, -unit, s))
    out = {"pairs": pairs, "segment_notes": segment,
           "same_sign_share": {m: float(v / max(pairs, 1)) for m, v in zip(MEASURES, agree, strict=True)},
           "dimensions": {}}  # fmt: skip
    for d, rows in effects.items():
        if not rows:
            continue
        rows = np.array(rows)
        mean = rows.mean(0)
        out["dimensions"][f"z{d + 1}"] = {
            m: {"mean_change_plus2_vs_minus2": float(mean[i]),
                "same_sign_share": float(np.mean(np.sign(rows[:, i]) == np.sign(mean[i])))}
            for i, m in enumerate(MEASURES)
        }  # fmt: skip
    return out


def kl_per_dimension(pretrained, windows: list[dict]) -> list[float]:
    """Mean KL(q || p) per z dimension (nats per note) over the given windows."""
    import torch

    model = pretrained.model
    model.eval()
    total, notes = None, 0
    with torch.no_grad():
        for start in range(0, len(windows), 16):
            part = windows[start : start + 16]
            batch = {k: torch.from_numpy(np.stack([w[k] for w in part])) for k in part[0]}
            out, _ = model(**batch)
            count = int(batch["keep"].sum())
            total = out["kl"] * count if total is None else total + out["kl"] * count
            notes += count
    return [float(v) for v in (total / max(notes, 1))]


def cvrnn_protocols(pretrained, pieces: list[dict], settings: dict) -> dict:
    """The CVRNN's own figures in ``evaluate render``: primed (Table 2), how consistently each latent dimension
    moves the music (with ``primed``), and which z dimensions carry information on the split's windows."""
    out = {}
    if settings["primed"]:
        sampling = {k: settings[k] for k in ("seed", "temperature", "top_p")}
        out["primed_cvrnn"] = primed_cvrnn(pretrained, pieces, stride=settings["stride"], **sampling)
        out["latent_consistency"] = latent_consistency(pretrained, pieces, **sampling)
    if settings.get("pairs"):
        windows = list(CVRNNPairs(settings["pairs"], settings["split"], pretrained.model.config, notes=120).windows())
        out["kl_per_dimension"] = kl_per_dimension(pretrained, windows[:: max(1, len(windows) // 200)])
    return out
