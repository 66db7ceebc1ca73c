"""Scores and aligned performances as note slots for the renderer (the ``note`` tokenizer's block, as
slot-local classes: ``PITCH IOI VELOCITY DURATION PEDAL_1..k``).

**Note order.**  Score notes are ordered by written onset; inside a chord, at rendering, grace notes first,
then from the highest pitch down (:func:`render_order`).  The IOI slot is the time from the previous note,
never negative.  In fine-tuning chord notes come in the order the pianist played them (:func:`training_order`)
and a performed onset earlier than the previous note's is raised to it (a running maximum).  At rendering the
order is top-down, so the model spreads a chord from the top note down.  (A ``signed`` chord timing, chord
notes as offsets from the chord's first note, was measured and not shipped: docs/rendering.md; git keeps it.)

**Score side** (:func:`score_slots`): the deadpan performance at the written tempo (120 quarters per minute
without a metronome mark, or ``qpm``), velocity from the dynamics marking in force (as notation programs
export it: p 50, mf 71, f 78, ...), pedal up.  The first note's IOI is 0 on both sides.

**Score features** (:func:`feature_matrix`, named in :data:`SCORE_FEATURES`): 12 numbers per note the deadpan
MIDI does not carry (metre, chord position, grace, dynamics, mode), added to the renderer's encoder input; zeros
in pretraining.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import CONTROL_DTYPE, NOTE_DTYPE, SUSTAIN, Performance
from espressivo.core.performance import canonical_order, make_controls
from espressivo.errors import EspressivoError
from espressivo.tokenizers.note import NoteTokenizer

MIN_SEPARATE_IOI_MS = 5.0  # notes apart in the score stay at least this far apart (Pianist Transformer's floor)


def render_tokenizer() -> NoteTokenizer:
    """The renderer's representation: the ``note`` tokenizer with a binary sustain pedal."""
    return NoteTokenizer(pedal_levels=2)


def render_order(onset: np.ndarray, pitch: np.ndarray, is_grace: np.ndarray | None = None) -> np.ndarray:
    """Indices in renderer order: onset, then grace notes in the order given (a score's rows keep a grace
    sequence in written order), then pitch from high to low."""
    grace = np.zeros(len(onset), bool) if is_grace is None else np.asarray(is_grace, bool)
    key = np.rint(np.asarray(onset, dtype=np.float64) * 1e4).astype(np.int64)
    within = np.where(grace, np.arange(len(grace)), -np.asarray(pitch, dtype=np.int64))
    return np.lexsort((within, ~grace, key))


def _steps(seconds: np.ndarray, tok: NoteTokenizer, size: int) -> np.ndarray:
    return np.clip(np.rint(seconds * 1000.0 / tok.config.time_step_ms), 0, size - 1).astype(np.int64)


def slot_sizes(tok: NoteTokenizer) -> tuple[int, ...]:
    return tuple(stop - start for start, stop in tok.slot_ranges)


def dynamics_velocity(dynamic: np.ndarray) -> np.ndarray:
    """Dynamics level (-4 pppp .. +4 ffff, 0 none) -> MIDI velocity as notation programs write it."""
    return np.clip(np.rint(64 + 14 * np.asarray(dynamic, dtype=np.float64)), 16, 120).astype(np.int64)


def _ioi(onset_sec: np.ndarray) -> np.ndarray:
    return np.diff(np.concatenate([onset_sec[:1], onset_sec]))


def score_slots(
    onset_sec: np.ndarray, duration_sec: np.ndarray, pitch: np.ndarray, velocity: np.ndarray, tok: NoteTokenizer
) -> np.ndarray:
    """Deadpan score notes, already in renderer order -> (n, S) slot classes."""
    sizes = slot_sizes(tok)
    out = np.zeros((len(pitch), len(sizes)), np.int64)
    out[:, 0] = pitch
    out[:, 1] = _steps(np.maximum(_ioi(onset_sec), 0.0), tok, sizes[1])
    out[:, 2] = tok._velocity_level(np.asarray(velocity))
    out[:, 3] = _steps(np.maximum(duration_sec, 0.0), tok, sizes[3])
    return out  # pedal slots: up


def performed_slots(
    onset_sec: np.ndarray,
    duration_sec: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    pedal: np.ndarray,
    tok: NoteTokenizer,
) -> np.ndarray:
    """Performed notes, in the renderer order of their score notes -> (n, S) slot classes; IOIs under a running
    maximum."""
    sizes = slot_sizes(tok)
    out = np.zeros((len(pitch), len(sizes)), np.int64)
    out[:, 0] = pitch
    out[:, 1] = _steps(_ioi(np.maximum.accumulate(np.asarray(onset_sec, dtype=np.float64))), tok, sizes[1])
    out[:, 2] = tok._velocity_level(np.clip(np.rint(velocity), 1, 127))
    out[:, 3] = _steps(np.maximum(duration_sec, 0.0), tok, sizes[3])
    samples = tok.config.pedal_samples
    if samples:
        out[:, 4 : 4 + samples] = tok._pedal_level(np.asarray(pedal)[:, :samples])
    return out


def training_order(written_onset: np.ndarray, performed_onset: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Indices in fine-tuning order: written onset, then inside a chord the order the pianist played it in
    (pitch from high to low on ties).  Chord notes are exchangeable; ordered as played, their IOIs are the
    real spread instead of zeros from the running maximum (which moved 24 % of matched notes in pitch order).
    At rendering the order is :func:`render_order` (the model then spreads a chord from the top note down)."""
    key = np.rint(np.asarray(written_onset, dtype=np.float64) * 1e4).astype(np.int64)
    return np.lexsort((-np.asarray(pitch, dtype=np.int64), np.asarray(performed_onset, dtype=np.float64), key))


SCORE_FEATURES = ("measure_position", "is_downbeat", "beat_fraction", "log_duration", "log_ioi", "chord_size",
                  "is_top", "is_grace", "dynamic", "is_minor", "ts_beats", "present")  # fmt: skip


def named_columns(columns: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Named columns -> ((n, k) float32, their names): how every feature function hands its features on."""
    out = np.zeros((n, len(columns)), np.float32)
    for k, values in enumerate(columns.values()):
        out[:, k] = values
    return out, tuple(columns)


def feature_matrix(features: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """``SCORE_FEATURE_DTYPE`` rows -> ((n, 12) float32 of order one, :data:`SCORE_FEATURES`)."""
    f = features
    return named_columns({
        "measure_position": f["measure_position"],
        "is_downbeat": f["is_downbeat"],
        "beat_fraction": np.mod(f["beat_in_measure"], 1.0),
        "log_duration": np.log2(np.clip(f["duration_beat"], 1 / 64, 16)) / 4,
        "log_ioi": np.log2(np.clip(f["ioi_beat"], 1 / 64, 16)) / 4,
        "chord_size": np.minimum(f["chord_size"], 8) / 4,
        "is_top": f["is_top"],
        "is_grace": f["is_grace"],
        "dynamic": f["dynamic"] / 4,
        "is_minor": f["key_mode"] == 0,
        "ts_beats": np.minimum(f["ts_beats"], 16) / 8,
        "present": 1.0,  # score features present (0 in pretraining)
    }, len(f))  # fmt: skip


def decode_slots(
    slots: np.ndarray, score_ioi_steps: np.ndarray | None, tok: NoteTokenizer, start_sec: float = 0.0
) -> Performance:
    """Rendered slots (renderer order) -> Performance; ``id`` of each note = its row in ``slots``.

    Where the score has a positive IOI, the performed IOI is at least ``MIN_SEPARATE_IOI_MS``.  A chord note
    may have a negative IOI (it came before the one listed ahead of it); no onset precedes ``start_sec``."""
    if slots.ndim != 2 or slots.shape[1] != len(slot_sizes(tok)):
        raise EspressivoError("slots must have shape (notes, slots of the tokenizer)")
    step = tok.config.time_step_ms / 1000.0
    ioi = slots[:, 1] * step
    if score_ioi_steps is not None:
        ioi = np.where(score_ioi_steps > 0, np.maximum(ioi, MIN_SEPARATE_IOI_MS / 1000.0), ioi)
    notes = np.zeros(len(slots), NOTE_DTYPE)
    onset = np.cumsum(ioi) - (ioi[0] if len(ioi) else 0.0)
    notes["onset_sec"] = start_sec + onset - (min(float(onset.min()), 0.0) if len(onset) else 0.0)
    notes["duration_sec"] = np.maximum(slots[:, 3] * step, 0.01)
    notes["pitch"] = slots[:, 0]
    notes["velocity"] = tok._level_velocity(slots[:, 2])
    notes["id"] = np.arange(len(slots))
    controls = None
    samples = tok.config.pedal_samples
    if samples and len(slots):
        times = pedal_sample_times(notes["onset_sec"], notes["duration_sec"], samples).reshape(-1)
        values = tok._level_pedal(slots[:, 4 : 4 + samples]).reshape(-1)
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
        change = np.concatenate([[values[0] > 0], values[1:] != values[:-1]])
        if values[-1] > 0:  # release the pedal after the last note
            end = float((notes["onset_sec"] + notes["duration_sec"]).max())
            times, values = np.append(times, end), np.append(values, 0)
            change = np.append(change, True)
        rows = np.stack([times[change], np.full(int(change.sum()), SUSTAIN), values[change]], 1)
        controls = make_controls(rows)
    return Performance(
        canonical_order(notes, renumber=False), controls if controls is not None else np.zeros(0, CONTROL_DTYPE)
    )


def pedal_sample_times(onset_sec: np.ndarray, duration_sec: np.ndarray, samples: int = 4) -> np.ndarray:
    """(notes, samples) times spread over the time from each onset to the next later onset (for the notes
    of the last onset: over their duration).  Any onset order."""
    ordered = np.sort(onset_sec)
    k = np.searchsorted(ordered, onset_sec, side="right")
    later = k < len(ordered)
    span = np.where(later, ordered[np.minimum(k, len(ordered) - 1)] - onset_sec, duration_sec)
    return onset_sec[:, None] + span[:, None] * (np.arange(samples) / samples)[None, :]
