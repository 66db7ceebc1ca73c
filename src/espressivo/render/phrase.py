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
from espressivo.features.phrase import phrase_features, phrase_performance, written_beat_seconds, written_seconds
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
    threshold = calibration.get("pedal", {}).get("threshold", 0.5)
    out["pedal"] = (prediction["pedal"] >= threshold) & (e > 0)
    return out


def _presses(down: np.ndarray) -> int:
    flat = down.reshape(-1)
    return int(flat[0]) + int((flat[1:] & ~flat[:-1]).sum()) if len(flat) else 0


def _pedal_threshold(predicted: list[np.ndarray], true: list[np.ndarray]) -> float:
    """The probability above which the pedal is down, chosen so that the rendered pedal is pressed as often
    as the pianists press it (presses counted over the notes' four samples in score order, per window)."""
    target = sum(_presses(t) for t in true)
    grid = np.round(np.arange(0.30, 0.91, 0.02), 2)
    counts = np.array([sum(_presses(p >= g) for p in predicted) for g in grid])
    return float(grid[int(np.argmin(np.abs(counts - target)))]) if target else 0.5


def fit_calibration(model, windows, noise: float | dict = 0.5, max_gain: float = 3.0) -> dict:
    """Per output, the gain that gives the rendering the pianists' spread inside a window: ``gain^2 Var(mean)
    + noise^2 E[sd^2] = Var(target)`` (variances within windows, over the measured beats / matched notes),
    at least 1 and at most ``max_gain``; and the pedal's threshold (:func:`_pedal_threshold`).
    ``windows``: :class:`~espressivo.data.phrase.PhrasePairs` windows of the validation split."""
    import torch

    sums = {name: np.zeros(3) for name in (*CURVES, *DEVIATIONS)}
    pedal_pred, pedal_true = [], []
    with torch.inference_mode():
        for w in windows:
            batch = {k: torch.from_numpy(w[k][None]) for k in ("src", "features", "beat", "keep")}
            out = {k: v[0].float().numpy() for k, v in model.predict(**batch).items()}
            played = w["note_ok"] & w["keep"]
            pedal_pred.append(1 / (1 + np.exp(-out["pedal"][played])))
            pedal_true.append(w["pedal"][played] > 0.5)
            for name in (*CURVES, *DEVIATIONS):
                ok = w[f"{name}_ok"] if name in CURVES else (w["note_ok"] & w["keep"])
                pred = out[name][: len(ok)][ok[: len(out[name])]] if name in CURVES else out[name][ok]
                target = w[name][: len(out[name])][ok[: len(out[name])]] if name in CURVES else w[name][ok]
                if len(target) < 4:
                    continue
                mu, sd2 = pred[:, 0], np.exp(2 * pred[:, 1])
                sums[name] += [len(target) * target.var(), len(target) * mu.var(), sd2.sum()]
    result = {"pedal": {"threshold": _pedal_threshold(pedal_pred, pedal_true)}}
    for name, (var_y, var_mu, sd2) in sums.items():
        share = float(noise.get(name, 0.5) if isinstance(noise, dict) else noise)
        room = max(var_y - share**2 * sd2, 0.0)
        gain = float(np.clip(np.sqrt(room / var_mu), 1.0, max_gain)) if var_mu > 0 else 1.0
        result[name] = {"gain": round(gain, 3), "noise": share}
    return result


def render_phrase(pretrained, score: Score, options, variations: int = 1) -> list:
    """``variations`` renderings of ``score`` (seeds ``options.seed``, +1, ...)."""
    from espressivo.render.base import Rendering, finish
    from espressivo.render.rolls import roll_chords

    if len(score) == 0:
        raise EspressivoError("the score has no notes to render")
    model = pretrained.model
    prediction = predict(model, score, options.tempo, pretrained.tokenizer)
    beat_sec, _ = written_beat_seconds(score, options.tempo)
    out = []
    for v in range(variations):
        drawn = sample(prediction, expressiveness=options.expressiveness, temperature=options.temperature,
                       seed=options.seed + v, calibration=pretrained.config.get("sampling"))  # fmt: skip
        perf = phrase_performance(score, beat_sec, drawn["tempo"], drawn["level"], drawn["timing"],
                                  drawn["velocity"], drawn["articulation"], drawn["pedal"])  # fmt: skip
        perf = roll_chords(perf, score, options.roll_step)
        out.append(Rendering(finish(perf, score, options, anchored=True), score, options))
    return out
