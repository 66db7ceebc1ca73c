"""Figures as PNG files (matplotlib, Agg backend; no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from espressivo.core import SOFT, SOSTENUTO, SUSTAIN, Alignment, Performance, Score
from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes
from espressivo.viz.curves import expression_curves

PEDAL_STYLE = {SUSTAIN: ("sustain", "tab:blue"), SOSTENUTO: ("sostenuto", "tab:green"), SOFT: ("soft", "tab:orange")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _roll(ax, performance: Performance, colorbar: bool = True):
    from matplotlib.collections import PolyCollection

    n = performance.notes
    min_width = max(performance.end_sec / 1500, 0.01)  # keep short notes of long pieces visible
    x0, x1 = n["onset_sec"], n["onset_sec"] + np.maximum(n["duration_sec"], min_width)
    y0, y1 = n["pitch"] - 0.4, n["pitch"] + 0.4
    boxes = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1), np.stack([x0, y1], 1)], 1)
    coll = PolyCollection(boxes, array=n["velocity"].astype(float), cmap="viridis", clim=(1, 127), edgecolors="none")
    ax.add_collection(coll)
    if len(n):
        ax.set_ylim(n["pitch"].min() - 2, n["pitch"].max() + 2)
    ax.set_xlim(0, max(performance.end_sec, 1e-3))
    ax.set_ylabel("pitch (MIDI)")
    if colorbar:
        ax.figure.colorbar(coll, ax=ax, label="velocity", pad=0.01)
    return coll


def _pedal_lane(ax, performance: Performance):
    end = max(performance.end_sec, 1e-3)
    for controller, (label, color) in PEDAL_STYLE.items():
        events = performance.controls[performance.controls["controller"] == controller]
        if len(events) == 0:
            continue
        t = np.concatenate([[0.0], events["time_sec"], [end]])
        v = np.concatenate([[0], events["value"], [events["value"][-1]]])
        ax.step(t, v, where="post", color=color, label=label, linewidth=1)
    ax.set_ylim(-5, 132)
    ax.set_yticks([0, 64, 127])
    ax.set_ylabel("pedal")
    ax.set_xlabel("time (s)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small", ncols=3)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise EspressivoError(f"{path}: is a directory")
    import io

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=120, format=path.suffix.lstrip(".").lower() or "png")
    except (OSError, ValueError) as err:
        raise EspressivoError(f"{path}: cannot write figure ({err})") from None
    finally:
        _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())  # a reader never sees half a picture
    return path


def plot_performance(performance: Performance, path: str | os.PathLike, title: str = "") -> Path:
    """Piano roll coloured by velocity, with a pedal lane underneath."""
    plt = _pyplot()
    fig, (roll, lane) = plt.subplots(
        2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [4, 1]}, layout="constrained"
    )
    _roll(roll, performance)
    _pedal_lane(lane, performance)
    roll.set_title(title or f"{len(performance)} notes, {performance.end_sec:.1f} s")
    return _save(fig, path)


def plot_pair(
    score: Score, performance: Performance, alignment: Alignment, path: str | os.PathLike, title: str = ""
) -> Path:
    """Piano roll and pedal lane of the performance, plus its tempo and velocity curves over score time."""
    curves = expression_curves(score, performance, alignment)
    plt = _pyplot()
    fig = plt.figure(figsize=(12, 10), layout="constrained")
    grid = fig.add_gridspec(4, 1, height_ratios=[4, 1, 2, 2])
    roll, lane = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    _roll(roll, performance)
    lane.sharex(roll)
    _pedal_lane(lane, performance)
    roll.set_title(title or f"{score.title}: {len(performance)} notes, {len(alignment.matches)} aligned")
    tempo, dyn = fig.add_subplot(grid[2]), fig.add_subplot(grid[3])
    tempo.plot(curves["tempo_beat"], curves["tempo_bpm"], color="tab:red", linewidth=1.2)
    tempo.set_ylabel("tempo (beats/min)")
    finite = curves["tempo_bpm"]
    if len(finite):
        lo, hi = np.percentile(finite, [1, 99])
        tempo.set_ylim(max(0, lo * 0.8), hi * 1.2)
    dyn.sharex(tempo)
    dyn.plot(curves["beat"], curves["velocity"], color="tab:purple", linewidth=1)
    dyn.set_ylabel("velocity")
    dyn.set_ylim(0, 127)
    dyn.set_xlabel("score time (beats)")
    for ax in (tempo, dyn):
        for m in score.measures["onset_quarter"]:
            ax.axvline(float(score.beat_from_quarter(m)), color="0.85", linewidth=0.5, zorder=0)
    return _save(fig, path)
