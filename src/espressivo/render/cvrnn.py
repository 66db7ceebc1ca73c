"""Rendering, encoding and steering with a trained CVRNN (family ``cvrnn``).

>>> pretrained = load_pretrained("cvrnn-small")
>>> perf = render_cvrnn(pretrained, score, RenderOptions.of(seed=3))[0].performance
>>> z = interpret(pretrained, score, performance, alignment)          # (notes, 5) interpretation sequence
>>> perf = render_cvrnn(pretrained, score, options, shift=np.array([2, 0, 0, 0, 0]))  # "+2 on dimension 1"

**Generation** walks the score note by note: z_n from the prior p(z | h_{n-1}) (``µ + sigma ε``), the
performance classes from p(x | z_n, c_n) (temperature and top-p per head, as ``espressivo render``), then the
state update.  ``shift`` (5 numbers, or one row per note) moves z by ``shift ⊗ sigma`` along the prior — the
CVRNN paper's µ ± Δ ⊗ exp(gamma) experiment (sigma = exp(gamma / 2)); ``sample_z=False`` takes z = µ + shift ⊗ sigma
exactly.

**Priming** feeds known notes through the inference network q(z | x, h) (z = its mean) before generating:
the first notes of the same score (the evaluation's protocol), or a reference performance of another score
(``reference_state``: its state h carries the interpretation over to the target score).

Tempo: the model plays around the reference tempo it is given (written, or ``--tempo``); its tempo head is
relative to that, so no mean-tempo correction is applied afterwards (a steered "faster" stays faster).
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Alignment, Performance, Score
from espressivo.core.alignment import align
from espressivo.data.cvrnn import piece_arrays
from espressivo.data.pairs import performed_notes, written_notes
from espressivo.errors import EspressivoError
from espressivo.features import encode_expression, score_features
from espressivo.features.cvrnn import ScoreTrack, decode_performance, encode_performance, roll_windows, track_from_score
from espressivo.generate.draw import draw
from espressivo.generate.draw import threads as torch_threads
from espressivo.render.base import Rendering, finish, with_score_tempo


def _torch():
    import torch

    return torch


def score_context(model, track: ScoreTrack):
    """c_n for every note of ``track``: (1, n, score_dim)."""
    torch = _torch()
    c = model.config
    roll, group = roll_windows(track, c.roll_steps_per_beat, c.roll_radius_beats, c.roll_pitches)
    with torch.inference_mode():
        return model.score(torch.from_numpy(track.cats)[None], torch.from_numpy(roll)[None],
                           torch.from_numpy(group)[None])  # fmt: skip


def _shift_rows(shift, n: int, z_dim: int) -> np.ndarray:
    if shift is None:
        return np.zeros((n, z_dim))
    shift = np.asarray(shift, dtype=np.float64)
    if shift.ndim == 1:
        shift = np.tile(shift, (n, 1))
    if shift.shape != (n, z_dim) or not np.isfinite(shift).all():
        raise EspressivoError(f"the interpretation needs {z_dim} finite numbers (or one row of them per note)")
    return shift


def run(
    model,
    context,
    *,
    prime: np.ndarray | None = None,
    state=None,
    variations: int = 1,
    temperature: float = 1.0,
    top_p: float = 0.95,
    seed: int = 0,
    shift=None,
    sample_z: bool = True,
    zero_z: bool = False,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Walk the notes of ``context`` (1, n, d): the first ``len(prime)`` are encoded (q, z = its mean), the
    rest generated (p; ``zero_z``: z = 0).  Returns ``(classes (variations, n, heads), z (variations, n,
    z_dim))``.  ``threads``: torch threads for the walk (one is fastest for a note at a time)."""

    torch = _torch()
    c = model.config
    n = context.size(1)
    k = 0 if prime is None else len(prime)
    shift = torch.from_numpy(_shift_rows(shift, n, c.z_dim)).float()
    generator = torch.Generator().manual_seed(int(seed))
    classes = torch.zeros(variations, n, len(c.head_sizes), dtype=torch.long)
    zs = torch.zeros(variations, n, c.z_dim)
    if k:
        classes[:, :k] = torch.from_numpy(np.asarray(prime, dtype=np.int64))
    with torch_threads(threads), torch.inference_mode():
        state = model.new_state(variations) if state is None else [h.expand(variations, -1).clone() for h in state]
        for i in range(n):
            ctx = context[:, i].expand(variations, -1)
            h = state[-1]
            if i < k:
                phi_x = model.embed_x(classes[:, i])
                z, _ = model.posterior(torch.cat([h, phi_x], -1))
            else:
                mean, logvar = model.prior(h)
                noise = torch.randn(variations, c.z_dim, generator=generator) if sample_z else 0.0
                z = torch.zeros_like(mean) if zero_z else mean + (noise + shift[i]) * torch.exp(0.5 * logvar)
            psi_z = model.psi(z)
            if i >= k:
                for head, logits in enumerate(model.logits(ctx, psi_z)):
                    classes[:, i, head] = draw(logits, generator, temperature, top_p)
                phi_x = model.embed_x(classes[:, i])
            zs[:, i] = z
            state = model.step(state, ctx, phi_x, psi_z)
    return classes.numpy(), zs.numpy()


def reconstruct(model, context, x: np.ndarray) -> np.ndarray:
    """Encode a performance's classes ``x`` (n, heads) with the inference network and decode every note
    from its own posterior z (mean), taking the likeliest class per head: how much of a performance the
    interpretation sequence carries, given the score."""
    torch = _torch()
    xs = torch.from_numpy(np.asarray(x, dtype=np.int64))[None]
    out = np.zeros_like(x)
    with torch_threads(1), torch.inference_mode():  # note by note: one thread is fastest
        state = model.new_state(1)
        for i in range(xs.size(1)):
            phi_x = model.embed_x(xs[:, i])
            z, _ = model.posterior(torch.cat([state[-1], phi_x], -1))
            psi_z = model.psi(z)
            out[i] = [int(logits.argmax(-1)) for logits in model.logits(context[:, i], psi_z)]
            state = model.step(state, context[:, i], phi_x, psi_z)
    return out


def render_cvrnn(
    pretrained, score: Score, options, *, variations: int = 1, shift=None, sample_z: bool = True,
    reference_state=None,
) -> list:  # fmt: skip
    """Render ``score`` ``variations`` times (see the module docstring); ``Rendering`` objects as
    :func:`espressivo.render.render` returns."""

    options = with_score_tempo(score, options)
    track = track_from_score(score, options.timing.tempo)
    context = score_context(pretrained.model, track)
    drawn = options.sampling
    classes, _ = run(pretrained.model, context, state=reference_state, variations=variations,
                     temperature=drawn.temperature, top_p=drawn.top_p, seed=drawn.seed, shift=shift,
                     sample_z=sample_z, threads=drawn.threads or 1)  # fmt: skip
    results = []
    for rows in classes:
        perf = decode_performance(track, rows, sampled=True)
        notes = perf.notes.copy()  # track rows are score rows
        perf = finish(Performance(notes, perf.controls), score, options.replace(tempo=None))  # tempo: given above
        results.append(Rendering(perf, score, options))
    return results


def performed_track(score: Score, performance: Performance, alignment: Alignment):
    """The score's track at the performer's mean tempo and the performance's classes (score order);
    unplayed notes get interpolated values (as the training pairs)."""

    expression = encode_expression(score, performance, alignment)
    info = piece_arrays({
        "written": written_notes(score),
        "performed": performed_notes(score, performance, alignment, expression),
        "expression": expression.features,
        "onset_beat": score.notes["onset_beat"],
        "score_features": score_features(score),
    })  # fmt: skip
    x = encode_performance(info["track"], info["onset"], info["duration"], info["velocity"], info["pedal"],
                           beat_period=info["beat_period"])  # fmt: skip
    return info["track"], x, info["matched"]


def interpret(pretrained, score: Score, performance: Performance, alignment: Alignment | None = None):
    """The interpretation sequence of a performance: the inference network's mean z of every score note,
    (notes, z_dim), in score order; also returns the final state (to continue another score from it)."""

    torch = _torch()
    alignment = align(score, performance) if alignment is None else alignment
    track, x, _ = performed_track(score, performance, alignment)
    model = pretrained.model
    context = score_context(model, track)
    with torch_threads(1), torch.inference_mode():  # note by note: one thread is fastest
        state = model.new_state(1)
        zs = []
        xs = torch.from_numpy(x)[None]
        for i in range(len(track)):
            phi_x = model.embed_x(xs[:, i])
            z, _ = model.posterior(torch.cat([state[-1], phi_x], -1))
            zs.append(z[0])
            state = model.step(state, context[:, i], phi_x, model.psi(z))
    return torch.stack(zs).numpy(), state


def reference_state(pretrained, score: Score, performance: Performance, alignment=None, notes: int = 64):
    """The state after encoding the first ``notes`` score notes of a reference performance."""
    if notes < 1:
        raise EspressivoError("--reference-notes must be >= 1")
    keep = np.argsort(score.notes["onset_beat"], kind="stable")[: min(notes, len(score))]
    first = score.notes["id"][keep]

    alignment = align(score, performance) if alignment is None else alignment
    ok = np.isin(alignment.matches["score_id"], first)
    if ok.sum() < 2:
        raise EspressivoError("the reference performance plays fewer than two of the reference score's first notes")
    sub_score = Score(score.notes[np.sort(keep)], score.time_signatures, score.key_signatures,
                      score.tempo_markings, score.dynamics, score.measures, score.title)  # fmt: skip
    sub_alignment = Alignment.from_pairs(alignment.matches["score_id"][ok], alignment.matches["performance_id"][ok])
    _, state = interpret(pretrained, sub_score, performance, sub_alignment)
    return state


def keyframe_shift(keyframes: dict[float, list[float]], z_dim: int, position: np.ndarray) -> np.ndarray:
    """The interpretation as keyframes ``{fraction of the score: z shifts}`` (0 = first note, 1 = last; one
    keyframe: constant), interpolated linearly -> (notes, z_dim) shifts in prior sigmas.  The CLI's
    ``--interpretation`` and the studio's sliders both steer through this."""
    position = np.asarray(position, dtype=np.float64)
    span = float(position.max() - position.min()) if len(position) else 0.0
    where = (position - position.min()) / span if span > 0 else np.zeros(len(position))
    keys = np.array(sorted(keyframes), dtype=np.float64)
    rows = np.array([np.asarray(keyframes[k], dtype=np.float64) for k in sorted(keyframes)]).reshape(len(keys), -1)
    if not len(keys) or rows.shape[1] != z_dim or not np.isfinite(rows).all() or np.abs(rows).max() > 10:
        raise EspressivoError(f"the interpretation needs {z_dim} numbers within ±10 (prior sigmas) per keyframe")
    if not (np.isfinite(keys).all() and keys.min() >= 0 and keys.max() <= 1):
        raise EspressivoError("interpretation keyframes lie at fractions 0..1 of the score")
    if len(keys) == 1:
        return np.tile(rows[0], (len(position), 1))
    return np.stack([np.interp(where, keys, rows[:, d]) for d in range(z_dim)], 1)


def parse_interpretation(text: str, z_dim: int, position: np.ndarray) -> np.ndarray:
    """``--interpretation``: ``"d1,...,dk"`` (constant) or keyframes ``"0:d1,...;0.5:...;1:..."`` at fractions of
    the score (0 = first note, 1 = last), interpolated linearly -> (notes, z_dim) shifts in prior sigmas."""

    def numbers(part: str) -> np.ndarray:
        try:
            values = np.array([float(v) for v in part.split(",")])
        except ValueError:
            raise EspressivoError(f"--interpretation: {part!r} is not {z_dim} comma-separated numbers") from None
        if len(values) != z_dim or not np.isfinite(values).all() or np.abs(values).max() > 10:
            raise EspressivoError(f"--interpretation needs {z_dim} numbers within ±10 (prior sigmas), got {part!r}")
        return values

    text = text.strip()
    if ":" not in text:
        return keyframe_shift({0.0: numbers(text)}, z_dim, position)
    keys, rows = [], []
    for frame in filter(None, (f.strip() for f in text.split(";"))):
        at, _, values = frame.partition(":")
        try:
            key = float(at)
        except ValueError:
            raise EspressivoError(f"--interpretation: keyframe {frame!r} must read FRACTION:d1,...") from None
        if not 0 <= key <= 1:
            raise EspressivoError(f"--interpretation: keyframe positions lie in 0..1, got {key}")
        keys.append(key)
        rows.append(numbers(values))
    if len(set(keys)) != len(keys):
        raise EspressivoError("--interpretation: two keyframes at the same position")
    return keyframe_shift(dict(zip(keys, rows, strict=True)), z_dim, position)


EFFECTS = (  # what a +2 against a -2 sigma shift of one dimension did, measured per model (evaluate render)
    ("tempo_percent", 5.0, "faster", "slower"),
    ("velocity", 2.0, "louder", "softer"),
    ("articulation_log2", 0.15, "longer notes", "shorter notes"),
)


def dimension_names(evaluation: dict, z_dim: int) -> list[str]:
    """A name for each latent dimension from what moving it did in the model's test evaluation (its card's
    ``latent_dimensions``): the changes that went the same way in at least three quarters of the segments and
    were large enough to hear, e.g. ``"slower, longer notes"``; ``"z3"`` where nothing was clear."""
    measured = (evaluation or {}).get("latent_dimensions") or {}
    names = []
    for k in range(z_dim):
        row, words = measured.get(f"z{k + 1}") or {}, []
        for key, threshold, up, down in EFFECTS:
            effect = row.get(key) or {}
            change, share = effect.get("mean_change_plus2_vs_minus2", 0.0), effect.get("same_sign_share", 0.0)
            if share >= 0.75 and abs(change) >= threshold:
                words.append(up if change > 0 else down)
        names.append(", ".join(words) or f"z{k + 1}")
    return names
