"""Evaluating performance language models: likelihood on held-out data and the feature analyses of
Oore et al. (2018, sec. 7) comparing generated with real performances.

- ``nll_nats_per_token``: mean negative log-likelihood of every token of every test performance, scored in
  non-overlapping windows of ``window`` tokens (each window starts without context);
  ``bits_per_second``: the same total in bits, per second of music.
- ``grammar_error_rate``: events the tokenizer had to drop when decoding samples, per generated token.
- pitch-velocity polynomial fits (orders 1-3, their Fig. 7), the melody-lead statistic (in note groups of at most
  30 ms spanning C4, the share where the highest note sounds first), note-density and velocity histograms, and
  the Jensen-Shannon distance between the generated and the real histograms.
"""

from __future__ import annotations

import math

import numpy as np

from espressivo.core import Performance
from espressivo.viz.plot import _pyplot, _save

MELODY_GROUP_SEC = 0.03
C4 = 60


def window_nll(model, tokenizer, performances: list[Performance], window: int = 512, batch: int = 16) -> dict:
    import torch

    pad = tokenizer.vocab["PAD"].start
    windows, seconds = [], 0.0
    for perf in performances:
        ids = tokenizer.encode(perf).astype(np.int64)
        seconds += float(tokenizer.time_advance(ids).sum())
        for start in range(0, len(ids), window):
            piece = ids[start : start + window]
            if len(piece) >= 2:
                windows.append(np.concatenate([piece, np.full(window - len(piece), pad)]))
    total, count = 0.0, 0
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for start in range(0, len(windows), batch):
            data = torch.from_numpy(np.stack(windows[start : start + batch])).to(device)
            logits, _ = model(data[:, :-1])
            targets = data[:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=pad, reduction="sum"
            )
            total += float(nll)
            count += int((targets != pad).sum())
    return {
        "nll_nats_per_token": total / max(count, 1),
        "bits_per_second": total / math.log(2) / max(seconds, 1e-9),
        "tokens_scored": count,
        "seconds_of_music": round(seconds, 1),
        "windows": len(windows),
    }


def pitch_velocity_fits(performances: list[Performance], orders=(1, 2, 3)) -> dict:
    pitch = np.concatenate([p.notes["pitch"] for p in performances]).astype(np.float64)
    velocity = np.concatenate([p.notes["velocity"] for p in performances]).astype(np.float64)
    fits = {}
    for order in orders:
        if len(pitch) > order:
            coefficients = np.polyfit(pitch, velocity, order)
            residual = velocity - np.polyval(coefficients, pitch)
            r2 = 1 - residual.var() / max(velocity.var(), 1e-12)
            fits[str(order)] = {"coefficients": coefficients.round(6).tolist(), "r2": round(float(r2), 4)}
    return fits


def melody_lead(performances: list[Performance], span_sec: float = MELODY_GROUP_SEC) -> dict:
    """Share of near-simultaneous note groups spanning C4 in which the highest note starts first."""
    led, groups = 0, 0
    for perf in performances:
        n = perf.notes[np.argsort(perf.notes["onset_sec"], kind="stable")]
        if len(n) < 2:
            continue
        onset = n["onset_sec"]
        new = np.concatenate([[True], np.diff(onset) > span_sec])
        group = np.cumsum(new) - 1
        count = np.bincount(group)
        first = np.nonzero(new)[0]
        span = np.maximum.reduceat(onset, first) - onset[first]
        low = np.minimum.reduceat(n["pitch"], first)
        high = np.maximum.reduceat(n["pitch"], first)
        keep = (count >= 2) & (span <= span_sec) & (low < C4) & (high >= C4)
        # sorted with the group as first key, group g keeps the positions first[g] ... of the onset order
        top = np.lexsort((onset, -n["pitch"].astype(np.int64), group))[first]
        bottom = np.lexsort((onset, n["pitch"].astype(np.int64), group))[first]
        upper_first = onset[top] < onset[bottom]
        led += int(np.count_nonzero(upper_first & keep))
        groups += int(np.count_nonzero(keep))
    return {"groups": groups, "upper_first_share": round(led / groups, 4) if groups else None}


def histograms(performances: list[Performance]) -> dict:
    velocity = np.concatenate([p.notes["velocity"] for p in performances]) if performances else np.zeros(0)
    density = []
    for perf in performances:
        if len(perf) and perf.end_sec >= 2:
            counts = np.bincount((perf.notes["onset_sec"] // 2).astype(np.int64)) / 2.0
            density.append(counts)
    density = np.concatenate(density) if density else np.zeros(0)
    vel_hist = np.histogram(velocity, bins=32, range=(0, 128))[0]
    dens_hist = np.histogram(density, bins=30, range=(0, 30))[0]
    return {"velocity": vel_hist.tolist(), "density_notes_per_sec": dens_hist.tolist(),
            "mean_velocity": round(float(velocity.mean()), 2) if len(velocity) else None,
            "mean_density": round(float(density.mean()), 2) if len(density) else None}  # fmt: skip


def js_distance(p, q) -> float:
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def feature_report(real: list[Performance], generated: list[Performance]) -> dict:
    real_h, gen_h = histograms(real), histograms(generated)
    return {
        "pitch_velocity_fits": {"real": pitch_velocity_fits(real), "generated": pitch_velocity_fits(generated)},
        "melody_lead": {"real": melody_lead(real), "generated": melody_lead(generated)},
        "histograms": {"real": real_h, "generated": gen_h},
        "js_distance": {
            "velocity": round(js_distance(real_h["velocity"], gen_h["velocity"]), 4),
            "density": round(js_distance(real_h["density_notes_per_sec"], gen_h["density_notes_per_sec"]), 4),
        },
    }


def plot_report(report: dict, real: list[Performance], generated: list[Performance], path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), layout="constrained")
    grid = np.linspace(21, 108, 200)
    for label, color in (("real", "tab:blue"), ("generated", "tab:red")):
        fits = report["pitch_velocity_fits"][label]
        for order, style in (("1", ":"), ("2", "--"), ("3", "-")):
            if order in fits:
                axes[0].plot(grid, np.polyval(fits[order]["coefficients"], grid), style, color=color,
                             label=f"{label}, order {order}")  # fmt: skip
        h = report["histograms"][label]
        axes[1].plot(
            np.arange(32) * 4 + 2, np.asarray(h["velocity"]) / max(1, sum(h["velocity"])), color=color, label=label
        )
        d = np.asarray(h["density_notes_per_sec"])
        axes[2].plot(np.arange(30) + 0.5, d / max(1, d.sum()), color=color, label=label)
    axes[0].set(xlabel="pitch (MIDI)", ylabel="velocity", title="pitch-velocity fits")
    axes[1].set(xlabel="velocity", ylabel="share", title="velocity")
    axes[2].set(xlabel="notes per second (2 s windows)", ylabel="share", title="note density")
    for ax in axes:
        ax.legend(fontsize="small")
    _save(fig, path)
