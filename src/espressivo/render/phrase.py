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
from espressivo.core.timemap import onset_keys
from espressivo.errors import EspressivoError
from espressivo.features.phrase import beat_index as score_beats
from espressivo.features.phrase import (
    phrase_features,
    phrase_performance,
    written_beat_seconds,
)
from espressivo.features.score import score_features
from espressivo.features.slots import dynamics_velocity, score_slots
from espressivo.models.phrase import CURVES, DEVIATIONS
from espressivo.render.base import Rendering, finish
from espressivo.render.rolls import roll_chords

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
    features, _ = phrase_features(sf, score.marks, onset_beat)
    q = notes["onset_quarter"]
    onset = score.written_seconds(q, qpm)
    duration = score.written_seconds(q + notes["duration_quarter"], qpm) - onset
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
                                  pedal.get("lift", 1.0), pedal.get("change")) & (e > 0)  # fmt: skip
    return out


def pedal_decision(
    probability: np.ndarray, group: np.ndarray, hold: float = 1.0, lift: float = 1.0, change: float | None = None
) -> np.ndarray:
    """(n, 4) pedal samples from the predicted probabilities, one decision per score onset (``group``).  The
    model's probability is an average over pianists, who each pedal decisively: the pedal is held at the share
    of onsets the model expects it held (``hold`` x the mean probability over the later samples at ¼, ½, ¾ of
    the IOI), at the onsets where that probability is highest; it is lifted at an onset itself (a change: up at
    the new harmony, down again just after) where the probability at the onset lies ``lift`` or more below it,
    and, with ``change``, where the onset's probability lies ``change`` or more below the highest of its two
    neighbours on each side: where pianists part (some lift there), the average dips for that onset alone — in
    fast, evenly pedalled passages the only trace of their changes."""
    count = np.bincount(group)
    later = np.bincount(group, weights=probability[:, 1:].mean(1)) / count
    at_onset = np.bincount(group, weights=probability[:, 0]) / count
    share = float(np.clip(hold * later.mean(), 0.0, 1.0)) if len(later) else 0.0
    if share <= 0:
        held = np.zeros(len(later), bool)
    else:
        held = later >= np.quantile(later, 1.0 - share)
    lifted = held & (later - at_onset >= lift)
    if change is not None and len(later) > 1:
        padded = np.pad(later, 2, mode="edge")
        around = np.max([padded[k : k + len(later)] for k in (0, 1, 3, 4)], axis=0)
        lifted |= held & (around - np.minimum(later, at_onset) >= change)
    samples = np.repeat(held[:, None], probability.shape[1], axis=1)
    samples[:, 0] &= ~lifted
    return samples[group]


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
    """``variations`` renderings of ``score`` (seeds ``options.sampling.seed``, +1, ...)."""

    if len(score) == 0:
        raise EspressivoError("the score has no notes to render")
    model = pretrained.model
    prediction = predict(model, score, options.timing.tempo, pretrained.tokenizer)
    beat_sec, _ = written_beat_seconds(score, options.timing.tempo)
    calibration = checked_calibration(pretrained.config.get("sampling"), pretrained.path)
    out = []
    for v in range(variations):
        drawn = sample(prediction, expressiveness=options.shaping.expressiveness,
                       temperature=options.sampling.temperature, seed=options.sampling.seed + v,
                       calibration=calibration)  # fmt: skip
        perf = phrase_performance(score, beat_sec, drawn["tempo"], drawn["level"], drawn["timing"],
                                  drawn["velocity"], drawn["articulation"], drawn["pedal"])  # fmt: skip
        perf = roll_chords(perf, score, options.shaping.roll_step)
        out.append(Rendering(finish(perf, score, options, anchored=True), score, options))
    return out
