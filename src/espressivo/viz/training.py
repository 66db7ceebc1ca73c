"""Reading training runs' ``log.csv`` (as the training engine writes it)."""

from __future__ import annotations

import csv
import os

from espressivo.errors import EspressivoError


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
