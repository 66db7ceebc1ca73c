"""Score -> performance with the phrase renderer (:mod:`espressivo.models.phrase`).

1. **Read the score**: deadpan slots at the tempo asked for, the renderer's score features and the phrase
   features (markings; for a score without them — MIDI — the model was trained to do without, and the
   rendering says so in ``Rendering.notes``).
2. **Predict** in one batch: the score is cut into windows of ``WINDOW`` notes overlapping by half; each note's
   and each beat's Gaussians are the windows' predictions averaged with triangular weights (a window's
   centre counts most), so curves glide across window edges.
3. **Sample** (``seed``): every curve and deviation is its predicted mean, its departures from the piece's
   average widened by the checkpoint's calibrated ``gain`` (a regression's mean is shrunk towards the average;
   the gain restores the pianists' spread), plus ``temperature x noise x sd x N(0, 1)``; the noise of the
   beat curves is smooth over ``CURVE_NOISE_BEATS`` beats (a phrase breathes, it does not jitter), the note
   deviations' is independent per note.  ``expressiveness`` scales everything against deadpan (0 = deadpan:
   the written tempo, one velocity, written durations, no pedal; 1 = as trained; > 1 exaggerated).
4. **Decode** (:func:`~espressivo.features.phrase.phrase_performance`): the tempo curve over the written beat
   lengths at the tempo asked for, so the rendering keeps that mean tempo; marked arpeggios rolled; the global
   tempo and dynamics controls.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Score
from espressivo.errors import EspressivoError
from espressivo.features.phrase import beat_index as score_beats
from espressivo.features.phrase import (
    onset_keys,
    phrase_features,
    phrase_performance,
    written_beat_seconds,
    written_seconds,
)
from espressivo.features.score import score_features
from espressivo.features.slots import dynamics_velocity, score_slots
from espressivo.models.phrase import CURVES, DEVIATIONS

WINDOW = 512
CURVE_NOISE_BEATS = 3.0  # Gaussian sigma of the beat curves' noise, in beats


def windows(beat: np.ndarray, size: int, max_beats: int) -> list[tuple[int, int]]:
    """(start, stop) note ranges of about ``size`` notes and at most ``max_beats`` beats, overlapping by half."""
    n = len(beat)
    out, start = [], 0
    while True:
        stop = min(start + size, n)
        stop = start + max(1, int(np.searchsorted(beat[start:stop], beat[start] + max_beats, side="left")))
        out.append((start, stop))
        if stop >= n:
            return out
        start = max(start + 1, start + (stop - start) // 2)


def _triangle(length: int) -> np.ndarray:
    x = (np.arange(length) + 0.5) / length
    return np.minimum(x, 1 - x) + 1e-3


def predict(model, score: Score, qpm: float | None, tokenizer) -> dict[str, np.ndarray]:
    """Per beat (``tempo``, ``level``) and per note (``timing``, ``velocity``, ``articulation``): (., 2) mean and
    log sd; ``pedal``: (n, 4) probabilities.  Windows in one batch, averaged where they overlap."""
    import torch

    notes = score.notes
    n = len(notes)
    sf = score_features(score)
    onset_beat = notes["onset_beat"]
    features = phrase_features(sf, score.marks, onset_beat)
    q = notes["onset_quarter"]
    onset = written_seconds(score, q, qpm)
    duration = written_seconds(score, q + notes["duration_quarter"], qpm) - onset
    beat, _ = score_beats(onset_beat)
    c = model.config
    spans = windows(beat, min(WINDOW, c.max_notes), c.max_beats)
    length = max(b - a for a, b in spans)
    velocity = dynamics_velocity(sf["dynamic"])
    batch = {
        "src": np.zeros((len(spans), length, len(c.slot_sizes)), np.int64),
        "features": np.zeros((len(spans), length, features.shape[1]), np.float32),
        "beat": np.zeros((len(spans), length), np.int64),
        "keep": np.zeros((len(spans), length), bool),
    }
    for row, (a, b) in enumerate(spans):
        src = score_slots(onset[a:b] - onset[a], duration[a:b], notes["pitch"][a:b], velocity[a:b], tokenizer)
        src[0, 1] = 0
        batch["src"][row, : b - a], batch["features"][row, : b - a] = src, features[a:b]
        batch["beat"][row, : b - a], batch["keep"][row, : b - a] = beat[a:b] - beat[a], True
    with torch.inference_mode():
        out = model.predict(**{k: torch.from_numpy(v) for k, v in batch.items()})
    out = {k: v.float().numpy() for k, v in out.items()}
    n_beats = int(beat.max()) + 1
    result = {name: np.zeros((n_beats, 2)) for name in CURVES} | {name: np.zeros((n, 2)) for name in DEVIATIONS}
    result["pedal"] = np.zeros((n, out["pedal"].shape[-1]))
    note_weight, beat_weight = np.zeros(n), np.zeros(n_beats)
    for row, (a, b) in enumerate(spans):
        w = _triangle(b - a)
        note_weight[a:b] += w
        for name in DEVIATIONS:
            result[name][a:b] += w[:, None] * out[name][row, : b - a]
        result["pedal"][a:b] += w[:, None] * (1 / (1 + np.exp(-out["pedal"][row, : b - a])))
        first, used = int(beat[a]), int(beat[b - 1] - beat[a]) + 1
        wb = _triangle(used)
        beat_weight[first : first + used] += wb
        for name in CURVES:
            result[name][first : first + used] += wb[:, None] * out[name][row, :used]
    for name in DEVIATIONS:
        result[name] /= note_weight[:, None]
    result["pedal"] /= note_weight[:, None]
    filled = beat_weight > 0
    result["group"] = onset_keys(onset_beat)[1]
    for name in CURVES:
        curve = result[name]
        curve[filled] /= beat_weight[filled, None]
        if not filled.all():  # beats no window saw (none should be): the nearest seen
            idx = np.flatnonzero(filled)
            for j in range(2):
                curve[~filled, j] = np.interp(np.flatnonzero(~filled), idx, curve[filled, j])
    return result


def smooth_noise(rng: np.random.Generator, length: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed over ``sigma`` steps (white noise where ``sigma`` is 0)."""
    white = rng.standard_normal(length + 8 * int(np.ceil(sigma)))
    if sigma <= 0:
        return white[:length]
    radius = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= np.sqrt((kernel**2).sum())
    return np.convolve(white, kernel, mode="same")[4 * int(np.ceil(sigma)) :][:length]


NEUTRAL = {"tempo": 0.0, "timing": 0.0, "velocity": 0.0, "articulation": 0.0}  # deadpan; level: its own mean


def sample(
    prediction: dict[str, np.ndarray], *, expressiveness: float, temperature: float, seed: int,
    calibration: dict | None = None,
) -> dict:  # fmt: skip
    """Curves and deviations drawn from the predicted Gaussians (module docstring, step 3).  Per output
    ``calibration`` gives ``gain`` (the predicted mean's departures from its own average, widened to the
    pianists' spread: a regression's mean is shrunk towards the average) and ``noise`` (the share of the
    predicted sd drawn), as fitted on validation (:func:`fit_calibration`); ``temperature`` scales the noise."""
    rng = np.random.default_rng(seed)
    e, t = float(expressiveness), float(temperature)
    calibration = calibration or {}
    out = {}
    for name in (*CURVES, *DEVIATIONS):
        mean, sd = prediction[name][:, 0], np.exp(prediction[name][:, 1])
        gain = calibration.get(name, {}).get("gain", 1.0)
        noise_share = calibration.get(name, {}).get("noise", 1.0)
        centre = mean.mean()
        noise = smooth_noise(rng, len(mean), CURVE_NOISE_BEATS) if name in CURVES else rng.standard_normal(len(mean))
        value = centre + gain * (mean - centre) + t * noise_share * sd * noise
        neutral = value.mean() if name == "level" else NEUTRAL[name]
        out[name] = neutral + e * (value - neutral)
    pedal = calibration.get("pedal", {})
    out["pedal"] = pedal_decision(prediction["pedal"], prediction["group"], pedal.get("hold", 1.0),
                                  pedal.get("lift", 1.0)) & (e > 0)  # fmt: skip
    return out


def pedal_decision(probability: np.ndarray, group: np.ndarray, hold: float = 1.0, lift: float = 1.0) -> np.ndarray:
    """(n, 4) pedal samples from the predicted probabilities, one decision per score onset (``group``).  The
    model's probability is an average over pianists, who each pedal decisively: the pedal is held at the share
    of onsets the model expects it held (``hold`` x the mean probability over the later samples at ¼, ½, ¾ of
    the IOI), at the onsets where that probability is highest; it is lifted at an onset itself (a change: up at
    the new harmony, down again just after) where the probability at the onset lies ``lift`` or more below it."""
    count = np.bincount(group)
    later = np.bincount(group, weights=probability[:, 1:].mean(1)) / count
    at_onset = np.bincount(group, weights=probability[:, 0]) / count
    share = float(np.clip(hold * later.mean(), 0.0, 1.0)) if len(later) else 0.0
    if share <= 0:
        held = np.zeros(len(later), bool)
    else:
        held = later >= np.quantile(later, 1.0 - share)
    lifted = held & (later - at_onset >= lift)
    samples = np.repeat(held[:, None], probability.shape[1], axis=1)
    samples[:, 0] &= ~lifted
    return samples[group]


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
    from espressivo.features.phrase import DERIVED, N_FEATURES

    real = window["keep"]
    ok = window["note_ok"][real]
    below = window["features"][real, N_FEATURES + 12 + DERIVED.index("below_top")]
    total = [0.0, 0.0]
    for k, values in enumerate((window["velocity"][real], predicted[: int(real.sum())])):
        top = np.bincount(group[ok], weights=np.where(below[ok] == 0, values[ok], 0.0), minlength=group.max() + 1)
        n_top = np.bincount(group[ok], weights=(below[ok] == 0).astype(float), minlength=group.max() + 1)
        rest = np.bincount(group[ok], weights=np.where(below[ok] > 0, values[ok], 0.0), minlength=group.max() + 1)
        n_rest = np.bincount(group[ok], weights=(below[ok] > 0).astype(float), minlength=group.max() + 1)
        both = (n_top > 0) & (n_rest > 0)
        total[k] = float((top[both] / n_top[both] - rest[both] / n_rest[both]).sum())
    return total[0], total[1]


def checked_calibration(calibration, path) -> dict:
    """A checkpoint's ``sampling`` block, or a one-line refusal: per output a mapping of finite numbers."""
    if calibration is None:
        return {}
    names = {*CURVES, *DEVIATIONS, "pedal"}
    ok = isinstance(calibration, dict) and all(
        name in names and isinstance(values, dict)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e6 for v in values.values())
        for name, values in calibration.items()
    )  # fmt: skip
    if not ok:
        raise EspressivoError(f"{path}/config.json: 'sampling' is not a phrase renderer's calibration")
    return calibration


def render_phrase(pretrained, score: Score, options, variations: int = 1) -> list:
    """``variations`` renderings of ``score`` (seeds ``options.seed``, +1, ...)."""
    from espressivo.render.base import Rendering, finish
    from espressivo.render.rolls import roll_chords

    if len(score) == 0:
        raise EspressivoError("the score has no notes to render")
    model = pretrained.model
    prediction = predict(model, score, options.tempo, pretrained.tokenizer)
    beat_sec, _ = written_beat_seconds(score, options.tempo)
    calibration = checked_calibration(pretrained.config.get("sampling"), pretrained.path)
    out = []
    for v in range(variations):
        drawn = sample(prediction, expressiveness=options.expressiveness, temperature=options.temperature,
                       seed=options.seed + v, calibration=calibration)  # fmt: skip
        perf = phrase_performance(score, beat_sec, drawn["tempo"], drawn["level"], drawn["timing"],
                                  drawn["velocity"], drawn["articulation"], drawn["pedal"])  # fmt: skip
        perf = roll_chords(perf, score, options.roll_step)
        out.append(Rendering(finish(perf, score, options, anchored=True), score, options))
    return out
