"""Renderer evaluation: the metrics on hand-computed cases, and `espressivo evaluate render` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from espressivo.cli import main
from espressivo.core import NOTE_DTYPE, Performance
from espressivo.evaluate.metrics import distribution_scores, histogram, note_statistics, pearson


def test_pearson_and_its_convention_for_constant_predictions():
    assert pearson(np.array([1.0, 2, 3]), np.array([2.0, 4, 6])) == pytest.approx(1.0)
    assert pearson(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    assert pearson(np.full(5, 64.0), np.arange(5.0)) == 0.0
    assert math.isnan(pearson(np.array([1.0]), np.array([2.0])))


def test_histograms_drop_values_outside_their_windows():
    h = histogram(np.array([0.0, 0.4, 1.0, 199.9, 200.0, 250.0, -1.0]), "ioi_ms")
    assert h.sum() == 4 and h[0] == 2 and h[1] == 1 and h[199] == 1


def test_distribution_scores_identical_and_disjoint():
    a = {"velocity": np.array([10.0, 20]), "duration_ms": np.array([100.0]), "ioi_ms": np.array([50.0]),
         "pedal_pattern": np.array([0.0, 15])}  # fmt: skip
    b = {"velocity": np.array([90.0, 100]), "duration_ms": np.array([300.0]), "ioi_ms": np.array([150.0]),
         "pedal_pattern": np.array([3.0, 5])}  # fmt: skip
    same = distribution_scores([a], [a])
    assert same["overall"]["js_distance"] == pytest.approx(0.0, abs=1e-12)
    assert same["overall"]["intersection"] == pytest.approx(1.0)
    apart = distribution_scores([a], [b])
    assert apart["overall"]["js_distance"] == pytest.approx(1.0)  # base 2: disjoint supports -> 1
    assert apart["overall"]["intersection"] == pytest.approx(0.0)


def test_note_statistics_of_a_small_performance():
    notes = np.zeros(3, NOTE_DTYPE)
    notes["onset_sec"] = [0.0, 0.1, 0.35]
    notes["duration_sec"] = [0.2, 0.05, 0.5]
    notes["pitch"] = [60, 64, 67]
    notes["velocity"] = [30, 60, 90]
    stats = note_statistics(Performance(notes))
    assert stats["velocity"].tolist() == [30, 60, 90]
    assert stats["duration_ms"].tolist() == [200, 50, 500]
    assert stats["ioi_ms"].tolist() == [100, 250]
    assert stats["pedal_pattern"].tolist() == [0, 0, 0]


@pytest.fixture(scope="module")
def eval_pairs(tmp_path_factory, asap_root):
    out = tmp_path_factory.mktemp("epairs")
    assert main(["data", "pairs", "--out", str(out), "--root", str(asap_root.parent), "--split", "test",
                 "--limit", "3", "--workers", "1"]) == 0  # fmt: skip
    return out


def test_cli_evaluate_render_end_to_end(tiny_checkpoint, eval_pairs, asap_root, tmp_path, capsys):
    report_path = tmp_path / "r.json"
    code = main(["evaluate", "render", "--model", str(tiny_checkpoint), "--pairs", str(eval_pairs), "--root",
                 str(asap_root.parent), "--max-pieces", "1", "--stride", "500", "--json", str(report_path),
                 "--markdown", str(tmp_path / "r.md"), "--plot", str(tmp_path / "r.png")])  # fmt: skip
    assert code == 0
    report = json.loads(report_path.read_text())
    systems = report["systems"]
    assert set(systems) == {"deadpan", str(tiny_checkpoint), "human"}
    assert systems["deadpan"]["per_note"]["velocity"]["r"] == 0.0  # constant velocity
    assert 0 <= systems[str(tiny_checkpoint)]["distribution"]["overall"]["intersection"] <= 1
    assert report["primed"][str(tiny_checkpoint)]["starting_points"] > 0
    assert "| deadpan |" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "r.png").stat().st_size > 10_000 and (tmp_path / "r-hist.png").stat().st_size > 10_000
    assert (tmp_path / "r-tempo.png").stat().st_size > 10_000  # one piece's tempo curves beside its pianists'
    shape = systems["deadpan"]["shape"]
    assert shape["velocity_sd"] == 0.0 and shape["melody_lead"] == 0.0 and shape["pedal_per_minute"] == 0.0
    human = systems["human"]["shape"]
    assert human["velocity_sd"] > 5 and human["pedal_ratio_median"] > 0
    piece = next(iter(report["tempo_curves"].values()))
    assert len(piece["human"]) >= 2 and len(piece["deadpan"]) == len(piece["human"][0])


def test_evaluate_render_from_the_midi_score(eval_pairs, asap_root, tmp_path):
    """--score-source midi: the phrase renderer reads midi_score.mid (no markings); distributions and shape only."""
    import torch

    from espressivo.features.slots import render_tokenizer, slot_sizes
    from espressivo.models import build_model
    from espressivo.models.checkpoint import save_checkpoint

    tok = render_tokenizer()
    torch.manual_seed(0)
    model = build_model("phrase", "tiny", slot_sizes=slot_sizes(tok)).eval()
    checkpoint = save_checkpoint(tmp_path / "phrase", model, "phrase", tok)
    report_path = tmp_path / "m.json"
    code = main(["evaluate", "render", "--model", str(checkpoint), "--pairs", str(eval_pairs), "--root",
                 str(asap_root.parent), "--max-pieces", "1", "--score-source", "midi",
                 "--json", str(report_path)])  # fmt: skip
    assert code == 0
    report = json.loads(report_path.read_text())
    rendered = report["systems"][str(checkpoint)]
    assert report["score_source"] == "midi" and "primed" not in report
    assert rendered["per_note"] == {} and 0 <= rendered["distribution"]["velocity"]["js_distance"] <= 1
    assert rendered["shape"]["velocity_sd"] > 0


def test_cli_evaluate_render_with_a_cvrnn_beside_a_renderer(tiny_checkpoint, eval_pairs, asap_root, tmp_path):
    import torch

    from espressivo.features.slots import render_tokenizer
    from espressivo.models import build_model
    from espressivo.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cvrnn = save_checkpoint(tmp_path / "cvrnn", build_model("cvrnn", "tiny").eval(), "cvrnn", render_tokenizer())
    report_path = tmp_path / "r.json"
    code = main(["evaluate", "render", "--model", f"{tiny_checkpoint},{cvrnn}", "--pairs", str(eval_pairs),
                 "--root", str(asap_root.parent), "--max-pieces", "1", "--stride", "300", "--json",
                 str(report_path), "--markdown", str(tmp_path / "r.md")])  # fmt: skip
    assert code == 0
    report = json.loads(report_path.read_text())
    assert {str(tiny_checkpoint), str(cvrnn)} <= set(report["systems"])
    primed = report["primed_cvrnn"][str(cvrnn)]
    assert primed["starting_points"] > 0 and set(primed["z_prior"]) == {"10_notes", "40_notes"}
    assert str(tiny_checkpoint) in report["primed"] and str(cvrnn) not in report["primed"]
    latent = report["latent_consistency"][str(cvrnn)]
    assert latent["pairs"] > 0 and all(0 <= v <= 1 for v in latent["same_sign_share"].values())
    assert len(report["kl_per_dimension"][str(cvrnn)]) == 5
    table = (tmp_path / "r.md").read_text()
    assert "CVRNN primed protocol" in table and "Latent consistency" in table and "KL(q || p)" in table


def test_cli_evaluate_render_bad_input(tmp_path, capsys):
    assert main(["evaluate", "render", "--model", ",", "--pairs", str(tmp_path)]) == 2
    assert main(["evaluate", "render", "--model", "transformer-small", "--pairs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a renderer" in err and "Traceback" not in err
    for flags in (["--temperature", "0"], ["--top-p", "1.5"], ["--temperature", "nan"]):
        assert main(["evaluate", "render", *flags, "--pairs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("temperature") >= 2 and "top-p" in err and "Traceback" not in err


def test_tempo_curve_mae_in_beats_per_minute():
    from espressivo.evaluate.metrics import NoteView, compare

    ones = np.ones(3)
    values = {k: np.array([1.0, 2.0, 3.0]) for k in ("velocity", "timing", "micro_timing", "articulation", "tempo")}
    a = NoteView(values, ones.astype(bool), np.log(np.array([60.0, 60.0, 120.0])))
    b = NoteView(values, ones.astype(bool), np.log(np.array([60.0, 90.0, 90.0])))
    out = compare(a, b)
    assert out["tempo_curve_mae_bpm"] == pytest.approx((0 + 30 + 30) / 3)
    assert out["velocity"] == {"r": pytest.approx(1.0), "mae": 0.0}


def test_beat_tempo_curve_measures_each_beat_over_its_length():
    from espressivo.evaluate.metrics import beat_tempo_curve

    # groups at beats 0, 0.5, 1, 2 (a chord of two notes at beat 1), periods in seconds per beat
    onset_beat = np.array([0.0, 0.5, 1.0, 1.0, 2.0, 3.0])
    beat_period = np.array([0.4, 0.6, 1.0, 1.0, 0.5, 0.5])
    # time map: beat 0 -> 0 s, 0.5 -> 0.2, 1 -> 0.5, 2 -> 1.5, 3 -> 2.0
    curve = np.exp(beat_tempo_curve(onset_beat, beat_period))
    np.testing.assert_allclose(curve, [60 / 0.5, 60 / 1.0, 60 / 0.5])
    # unsorted input, same answer
    order = np.array([5, 2, 0, 4, 1, 3])
    np.testing.assert_allclose(np.exp(beat_tempo_curve(onset_beat[order], beat_period[order])), curve)
    assert len(beat_tempo_curve(np.array([0.0, 0.5]), np.array([0.5, 0.5]))) == 0


def test_micro_timing_is_zero_for_steady_and_steadily_changing_tempo():
    from espressivo.evaluate.metrics import micro_timing

    beat = np.repeat(np.arange(16.0) / 2, 2)  # eighth notes, two-note chords
    played = np.ones(len(beat), bool)
    np.testing.assert_allclose(micro_timing(beat, 0.4 * beat + 3.0, played), 0.0, atol=1e-9)
    # a ritardando: the local line bends with it (bias about curvature x sigma^2 / 2, 1.4 ms here)
    np.testing.assert_allclose(micro_timing(beat, 0.5 * beat + 0.002 * beat**2, played), 0.0, atol=2e-3)


def test_micro_timing_finds_the_early_note_and_skips_unplayed_ones():
    from espressivo.evaluate.metrics import micro_timing

    beat = np.arange(24.0) / 2
    onset = 0.3 * beat
    onset[10] -= 0.04  # 40 ms early
    played = np.ones(len(beat), bool)
    played[3] = False
    dev = micro_timing(beat, onset, played)
    assert dev[3] == 0.0 and np.argmax(dev) == 10
    assert 0.025 < dev[10] < 0.04  # the smooth map is pulled a little towards the early note
    assert np.abs(np.delete(dev, 10)).max() < 0.01
    # a chord: its notes' spread around their mean stays, the chord as a whole sits on the map
    chord_beat, chord_onset = np.array([0.0, 1.0, 1.0, 2.0, 3.0]), np.array([0.0, 0.49, 0.51, 1.0, 1.5])
    np.testing.assert_allclose(micro_timing(chord_beat, chord_onset, np.ones(5, bool)), [0, 0.01, -0.01, 0, 0],
                               atol=1e-9)  # fmt: skip
    assert not micro_timing(np.array([1.0]), np.array([2.0]), np.ones(1, bool)).any()


def test_note_view_micro_timing_reads_the_codec_onsets():
    from espressivo.core import Alignment
    from espressivo.evaluate.metrics import note_view
    from espressivo.features import encode_expression
    from tests.conftest import tiny_score

    score = tiny_score(np.arange(12.0), np.ones(12), np.full(12, 60))
    perf = score.to_performance(qpm=60)
    notes = perf.notes.copy()
    notes["onset_sec"][6] -= 0.05
    played = Performance(notes)
    alignment = Alignment.from_pairs(score.notes["id"][notes["id"]], notes["id"])
    view = note_view(score, encode_expression(score, played, alignment).features)
    assert np.argmax(view.values["micro_timing"]) == 6 and view.values["micro_timing"][6] > 0.02
    assert not view.values["timing"].any()  # single notes: no asynchrony to measure
