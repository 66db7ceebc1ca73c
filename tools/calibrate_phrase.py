"""Fit a phrase renderer's sampling calibration on the validation pairs and store it in its config.json.

    python tools/calibrate_phrase.py CHECKPOINT_DIR [--pairs data/pairs] [--noise 0.5] [--tempo-noise X]
                                     [--output-noise NAME=SHARE ...]

Per output (tempo and loudness curves, timing, velocity and articulation deviations): the gain that gives a
rendering the pianists' spread inside a window, with ``noise`` of the predicted sd drawn
(:func:`fit_calibration` below).  ``render`` reads it from ``config["sampling"]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from espressivo.data.phrase import PhrasePairs
from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes
from espressivo.models.checkpoint import load_pretrained
from espressivo.models.phrase import CURVES, DEVIATIONS
from espressivo.render.phrase import pedal_decision


def _presses(down: np.ndarray) -> int:
    flat = down.reshape(-1)
    return int(flat[0]) + int((flat[1:] & ~flat[:-1]).sum()) if len(flat) else 0


def _first_of_groups(group: np.ndarray) -> np.ndarray:
    return np.concatenate([[True], group[1:] != group[:-1]])


def _pedal_calibration(windows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """``hold`` and ``lift`` of :func:`pedal_decision`, from validation windows of (predicted probabilities, true
    samples, onset group) per note: the hold at which the pedal is held at as many onsets as the pianists hold
    it, then the lift at which it is pressed as often as they press it (presses counted over each onset's four
    samples, in score order)."""
    true_held, true_presses = 0, 0
    for _, true, group in windows:
        onset = true[_first_of_groups(group)]
        true_held += int((onset[:, 1:].mean(1) >= 0.5).sum())
        true_presses += _presses(onset)
    if not true_held:
        return {"hold": 1.0, "lift": 1.0}
    holds = np.round(np.arange(0.5, 2.001, 0.05), 2)
    held = np.zeros(len(holds))
    for predicted, _, group in windows:
        first = _first_of_groups(group)
        for k, hold in enumerate(holds):
            held[k] += int(pedal_decision(predicted, group, hold, 1.0)[first][:, 1].sum())
    hold = float(holds[int(np.argmin(np.abs(held - true_held)))])
    lifts = np.round(np.arange(0.0, 0.301, 0.005), 3)
    presses = np.zeros(len(lifts))
    for predicted, _, group in windows:
        first = _first_of_groups(group)
        for k, lift in enumerate(lifts):
            presses[k] += _presses(pedal_decision(predicted, group, hold, lift)[first])
    lift = float(lifts[int(np.argmin(np.abs(presses - true_presses)))])
    return {"hold": hold, "lift": lift}


def fit_calibration(model, windows, noise: float | dict = 0.5, max_gain: float = 3.0) -> dict:
    """Per output, the gain that gives the rendering the pianists' spread inside a performance: ``gain^2
    Var(mean) + noise^2 E[sd^2] = Var(target)`` (variances within each piece, over the measured beats / matched
    notes; windows carry their ``piece``, else each window counts as one),
    at least 1 and at most ``max_gain``; and the pedal's decision (:func:`_pedal_calibration`).
    ``windows``: :class:`~espressivo.data.phrase.PhrasePairs` windows of the validation split."""
    import torch

    pieces: dict[int, dict[str, list]] = {}  # per pair: (targets, means, variances) of every output
    pedal_windows, leads = [], [0.0, 0.0]
    with torch.inference_mode():
        for w in windows:
            batch = {k: torch.from_numpy(w[k][None]) for k in ("src", "features", "beat", "keep")}
            out = {k: v[0].float().numpy() for k, v in model.predict(**batch).items()}
            real = w["keep"]
            group = np.cumsum(w["src"][real, 1] > 0)  # a deadpan IOI of 0: the same onset as the note before
            pedal_windows.append((1 / (1 + np.exp(-out["pedal"][real])), w["pedal"][real] > 0.5, group))
            lead_true, lead_pred = _leads(w, out["velocity"][:, 0], group)
            leads += [lead_true, lead_pred]
            piece = pieces.setdefault(int(w.get("piece", len(pieces))), {})
            for name in (*CURVES, *DEVIATIONS):
                ok = w[f"{name}_ok"] if name in CURVES else (w["note_ok"] & w["keep"])
                pred = out[name][: len(ok)][ok[: len(out[name])]] if name in CURVES else out[name][ok]
                target = w[name][: len(out[name])][ok[: len(out[name])]] if name in CURVES else w[name][ok]
                piece.setdefault(name, []).append((target, pred[:, 0], np.exp(2 * pred[:, 1])))
    sums = {name: np.zeros(3) for name in (*CURVES, *DEVIATIONS)}
    for piece in pieces.values():  # the spread inside a performance: variances within each piece
        for name, parts in piece.items():
            target, mu, sd2 = (np.concatenate(x) for x in zip(*parts, strict=True))
            if len(target) >= 4:
                sums[name] += [len(target) * target.var(), len(target) * mu.var(), sd2.sum()]
    result = {"pedal": _pedal_calibration(pedal_windows)}
    for name, (var_y, var_mu, sd2) in sums.items():
        share = float(noise.get(name, 0.5) if isinstance(noise, dict) else noise)
        room = max(var_y - share**2 * sd2, 0.0)
        gain = float(np.clip(np.sqrt(room / var_mu), 1.0, max_gain)) if var_mu > 0 else 1.0
        result[name] = {"gain": round(gain, 3), "noise": share}
    # onset timing is left as predicted: its mean is small except for grace notes, which a gain would throw
    # far ahead of their main note, and most of its spread is asynchrony the model cannot place
    result["timing"]["gain"] = 1.0
    # the velocity deviations are mostly voicing: their gain sets the melody's lead over the other notes of its
    # onset to the pianists' (a spread-matching gain would voice the melody far above them)
    totals = np.sum(np.reshape(leads, (-1, 2)), axis=0)
    if totals[1] > 0:
        result["velocity"]["gain"] = round(float(np.clip(totals[0] / totals[1], 1.0, max_gain)), 3)
    return result


def _leads(window: dict, predicted: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """Summed (top note - mean of the others) velocity deviation over the onsets of two or more matched notes:
    the pianists' and the predicted means'."""
    from espressivo.features.phrase import PHRASE_FEATURES

    real = window["keep"]
    ok = window["note_ok"][real]
    below = window["features"][real, PHRASE_FEATURES.index("below_top")]
    total = [0.0, 0.0]
    for k, values in enumerate((window["velocity"][real], predicted[: int(real.sum())])):
        top = np.bincount(group[ok], weights=np.where(below[ok] == 0, values[ok], 0.0), minlength=group.max() + 1)
        n_top = np.bincount(group[ok], weights=(below[ok] == 0).astype(float), minlength=group.max() + 1)
        rest = np.bincount(group[ok], weights=np.where(below[ok] > 0, values[ok], 0.0), minlength=group.max() + 1)
        n_rest = np.bincount(group[ok], weights=(below[ok] > 0).astype(float), minlength=group.max() + 1)
        both = (n_top > 0) & (n_rest > 0)
        total[k] = float((top[both] / n_top[both] - rest[both] / n_rest[both]).sum())
    return total[0], total[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--noise", type=float, default=0.5, help="share of the predicted sd drawn, every output")
    parser.add_argument("--tempo-noise", type=float, default=None, help="the tempo curve's share, if another")
    parser.add_argument("--output-noise", action="append", default=[], metavar="NAME=SHARE",
                        help="another share for one output (tempo, level, timing, velocity, articulation)")  # fmt: skip
    parser.add_argument(
        "--lift",
        type=float,
        default=None,
        help="the pedal's lift instead of the fitted one: the fit matches presses counted at four "
        "samples per IOI, which misses quick changes (phrase-small: fitted 0.10; 0.05 with "
        "--change 0.1 chosen on validation, docs/eval/phrase-pedal-lift-validation.md)",
    )
    parser.add_argument("--change", type=float, default=None,
                        help="also lift the pedal where an onset's probability dips this far below its neighbours' "
                             "(render.phrase.pedal_decision; none by default)")  # fmt: skip
    args = parser.parse_args()
    pretrained = load_pretrained(args.checkpoint)
    c = pretrained.model.config
    notes = min(512, c.max_notes)  # the windows it renders with (render.phrase.WINDOW), at most its own
    windows = PhrasePairs(args.pairs, "validation", pretrained.tokenizer, notes, c.max_beats).windows()
    noise = {name: args.noise for name in ("tempo", "level", "timing", "velocity", "articulation")}
    if args.tempo_noise is not None:
        noise["tempo"] = args.tempo_noise
    for item in args.output_noise:
        name, _, value = item.partition("=")
        if name not in noise:
            raise EspressivoError(f"--output-noise: unknown output {name!r} ({', '.join(noise)})")
        noise[name] = float(value)
    calibration = fit_calibration(pretrained.model, windows, noise=noise)
    if args.lift is not None:
        calibration["pedal"]["lift"] = args.lift
    if args.change is not None:
        calibration["pedal"]["change"] = args.change
    path = args.checkpoint / "config.json"
    config = json.loads(path.read_text())
    config["sampling"] = calibration
    atomic_write_bytes(path, json.dumps(config, indent=2).encode())
    print(json.dumps(calibration))


if __name__ == "__main__":
    try:
        main()
    except EspressivoError as err:
        sys.exit(f"calibrate_phrase: {err}")
