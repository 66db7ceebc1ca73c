"""The tempo a score is rendered at when the user gives none.

A score with a metronome mark is played around it (on (n)ASAP the pianists' mean tempo is within a median
12 % of the mark).  A score without one has no written tempo — a notation program, and partitura, then
assume 120 quarter notes per minute, which is how a Bach fugue ends up twice as fast as anyone plays it
(pianists' tempo is then a median 27 % off 120).  For such a score :func:`estimated_qpm` predicts the tempo a
pianist takes from what the score does say:

* how fast its fast notes are: ``log`` of the 25th percentile of the intervals between distinct onsets,
  in quarter notes (a piece in sixteenths is played slower than one in quarters), and
* its opening tempo word, on an ordinal scale (grave -2 ... moderato 0 ... prestissimo 2.5; a text naming
  several, "Allegro moderato", takes their mean; no word counts as moderato).

``log qpm = INTERCEPT + FAST_NOTES x feature 1 + WORD x feature 2``, a ridge fit
over the train scores without a mark (``python tools/fit_tempo.py``; ``docs/eval/tempo-fit.json``).

>>> chosen_qpm(score)   # None: the score's own (marked) tempo; else the estimate
"""

from __future__ import annotations

import numpy as np

from espressivo.core import Score

# ordinal tempo words (Italian, as printed at the head of a piece)
TEMPO_WORDS = {
    "grave": -2.0, "largo": -2.0, "lento": -1.5, "adagio": -1.5, "larghetto": -1.0, "andante": -0.5,
    "andantino": -0.3, "moderato": 0.0, "allegretto": 0.5, "allegro": 1.0, "vivace": 1.5, "presto": 2.0,
    "prestissimo": 2.5,
}  # fmt: skip
OPENING_QUARTERS = 8.0  # a tempo word counts as the piece's if written within this many quarters of its start
INTERCEPT = 5.003
FAST_NOTES = 0.3771
WORD = 0.2943  # 56 train scores without a mark: mean |log error| 0.365 -> 0.247


def has_metronome_mark(score: Score) -> bool:
    return bool(np.isfinite(score.tempo_markings["qpm"]).any())


def tempo_word(score: Score) -> float:
    """The opening tempo word's place on the ordinal scale (0, moderato, where there is none)."""
    marks = score.tempo_markings
    if not len(marks) or not len(score):
        return 0.0
    start = float(score.notes["onset_quarter"].min())
    for text in marks["text"][marks["onset_quarter"] <= start + OPENING_QUARTERS]:
        words = text.lower().replace(",", " ").replace(".", " ").split()
        found = [TEMPO_WORDS[w] for w in words if w in TEMPO_WORDS]
        if found:
            return float(np.mean(found))
    return 0.0


def fast_note_quarters(score: Score) -> float:
    """The 25th percentile of the intervals between distinct onsets (grace notes left out), in quarters."""
    notes = score.notes[~score.notes["is_grace"]]
    onsets = np.unique(np.round(notes["onset_quarter"], 4))
    if len(onsets) < 2:
        return 1.0
    return float(np.percentile(np.diff(onsets), 25))


def tempo_features(score: Score) -> np.ndarray:
    """The two predictors of :func:`estimated_qpm`."""
    return np.array([np.log(max(fast_note_quarters(score), 1 / 64)), tempo_word(score)])


def fit_tempo(features: np.ndarray, log_qpm: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Ridge least squares (the intercept unpenalised): ``[intercept, fast notes, word]``."""
    x = np.column_stack([np.ones(len(features)), features])
    penalty = ridge * np.diag([0.0] + [1.0] * features.shape[1])
    return np.linalg.solve(x.T @ x + penalty, x.T @ np.asarray(log_qpm, dtype=np.float64))


def estimated_qpm(score: Score, coefficients=(INTERCEPT, FAST_NOTES, WORD)) -> float:
    """The tempo (quarter notes per minute) pianists would take, from the score alone; within 20..300."""
    log_qpm = coefficients[0] + float(np.dot(coefficients[1:], tempo_features(score)))
    return float(np.clip(np.exp(log_qpm), 20.0, 300.0))


def chosen_qpm(score: Score) -> float | None:
    """The estimate for a score without a metronome mark; None where the score has one (its own tempo)."""
    return None if has_metronome_mark(score) else estimated_qpm(score)
