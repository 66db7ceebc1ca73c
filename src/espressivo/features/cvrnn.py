"""CVRNN's note representation (seed 002, sections 3.1-3.2): score inputs and per-note performance classes.

Notes are in score order (onset beat, then pitch), grouped by onset.  A *beat* is the time signature's beat
(``Score.notes["onset_beat"]``).

**Performance** ``x_n`` — one class per head (:data:`HEADS`):

==============  =======  ===================================================================================
``velocity``    128      MIDI velocity
``duration``    800      performed duration in 1/100 beat at the note's tempo, 1..800 (class = value - 1)
``onset``       100      micro-onset: 1/100 beats after the *ideal onset*, -50..49 (class = value + 50)
``tempo``       100      the group's tempo as a deviation from the reference tempo, -50..+49 % (class + 50)
``pedal``       16       sustain pedal (down >= 64) at 0, 1/4, 1/2, 3/4 of the time to the next onset
==============  =======  ===================================================================================

*Tempo* is the slope of a Gaussian-kernel (squared-exponential, FWHM 2 beats) local linear regression of the
performed onsets on score beats, as the paper's (the seed).  The paper states the deviation in BPM (-50..49);
here it is in per cent of the reference tempo (the same at 100 BPM), so that a piece counted in eighths at 200 BPM
and one in halves at 50 BPM have the same room for rubato.  The *reference tempo* is the written tempo (its changes
kept) scaled to a mean: the performer's mean tempo in training, the written or ``--tempo`` one at rendering.

*Ideal onset* of a group = the previous group's mean onset + its beats apart x the group's beat period, so a
decoded performance never drifts from its own tempo curve: decoding is a cumulative sum (vectorised), and
encoding a human performance measures every group against the human's own previous group.  The pedal head
is espressivo's addition (the seed names pedal as future work).

**Score** — per note, the seed's categorical inputs (:data:`SCORE_CATEGORIES`: key signature, time signature
numerator and denominator, pitch, IOI from the previous onset and duration in 96th notes, the given tempo in
30-BPM steps, the written dynamic in steps of 10 velocity) and a piano-roll window of ±``radius`` beats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espressivo.core import NOTE_DTYPE, SUSTAIN, Performance
from espressivo.core.performance import canonical_order, make_controls
from espressivo.core.score import written_qpm
from espressivo.errors import EspressivoError
from espressivo.features.expression import onset_groups
from espressivo.features.score import score_features
from espressivo.features.slots import dynamics_velocity, pedal_sample_times

HEADS = {"velocity": 128, "duration": 800, "onset": 100, "tempo": 100, "pedal": 16}
SCORE_CATEGORIES = {"key": 15, "ts_beats": 12, "ts_beat_type": 12, "pitch": 128, "ioi_96th": 512,
                    "duration_96th": 192, "tempo_30bpm": 10, "dynamic_10": 13}  # fmt: skip
FWHM_BEATS = 2.0
ROLL_LOW_PITCH = 21  # rolls of 88 keys start at A0


@dataclass(frozen=True)
class ScoreTrack:
    """A score as CVRNN reads it (score order).  ``ref_bpm``: the reference tempo of every note (beats per
    minute); ``quarter_per_beat``: the time signature's beat in quarter notes."""

    onset_beat: np.ndarray
    duration_beat: np.ndarray
    pitch: np.ndarray
    cats: np.ndarray  # (n, len(SCORE_CATEGORIES)) class indices
    ref_bpm: np.ndarray
    quarter_per_beat: np.ndarray

    def __len__(self) -> int:
        return len(self.pitch)

    @property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        return onset_groups(self.onset_beat)

    def subset(self, rows: slice) -> ScoreTrack:
        return ScoreTrack(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    def transposed(self, semitones: int) -> ScoreTrack:
        pitch = self.pitch + semitones
        cats = self.cats.copy()
        cats[:, 3] = pitch
        return ScoreTrack(self.onset_beat, self.duration_beat, pitch, cats, self.ref_bpm, self.quarter_per_beat)


def written_bpm(onset_beat: np.ndarray, written_onset_sec: np.ndarray) -> np.ndarray:
    """Per note, the written tempo in beats per minute (from the written time map, group to next group)."""
    group, starts = onset_groups(onset_beat)
    u, t = onset_beat[starts], written_onset_sec[starts]
    if len(u) < 2:
        return np.full(len(onset_beat), 120.0)
    bpm = 60.0 * np.diff(u) / np.maximum(np.diff(t), 1e-6)
    return np.append(bpm, bpm[-1])[group]


def score_track(
    onset_beat: np.ndarray, sf: np.ndarray, written_onset_sec: np.ndarray, tempo_factor: float = 1.0
) -> ScoreTrack:
    """Build the track from score order arrays: onset beats, ``SCORE_FEATURE_DTYPE`` rows and the written
    onsets in seconds; ``tempo_factor`` scales the written tempo to the reference (> 1 = faster)."""

    n = len(onset_beat)
    if n == 0:
        raise EspressivoError("the score has no notes")
    onset_beat = np.asarray(onset_beat, dtype=np.float64)
    if np.any(np.diff(onset_beat) < -1e-9):
        raise EspressivoError("score notes must be in score order (onset, then pitch)")
    qpb = 4.0 / np.maximum(sf["ts_beat_type"].astype(np.float64), 1.0)
    group, starts = onset_groups(onset_beat)
    prev = np.concatenate([[onset_beat[0]], onset_beat[starts][:-1]])[group]
    ioi_q = (onset_beat - prev) * qpb
    ref = written_bpm(onset_beat, written_onset_sec) * tempo_factor
    qpm = ref * qpb
    cats = np.stack(
        [
            np.clip(sf["key_fifths"].astype(np.int64) + 7, 0, 14),
            np.clip(sf["ts_beats"].astype(np.int64) - 1, 0, 11),
            np.clip(np.rint(np.log2(np.maximum(sf["ts_beat_type"], 1))).astype(np.int64), 0, 11),
            np.clip(sf["pitch"].astype(np.int64), 0, 127),
            np.clip(np.rint(ioi_q * 24), 0, 511).astype(np.int64),
            np.clip(np.rint(sf["duration_beat"] * qpb * 24), 0, 191).astype(np.int64),
            np.clip(np.rint(qpm / 30.0) - 1, 0, 9).astype(np.int64),
            np.clip(dynamics_velocity(sf["dynamic"]) // 10, 0, 12).astype(np.int64),
        ],
        axis=1,
    )
    return ScoreTrack(onset_beat, sf["duration_beat"].astype(np.float64), sf["pitch"].astype(np.int64), cats,
                      ref, qpb)  # fmt: skip


def track_from_score(score, qpm: float | None = None) -> ScoreTrack:
    """The track of a :class:`Score` (its rows are already in score order); ``qpm`` sets the mean tempo."""

    if len(score) == 0:
        raise EspressivoError("the score has no notes to render")
    q = score.notes["onset_quarter"]
    factor = 1.0
    if qpm is not None and written_qpm(score) > 0:
        factor = qpm / written_qpm(score)
    return score_track(score.notes["onset_beat"], score_features(score), score.seconds_from_quarter(q), factor)


# ---------------------------------------------------------------------------- piano roll
def roll_windows(track: ScoreTrack, steps_per_beat: int, radius_beats: int, pitches: int = 88, rows=slice(None)):
    """Piano-roll windows of the onset groups of ``track[rows]`` (the roll is drawn from every note of
    ``track``, so a window sees beyond ``rows``): ``(windows (G, 2 r s, pitches) uint8, group of each row)``.

    1 where a note sounds, 2 at its onset frame; each window is centred on its group's onset."""
    s, half = int(steps_per_beat), int(radius_beats * steps_per_beat)
    low = ROLL_LOW_PITCH if pitches == 88 else 0
    on = np.rint(track.onset_beat * s).astype(np.int64)
    off = np.maximum(np.rint((track.onset_beat + track.duration_beat) * s).astype(np.int64), on + 1)
    origin = int(on.min()) - half
    length = int(off.max()) - origin + half + 1
    pitch = np.clip(track.pitch - low, 0, pitches - 1)
    diff = np.zeros((length + 1, pitches), np.int32)
    np.add.at(diff, (on - origin, pitch), 1)
    np.add.at(diff, (off - origin, pitch), -1)
    roll = (np.cumsum(diff, axis=0)[:length] > 0).astype(np.uint8)
    roll[on - origin, pitch] = 2
    group, starts = onset_groups(track.onset_beat[rows])
    centre = on[rows][starts] - origin
    index = centre[:, None] + np.arange(-half, half)[None, :]
    return roll[index], group


# ---------------------------------------------------------------------------- performance <-> classes
def smoothed_beat_period(beats: np.ndarray, onsets: np.ndarray, at: np.ndarray, fwhm: float = FWHM_BEATS):
    """Seconds per beat at ``at``: the slope of a kernel-weighted (squared exponential) local linear fit of
    ``onsets`` on ``beats``, shrunk toward the overall slope where the neighbourhood holds too few points."""
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    if len(beats) < 2 or np.ptp(beats) <= 0:
        return np.full(len(at), 0.5)
    overall = float(np.polyfit(beats, onsets, 1)[0])
    overall = overall if overall > 0 else 0.5
    out = np.empty(len(at))
    for lo in range(0, len(at), 512):  # chunks keep the (chunk x points) weights small
        a = at[lo : lo + 512, None]
        w = np.exp(-0.5 * ((beats[None, :] - a) / sigma) ** 2)
        sw = w.sum(1, keepdims=True) + 1e-12
        mb = (w * beats).sum(1, keepdims=True) / sw
        mt = (w * onsets).sum(1, keepdims=True) / sw
        sxx = (w * (beats - mb) ** 2).sum(1)
        sxy = (w * (beats - mb) * (onsets - mt)).sum(1)
        ridge = 0.25 * sigma**2  # a quarter of one point at one sigma: only bites where data is thin
        out[lo : lo + 512] = (sxy + ridge * overall) / (sxx + ridge)
    return np.clip(out, 0.02, 10.0)


def pedal_pattern(pedal: np.ndarray) -> np.ndarray:
    """(n, 4) CC64 values -> 16 binary patterns (down >= 64), first sample the high bit."""
    return ((np.asarray(pedal)[:, :4] >= 64) * np.array([8, 4, 2, 1])).sum(1).astype(np.int64)


def encode_performance(
    track: ScoreTrack,
    onset_sec: np.ndarray,
    duration_sec: np.ndarray,
    velocity: np.ndarray,
    pedal: np.ndarray | None = None,
    *,
    beat_period: np.ndarray | None = None,
    previous: tuple[float, float] | None = None,
) -> np.ndarray:
    """Per note (score order) the classes of :data:`HEADS`, (n, 5) int64.

    ``beat_period`` (per note, seconds per beat) defaults to the smoothed tempo of these onsets; pass the
    piece's own for a window.  ``previous``: (beat, mean onset) of the group before the first one (else the
    first group is measured against its own mean onset)."""
    group, starts = track.groups
    onset_sec = np.asarray(onset_sec, dtype=np.float64)
    count = np.bincount(group)
    mean_onset = np.bincount(group, weights=onset_sec) / count
    u = track.onset_beat[starts]
    if beat_period is None:
        beat_period = smoothed_beat_period(u, mean_onset, u)[group]
    ref_bp = 60.0 / track.ref_bpm
    tempo = np.clip(np.rint(100.0 * (ref_bp / beat_period - 1.0)), -50, 49)
    tempo_g = tempo[starts]
    bp_hat = ref_bp[starts] / (1.0 + tempo_g / 100.0)
    if previous is None:
        prev_beat, prev_onset = np.append(u[0], u[:-1]), np.append(mean_onset[0], mean_onset[:-1])
    else:
        prev_beat, prev_onset = np.append(previous[0], u[:-1]), np.append(previous[1], mean_onset[:-1])
    ideal = prev_onset + (u - prev_beat) * bp_hat
    micro = np.clip(np.rint(100.0 * (onset_sec - ideal[group]) / bp_hat[group]), -50, 49)
    duration = np.clip(np.rint(100.0 * np.asarray(duration_sec) / bp_hat[group]), 1, 800)
    out = np.zeros((len(track), len(HEADS)), np.int64)
    out[:, 0] = np.clip(np.rint(velocity), 0, 127)
    out[:, 1] = duration - 1
    out[:, 2] = micro + 50
    out[:, 3] = tempo_g[group] + 50
    if pedal is not None:
        out[:, 4] = pedal_pattern(pedal)
    return out


def kernel_smooth(at: np.ndarray, values: np.ndarray, fwhm: float = FWHM_BEATS) -> np.ndarray:
    """Gaussian-kernel (Nadaraya-Watson) smoothing of ``values`` given at positions ``at`` (beats)."""
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    out = np.empty(len(at))
    for lo in range(0, len(at), 512):
        w = np.exp(-0.5 * ((at[None, :] - at[lo : lo + 512, None]) / sigma) ** 2)
        out[lo : lo + 512] = (w * values).sum(1) / w.sum(1)
    return out


MIN_GROUP_IOI_SHARE = 0.3  # sampled timing: an onset group comes at least 30 % of its written IOI after the last


def decode_performance(
    track: ScoreTrack, classes: np.ndarray, start_sec: float = 0.0, *, sampled: bool = False
) -> Performance:
    """Classes (score order) -> :class:`Performance` whose notes' ``id`` is the row in ``track``.  A group's
    tempo is its first note's.

    ``sampled``: the classes were drawn note by note, not measured.  The group tempi are then smoothed with
    the kernel the tempo targets were made with (FWHM 2 beats: a measured tempo curve is smooth by
    construction, independent draws are not), and no onset group comes earlier than
    ``MIN_GROUP_IOI_SHARE`` of its written distance after the previous one (a tail draw of the micro-onset
    could otherwise put a group before the one it follows)."""
    if classes.ndim != 2 or classes.shape != (len(track), len(HEADS)):
        raise EspressivoError(f"classes must have shape ({len(track)}, {len(HEADS)})")
    group, starts = track.groups
    u = track.onset_beat[starts]
    factor = 1.0 + (classes[starts, 3] - 50) / 100.0
    if sampled and len(u) > 1:
        factor = np.exp(kernel_smooth(u, np.log(factor)))
    bp_hat = (60.0 / track.ref_bpm[starts]) / factor
    micro = (classes[:, 2] - 50) / 100.0 * bp_hat[group]
    mean_micro = np.bincount(group, weights=micro) / np.bincount(group)
    if sampled and len(u) > 1:
        floor = -(1.0 - MIN_GROUP_IOI_SHARE) * np.diff(u) * bp_hat[1:]
        lift = np.concatenate([[0.0], np.maximum(floor - mean_micro[1:], 0.0)])
        micro, mean_micro = micro + lift[group], mean_micro + lift
    # P_g = P_{g-1} + (u_g - u_{g-1}) bp_g + mean micro-onset of g: a cumulative sum
    steps = np.concatenate([[0.0], np.diff(u) * bp_hat[1:]]) + mean_micro
    steps[0] = mean_micro[0]
    mean_onset = np.cumsum(steps)
    ideal = mean_onset - mean_micro
    onset = ideal[group] + micro
    notes = np.zeros(len(track), NOTE_DTYPE)
    notes["onset_sec"] = onset - min(0.0, float(onset.min())) + start_sec
    notes["duration_sec"] = (classes[:, 1] + 1) / 100.0 * bp_hat[group]
    notes["pitch"] = track.pitch
    notes["velocity"] = np.clip(classes[:, 0], 1, 127)
    notes["id"] = np.arange(len(track))
    controls = _pedal_controls(notes, classes[:, 4])
    return Performance(canonical_order(notes, renumber=False), controls)


def _pedal_controls(notes: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    times = pedal_sample_times(notes["onset_sec"], notes["duration_sec"]).reshape(-1)
    values = (((patterns[:, None] >> np.array([3, 2, 1, 0])[None, :]) & 1) * 127).reshape(-1)
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    change = np.concatenate([[values[0] > 0], values[1:] != values[:-1]])
    if values[-1] > 0:  # release after the last note
        times = np.append(times, float((notes["onset_sec"] + notes["duration_sec"]).max()))
        values, change = np.append(values, 0), np.append(change, True)
    return make_controls(np.stack([times[change], np.full(int(change.sum()), SUSTAIN), values[change]], 1))
