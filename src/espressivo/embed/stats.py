"""Hand-made statistics of a performance, the baseline the learned embeddings must beat: pitch-class
histogram, pitch, velocity, inter-onset and duration statistics, note density and chord size.

>>> features = performance_statistics(performance.notes)    # (len(STATISTICS),) float64
"""

from __future__ import annotations

import numpy as np

CHORD_SEC = 0.03  # onsets closer than this form one onset group (a chord)

STATISTICS = (
    *(f"pitch_class_{i}" for i in range(12)),
    "pitch_mean",
    "pitch_std",
    "pitch_p10",
    "pitch_p90",
    "velocity_mean",
    "velocity_std",
    "velocity_p10",
    "velocity_p90",
    "log_ioi_mean",
    "log_ioi_std",
    "log_ioi_median",
    "log_duration_mean",
    "log_duration_std",
    "notes_per_sec",
    "notes_per_chord",
    "log_notes",
    "log_duration_sec",
)


def performance_statistics(notes: np.ndarray) -> np.ndarray:
    """The statistics named in ``STATISTICS`` of a note array (NOTE_DTYPE, onset order, one note or more)."""
    pitch = notes["pitch"].astype(np.float64)
    velocity = notes["velocity"].astype(np.float64)
    onset = notes["onset_sec"]
    histogram = np.bincount(notes["pitch"].astype(np.int64) % 12, minlength=12) / len(notes)
    new_group = np.concatenate([[True], np.diff(onset) > CHORD_SEC])
    group_onsets = onset[new_group]
    ioi = np.diff(group_onsets)
    log_ioi = np.log(np.maximum(ioi, 1e-3)) if len(ioi) else np.zeros(1)
    log_duration = np.log(np.maximum(notes["duration_sec"], 1e-3))
    span = max(float((onset + notes["duration_sec"]).max() - onset.min()), 1e-3)
    return np.concatenate(
        [
            histogram,
            [pitch.mean(), pitch.std(), *np.percentile(pitch, [10, 90])],
            [velocity.mean(), velocity.std(), *np.percentile(velocity, [10, 90])],
            [log_ioi.mean(), log_ioi.std(), np.median(log_ioi)],
            [log_duration.mean(), log_duration.std()],
            [len(notes) / span, len(notes) / len(group_onsets), np.log(len(notes)), np.log(span)],
        ]
    )
