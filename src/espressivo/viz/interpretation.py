"""The interpretation sequence of a performance drawn as in the CVRNN paper's Figure 6: every score note at
its score position and pitch, coloured by a 3-D projection (principal components -> RGB) of the temporally
smoothed z; below, the z dimensions themselves along the score."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from espressivo.viz.plot import _pyplot, _save


def smooth_rows(z: np.ndarray, sigma_notes: float = 8.0) -> np.ndarray:
    """Gaussian smoothing of each column along the note sequence (edges renormalised)."""
    if len(z) < 2 or sigma_notes <= 0:
        return z.copy()
    radius = int(3 * sigma_notes)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_notes) ** 2)
    ones = np.convolve(np.ones(len(z)), k, mode="same")
    return np.stack([np.convolve(col, k, mode="same") / ones for col in z.T], 1)


def rgb_projection(z: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, 3) colours in 0..1 from the first three principal components."""
    centred = z - z.mean(0)
    if len(z) < 2 or not np.any(centred):
        return np.full((len(z), 3), 0.5)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:3].T
    if proj.shape[1] < 3:
        proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
    low, high = np.percentile(proj, 2, axis=0), np.percentile(proj, 98, axis=0)
    return np.clip((proj - low) / np.maximum(high - low, 1e-9), 0, 1)


def plot_interpretation(onset_beat, pitch, z: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    plt = _pyplot()
    smoothed = smooth_rows(np.asarray(z, dtype=np.float64))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, height_ratios=[2, 1])
    top.scatter(onset_beat, pitch, c=rgb_projection(smoothed), s=10, marker="s", linewidths=0)
    top.set_ylabel("pitch")
    top.set_title(title or "interpretation sequence (colour: 3-D projection of the smoothed z)")
    for d in range(smoothed.shape[1]):
        bottom.plot(onset_beat, smoothed[:, d], lw=1, label=f"z{d + 1}")
    bottom.axhline(0, color="0.7", lw=0.5)
    bottom.set_xlabel("score position (beats)")
    bottom.set_ylabel("z (smoothed)")
    bottom.legend(fontsize=7, ncol=smoothed.shape[1], loc="upper right")
    fig.tight_layout()
    return _save(fig, path)
