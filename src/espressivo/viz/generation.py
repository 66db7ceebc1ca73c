"""Figures of ``espressivo evaluate lm``: continuations beside what the pianist played, and the statistics."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from espressivo.core import Performance
from espressivo.viz.plot import _pedal_lane, _pyplot, _roll, _save


def plot_continuations(examples: list[tuple[str, Performance, Performance]], cut_sec: float, end_sec: float,
                       path: str | os.PathLike) -> Path:  # fmt: skip
    """For each ``(title, real, generated)``: the pianist's first ``end_sec`` seconds above the model's
    continuation of the same opening (cut at ``cut_sec``, dashed), each with its pedal lane."""
    plt = _pyplot()
    rows = len(examples)
    fig = plt.figure(figsize=(14, 4.2 * rows), layout="constrained")
    grid = fig.add_gridspec(4 * rows, 1, height_ratios=[3, 0.7] * (2 * rows))
    for k, (title, real, generated) in enumerate(examples):
        for j, (label, perf) in enumerate((("pianist", real), ("model", generated))):
            clip = perf.slice(0, end_sec, clip=True, rebase=False)
            roll = fig.add_subplot(grid[4 * k + 2 * j])
            lane = fig.add_subplot(grid[4 * k + 2 * j + 1], sharex=roll)
            _roll(roll, clip, colorbar=False)
            _pedal_lane(lane, clip)
            roll.set_xlim(0, end_sec)
            for ax in (roll, lane):
                ax.axvline(cut_sec, color="k", linestyle="--", linewidth=1)
            roll.set_title(f"{title}: {label}", fontsize="medium", loc="left")
    return _save(fig, path)


def plot_statistics(report: dict, path: str | os.PathLike) -> Path:
    """Bars of the generated and real statistics of each part of the protocol."""
    plt = _pyplot()
    parts = [p for p in ("improvisation", "continuation", "infill") if p in report]
    keys = ("notes_per_sec", "polyphony_keys", "polyphony_pedal", "median_note_sec", "pedal_per_min", "velocity_sd")
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.8), layout="constrained", squeeze=False)
    width = 0.38
    for a, key in enumerate(keys):
        ax = axes[0, a]
        x = np.arange(len(parts))
        gen = [report[p]["generated"].get(key, np.nan) for p in parts]
        real = [report[p]["real"].get(key, np.nan) for p in parts]
        ax.bar(x - width / 2, real, width, label="real", color="tab:blue")
        ax.bar(x + width / 2, gen, width, label="model", color="tab:red")
        ax.set_xticks(x, parts, rotation=20, fontsize="small")
        ax.set_title(key.replace("_", " "), fontsize="medium")
    axes[0, 0].legend(fontsize="small")
    return _save(fig, path)
