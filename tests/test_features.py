"""Expression features (checked against partitura's codec) and score features."""

import numpy as np
import pytest

from espressivo import Performance, read_score
from espressivo.core import SUSTAIN, Alignment
from espressivo.features import decode_expression, encode_expression, score_features
from espressivo.features.expression import MIN_PERFORMED_DURATION
from tests.conftest import EXAMPLES, tiny_score


def test_steady_performance_has_constant_tempo_and_no_deviation():
    score = tiny_score([0, 1, 2, 3], [1, 1, 1, 1], [60, 62, 64, 65])
    # 120 bpm, every note legato but the last one staccato (half its written length)
    perf = Performance.from_arrays([1.0, 1.5, 2.0, 2.5], [0.5, 0.5, 0.5, 0.25], [60, 62, 64, 65], [40, 50, 60, 70])
    alignment = Alignment.from_pairs(score.notes["id"], perf.notes["id"])
    e = encode_expression(score, perf, alignment)
    f = e.features
    assert f["beat_period"][:3] == pytest.approx([0.5, 0.5, 0.5])
    assert f["timing"] == pytest.approx([0, 0, 0, 0])
    assert f["articulation_log"][:3] == pytest.approx([0, 0, 0])
    assert f["velocity"] == pytest.approx(np.array([40, 50, 60, 70]) / 127)
    assert e.origin_sec == 1.0 and f["matched"].all()


def test_early_note_and_unplayed_note():
    score = tiny_score([0, 1, 1, 2, 3], [1, 1, 1, 1, 1], [60, 62, 67, 64, 65])
    # the chord's upper note 30 ms early; the E is not played
    perf = Performance.from_arrays([0.0, 0.5, 0.47, 1.5], [0.5, 0.5, 0.5, 0.5], [60, 62, 67, 65], [60] * 4,
                                   controls=[(0.4, SUSTAIN, 127)])  # fmt: skip
    ids = {(int(n["pitch"])): int(n["id"]) for n in perf.notes}
    alignment = Alignment.from_pairs(["n0", "n1", "n2", "n4"], [ids[60], ids[62], ids[67], ids[65]], deletions=["n3"])
    f = encode_expression(score, perf, alignment).features
    assert f["matched"].tolist() == [True, True, True, False, True]
    assert f["timing"][2] - f["timing"][1] == pytest.approx(0.03)  # positive = earlier
    assert f["beat_period"][3] > 0 and f["timing"][3] == 0 and f["pedal"][3] == 127
    decoded = decode_expression(score, encode_expression(score, perf, alignment), only_matched=True)
    assert len(decoded) == 4


def test_agrees_with_partitura_and_round_trips_on_real_pairs(asap):
    """12 real (n)ASAP pairs (drawn with seed 11): partitura's encode_tempo on the same matched notes gives the same
    beat periods, timings and articulations; decoding reproduces every matched note."""
    from espressivo.io.score import import_partitura

    import_partitura()
    from partitura.musicanalysis.performance_codec import encode_tempo

    rng = np.random.default_rng(11)
    usable = [i for i in asap if i.alignment_fits_score]
    picks = [usable[k] for k in rng.choice(len(usable), 12, replace=False)]
    for item in picks:
        score, perf, alignment = item.load_score(), item.load_performance(), item.load_alignment()
        e = encode_expression(score, perf, alignment)
        s_idx, p_idx = alignment.indices(score, perf)
        order = np.lexsort((score.notes["pitch"][s_idx], score.notes["onset_quarter"][s_idx]))
        s_idx, p_idx = s_idx[order], p_idx[order]
        sustained = perf.apply_sustain()
        durations = np.maximum(sustained.notes["duration_sec"][p_idx], MIN_PERFORMED_DURATION)
        theirs = encode_tempo(
            score.notes["onset_beat"][s_idx],
            sustained.notes["onset_sec"][p_idx],
            score.notes["duration_beat"][s_idx],
            durations,
        )
        ours = e.features[s_idx]
        assert np.allclose(ours["beat_period"], theirs["beat_period"], rtol=1e-5, atol=1e-5), item.name
        assert np.allclose(ours["timing"], theirs["timing"], atol=1e-4), item.name  # theirs is float32
        written = score.notes["duration_beat"][s_idx] > 0  # grace notes: see the module docstring
        assert np.allclose(ours["articulation_log"][written], theirs["articulation_log"][written], atol=1e-4), item.name
        decoded = decode_expression(score, e, only_matched=True)
        onset = np.empty(len(score.notes))
        onset[s_idx] = perf.notes["onset_sec"][p_idx]
        duration = np.empty(len(score.notes))
        duration[s_idx] = durations
        rows = decoded.notes["id"]
        assert np.abs(decoded.notes["onset_sec"] - onset[rows]).max() < 0.002, item.name
        assert np.abs(decoded.notes["duration_sec"] - duration[rows]).max() < 0.002, item.name


def test_score_features_of_the_etude():
    score = read_score(EXAMPLES / "etude.musicxml")
    f = score_features(score)
    assert len(f) == len(score)
    assert f["ts_beats"].tolist() == [4] * len(f) and set(f["key_mode"].tolist()) == {1}
    assert set(f["dynamic"].tolist()) == {-1.0, 0.5}  # p, then mf from bar 5
    assert np.all(f["written_qpm"] == 72)
    last_chord = f[np.abs(score.notes["onset_quarter"] - 28) < 1e-9]
    assert sorted(last_chord["chord_rank"].tolist()) == [0, 1, 2, 3] and last_chord["is_downbeat"].all()
    assert last_chord["is_top"].sum() == 1
    assert np.all((f["measure_position"] >= 0) & (f["measure_position"] < 1))
