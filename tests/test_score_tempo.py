"""The tempo a score without a metronome mark is rendered at: its features, the estimate, and the renderer."""

from dataclasses import replace

import numpy as np
import pytest

from espressivo.core import Score
from espressivo.core.score import TEMPO_DTYPE, score_note_dtype
from espressivo.render import RenderOptions, render
from espressivo.render.base import with_score_tempo
from espressivo.render.score_tempo import (
    INTERCEPT,
    estimated_qpm,
    fast_note_quarters,
    fit_tempo,
    has_metronome_mark,
    tempo_features,
    tempo_word,
)


def run(step: float, notes: int = 32, tempo=()) -> Score:
    """``notes`` notes ``step`` quarters apart (a grace note before the second), with tempo markings
    ``(onset_quarter, qpm, text)``."""
    rows = [(f"n{k}", k * step, step, k * step, step, 60 + k % 12, 1, 1, 0, False, 0) for k in range(notes)]
    rows.append(("g", step, 0.0, step, 0.0, 59, 1, 1, 0, True, 0))
    array = np.array(rows, dtype=score_note_dtype())
    return Score(array[np.argsort(array["onset_quarter"], kind="stable")],
                 tempo_markings=np.array(list(tempo), TEMPO_DTYPE))  # fmt: skip


def test_fast_notes_and_tempo_words():
    assert fast_note_quarters(run(0.25)) == 0.25  # the grace note is not an onset of its own
    assert tempo_word(run(0.5)) == 0.0  # no word: moderato
    assert tempo_word(run(0.5, tempo=[(0.0, np.nan, "Allegro")])) == 1.0
    assert tempo_word(run(0.5, tempo=[(0.0, np.nan, "Allegro moderato.")])) == 0.5  # the mean of both
    assert tempo_word(run(0.5, tempo=[(0.0, np.nan, "dolce"), (2.0, np.nan, "Adagio")])) == -1.5
    assert tempo_word(run(0.5, tempo=[(12.0, np.nan, "Presto")])) == 0.0  # not at the opening
    assert tempo_features(run(0.25, tempo=[(0.0, np.nan, "Presto")])).tolist() == [np.log(0.25), 2.0]


def test_estimate_slower_for_fast_notes_faster_for_fast_words():
    sixteenths, quarters = estimated_qpm(run(0.25)), estimated_qpm(run(1.0))
    assert quarters == pytest.approx(np.exp(INTERCEPT))
    assert sixteenths < quarters
    assert (
        estimated_qpm(run(1.0, tempo=[(0.0, np.nan, "Presto")]))
        > quarters
        > estimated_qpm(run(1.0, tempo=[(0.0, np.nan, "Largo")]))
    )
    assert 20 <= estimated_qpm(run(1 / 64, tempo=[(0.0, np.nan, "Grave")])) <= 300


def test_fit_recovers_exact_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    y = 4.5 + x @ np.array([0.4, 0.3])
    assert fit_tempo(x, y, ridge=0.0) == pytest.approx([4.5, 0.4, 0.3])


def test_only_a_score_without_a_metronome_mark_gets_the_estimate():
    marked = run(0.25, tempo=[(0.0, 96.0, "")])
    assert has_metronome_mark(marked) and with_score_tempo(marked, RenderOptions()).timing.tempo is None
    bare = run(0.25)
    assert with_score_tempo(bare, RenderOptions()).timing.tempo == pytest.approx(estimated_qpm(bare), abs=0.05)
    assert with_score_tempo(bare, RenderOptions.of(tempo=70)).timing.tempo == 70  # the user's tempo wins
    assert with_score_tempo(bare, RenderOptions.of(estimate_tempo=False)).timing.tempo is None


def test_a_renderer_plays_an_unmarked_score_at_the_estimate(tiny_checkpoint):
    from espressivo.models.checkpoint import load_pretrained

    pretrained = load_pretrained(tiny_checkpoint)
    anchored = replace(pretrained, config={**pretrained.config, "train": {"score_tempo": "performed"}})
    score = run(0.25)
    cases = ((RenderOptions.of(seed=1), estimated_qpm(score)), (RenderOptions.of(seed=1, estimate_tempo=False), 120))
    for options, qpm in cases:
        result = render(anchored, score, options)[0]
        perf = result.performance
        q = score.notes["onset_quarter"][perf.notes["id"]]
        t = perf.notes["onset_sec"]
        assert 60 * (q.max() - q.min()) / (t.max() - t.min()) == pytest.approx(qpm, rel=2e-3)
