"""Loss curves of training runs (the ``log.csv`` the training engine writes)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from espressivo.errors import EspressivoError
from espressivo.viz.plot import _pyplot, _save


def read_log(path: str | os.PathLike) -> dict[str, list[float]]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise EspressivoError(f"{path}: cannot read the training log ({err.strerror or err})") from None
    out: dict[str, list[float]] = {"step": [], "train_loss": [], "val_step": [], "val_loss": [], "tokens": []}
    for row in rows:
        out["step"].append(float(row["step"]))
        out["train_loss"].append(float(row["train_loss"]))
        out["tokens"].append(float(row["tokens"]))
        if row.get("val_loss"):
            out["val_step"].append(float(row["step"]))
            out["val_loss"].append(float(row["val_loss"]))
    return out


def plot_losses(logs: dict[str, str | os.PathLike], path: str | os.PathLike, title: str = "") -> Path:
    """Training (thin) and validation (dots) loss in nats per token against tokens seen, one colour per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    for (name, log_path), color in zip(logs.items(), ["tab:blue", "tab:red", "tab:green", "tab:purple"], strict=False):
        log = read_log(log_path)
        per_step = log["tokens"][-1] / max(log["step"][-1], 1) if log["step"] else 0
        ax.plot([s * per_step / 1e6 for s in log["step"]], log["train_loss"], color=color, alpha=0.4, linewidth=0.8)
        ax.plot(
            [s * per_step / 1e6 for s in log["val_step"]],
            log["val_loss"],
            "o-",
            color=color,
            label=f"{name} (validation)",
        )
    ax.set(xlabel="training tokens (millions)", ylabel="loss (nats per token)", title=title or "loss curves")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)
