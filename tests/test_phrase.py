"""The phrase renderer (renderer v2): score markings, beat curves and note deviations, model, rendering, the
renderer-family registry, and the shape figures of `evaluate render`."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from espressivo.cli import main
from espressivo.core import NOTE_DTYPE, SUSTAIN, Performance
from espressivo.core.performance import make_controls
from espressivo.errors import EspressivoError
from espressivo.evaluate.shape import melody_lead, pedal_per_minute
from espressivo.features.phrase import (
    PHRASE_FEATURES,
    drop_markings,
    expression_targets,
    phrase_features,
    phrase_performance,
    written_beat_seconds,
)
from espressivo.features.score import score_features
from espressivo.features.slots import render_tokenizer, slot_sizes
from espressivo.io import read_midi, read_score
from espressivo.models import build_model
from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.render import RenderOptions, render
from espressivo.render.phrase import pedal_decision, sample, smooth_noise, windows

from .conftest import EXAMPLES, small_pairs, tiny_score

TOK = render_tokenizer()
HAS_MARKS = PHRASE_FEATURES.index("has_marks")


def musicxml(notes: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type>
</time></attributes>{notes}</measure></part></score-partwise>"""


def note(step: str, ident: str, notations: str = "") -> str:
    return (f"<note id={ident!r}><pitch><step>{step}</step><octave>4</octave></pitch><duration>1</duration>"
            f"<voice>1</voice><type>quarter</type><notations>{notations}</notations></note>")  # fmt: skip


def tiny_phrase(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("phrase", "tiny", slot_sizes=slot_sizes(TOK)).eval()


@pytest.fixture(scope="module")
def phrase_checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("phrase"), tiny_phrase(), "phrase", TOK)


@pytest.fixture(scope="module")
def etude():
    return read_score(EXAMPLES / "etude.musicxml")


# ---------------------------------------------------------------------------- markings
def test_markings_are_read_per_note(tmp_path):
    body = (note("C", "a", '<slur type="start"/><articulations><staccato/></articulations>')
            + note("D", "b", "<articulations><accent/></articulations>") + note("E", "c", "<fermata/>")
            + note("F", "d", '<slur type="stop"/>'))  # fmt: skip
    path = tmp_path / "marked.musicxml"
    path.write_text(musicxml(body))
    score = read_score(path)
    marks = score.marks
    assert marks is not None and len(marks) == 4
    assert marks["staccato"].tolist() == [1, 0, 0, 0]
    assert marks["accent"].tolist() == [0, 1, 0, 0]
    assert marks["fermata"].tolist() == [0, 0, 1, 0]
    assert marks["slur_incr"][0] < marks["slur_incr"][3] and marks["slur_decr"][0] > marks["slur_decr"][3]
    unfolded = read_score(path, unfold=True)  # partitura's unfolding drops slurs: read before it
    assert np.array_equal(unfolded.marks, marks)


def test_a_midi_score_has_no_markings_and_says_so(tmp_path, phrase_checkpoint, capsys):
    midi = tmp_path / "score.mid"
    assert main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(midi), "--model", str(phrase_checkpoint),
                 "--expressiveness", "0"]) == 0  # fmt: skip
    score = read_score(midi)
    assert score.marks is None
    features, names = phrase_features(score_features(score), score.marks, score.notes["onset_beat"])
    assert features.shape == (len(score), len(PHRASE_FEATURES)) and names == PHRASE_FEATURES
    assert not features[:, HAS_MARKS].any()
    out = tmp_path / "out.mid"
    assert main(["render", str(midi), "-o", str(out), "--model", str(phrase_checkpoint)]) == 0
    assert "no performance markings" in capsys.readouterr().err


def test_markings_that_cannot_be_read_leave_the_score_playable(phrase_checkpoint, tmp_path, monkeypatch, capsys):
    import espressivo.io.score as score_io

    def broken(pt, part):
        raise KeyError("odd direction")

    monkeypatch.setattr(score_io, "_part_marks", broken)
    out = tmp_path / "out.mid"
    with pytest.warns(UserWarning, match=r"etude.musicxml: markings not read \('odd direction'\); rendering without"):
        assert (
            main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(phrase_checkpoint)]) == 0
        )
    assert len(read_midi(out)) == 84


def test_dropping_markings_looks_like_a_score_without_them(etude):
    sf = score_features(etude)
    with_marks, _ = phrase_features(sf, etude.marks, etude.notes["onset_beat"])
    without, _ = phrase_features(sf, None, etude.notes["onset_beat"])
    assert with_marks[:, HAS_MARKS].all()
    assert np.array_equal(drop_markings(with_marks), without)


# ---------------------------------------------------------------------------- curves and deviations
def _performed(onsets, durations, velocities, pedal=None):
    performed = np.zeros(len(onsets), [("onset_sec", "f8"), ("duration_sec", "f8"), ("velocity", "f4"),
                                       ("pedal", "u1", (4,))])  # fmt: skip
    performed["onset_sec"], performed["duration_sec"], performed["velocity"] = onsets, durations, velocities
    if pedal is not None:
        performed["pedal"] = pedal
    return performed


def test_targets_decode_back_to_the_performance():
    score = tiny_score(np.arange(8.0), np.full(8, 0.5), [60, 62, 64, 65, 67, 69, 71, 72])  # 120 qpm
    periods = np.array([0.5, 0.5, 0.6, 0.6, 0.5, 0.5, 0.4])
    onsets = np.concatenate([[0.0], np.cumsum(periods)])
    velocities = np.array([50, 60, 70, 64, 80, 40, 55, 66], float)
    performed = _performed(onsets, periods.mean() * np.linspace(0.3, 1.2, 8), velocities)
    written = score.seconds_from_quarter(score.notes["onset_quarter"])
    t = expression_targets(score.notes["onset_beat"], score.notes["duration_beat"], written, performed,
                           np.ones(8, bool))  # fmt: skip
    assert t["tempo_ok"].tolist() == [True] * 7 + [False]  # the last beat has no later onset to measure it
    assert t["tempo"][t["tempo_ok"]].mean() == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(t["timing"], 0.0, atol=1e-6)  # every onset on the beat's time map
    beat_sec, _ = written_beat_seconds(score)
    perf = phrase_performance(score, beat_sec, t["tempo"], t["level"], t["timing"], t["velocity"],
                              t["articulation"], t["pedal"])  # fmt: skip
    by_row = perf.notes[np.argsort(perf.notes["id"])]
    assert by_row["velocity"].tolist() == velocities.tolist()
    scale = np.diff(by_row["onset_sec"]) / periods
    assert np.allclose(scale, scale[0], rtol=1e-6)  # the same rubato, at the written mean tempo
    assert np.allclose(by_row["duration_sec"][:7] / performed["duration_sec"][:7], scale[0], rtol=1e-5)


def test_a_given_tempo_keeps_the_written_tempo_changes():
    from dataclasses import replace

    from espressivo.core.score import TEMPO_DTYPE

    score = tiny_score(np.arange(8.0), np.ones(8), np.full(8, 60))
    score = replace(score, tempo_markings=np.array([(0.0, 60.0, ""), (4.0, 120.0, "")], TEMPO_DTYPE))
    beats, _ = written_beat_seconds(score, 90.0)
    assert np.allclose(beats[:4], 2 * beats[4:])  # the slow section stays twice as slow
    assert 60 * 7 / beats[:7].sum() == pytest.approx(90.0)  # first to last onset at 90 quarters per minute


def test_pedal_follows_the_majority_of_an_onsets_notes_and_is_released_at_the_end():
    score = tiny_score([0.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0], [48, 60, 62, 64])
    beat_sec, _ = written_beat_seconds(score)
    pedal = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]], bool)
    zeros = np.zeros(4)
    perf = phrase_performance(score, beat_sec, np.zeros(3), np.zeros(3), zeros, zeros, zeros, pedal)
    c = perf.controls
    assert c["controller"].tolist() == [SUSTAIN] * 4
    assert c["value"].tolist() == [127, 0, 127, 0]  # down, lifted at the change of harmony, down, released
    assert c["time_sec"][1] == pytest.approx(0.5)  # the lift at the second onset, caught again a quarter later
    assert c["time_sec"][2] == pytest.approx(0.625)


# ---------------------------------------------------------------------------- model
def test_model_loss_and_gradients_and_a_renderer_encoder_to_start_from():
    model = tiny_phrase().train()
    b, n, m = 2, 16, 8
    batch = {
        "src": torch.stack([torch.randint(0, min(size, 100), (b, n)) for size in slot_sizes(TOK)], -1),
        "features": torch.randn(b, n, len(PHRASE_FEATURES)),
        "beat": torch.arange(n).div(2, rounding_mode="floor").expand(b, n).contiguous(),
        "keep": torch.ones(b, n, dtype=torch.bool),
    }
    targets = {name: torch.randn(b, m) for name in ("tempo", "level")}
    targets |= {f"{name}_ok": torch.ones(b, m, dtype=torch.bool) for name in ("tempo", "level")}
    targets |= {name: torch.randn(b, n) for name in ("timing", "velocity", "articulation")}
    targets |= {"pedal": torch.randint(0, 2, (b, n, 4)).float(), "note_ok": torch.ones(b, n, dtype=torch.bool)}
    out, loss = model(**batch, **targets)
    assert out["tempo"].shape == (b, m, 2) and out["timing"].shape == (b, n, 2) and out["pedal"].shape == (b, n, 4)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.curve_head.weight.grad.abs().sum() > 0
    # padding does not change a real note's prediction
    padded = {k: torch.cat([v, v[:, :4]], 1) for k, v in batch.items()}
    padded["keep"][:, n:] = False
    model.eval()
    with torch.no_grad():
        a, _ = model(**batch)
        p, _ = model(**padded)
    assert torch.allclose(a["velocity"], p["velocity"][:, :n], atol=1e-5)
    renderer = build_model("notewise", "tiny", slot_sizes=slot_sizes(TOK))
    kept = tiny_phrase().adapt_pretrained(renderer.state_dict())
    assert kept and all(k.startswith(("embed.", "features.", "encoder.", "encoder_norm.")) for k in kept)


def test_the_pedal_is_held_where_most_likely_and_lifted_where_the_model_expects_a_change():
    probability = np.array([[0.9, 0.9, 0.9, 0.9], [0.9, 0.8, 0.8, 0.8],  # one onset, most likely held
                            [0.3, 0.7, 0.7, 0.7],  # likely held, but much lower at the onset: a change
                            [0.2, 0.3, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]])  # fmt: skip
    group = np.array([0, 0, 1, 2, 3])
    down = pedal_decision(probability, group, hold=1.0, lift=0.2)  # mean 0.45 of 4 onsets: 2 held
    assert down.tolist() == [[True] * 4, [True] * 4, [False, True, True, True], [False] * 4, [False] * 4]
    assert pedal_decision(probability, group, hold=3.0, lift=1.0).all()
    assert not pedal_decision(np.zeros((5, 4)), group).any()


def test_windows_cover_every_note_within_the_beat_limit():
    beat = np.repeat(np.arange(300), 4)
    spans = windows(beat, 128, 20)
    assert spans[0][0] == 0 and spans[-1][1] == len(beat)
    assert all(b > a and beat[b - 1] - beat[a] < 20 for a, b in spans)
    assert all(s2[0] <= s1[1] for s1, s2 in itertools.pairwise(spans))


def test_curve_noise_is_smooth_and_unit_variance():
    rng = np.random.default_rng(0)
    noise = smooth_noise(rng, 20000, 3.0)
    assert noise.std() == pytest.approx(1.0, abs=0.1)
    assert np.corrcoef(noise[:-1], noise[1:])[0, 1] > 0.9  # beat to beat: a curve, not jitter
    white = smooth_noise(rng, 20000, 0.0)
    assert abs(np.corrcoef(white[:-1], white[1:])[0, 1]) < 0.05


def test_expressiveness_zero_is_deadpan():
    rng = np.random.default_rng(1)
    prediction = {name: rng.normal(size=(6, 2)) for name in ("tempo", "level")}
    prediction |= {name: rng.normal(size=(10, 2)) for name in ("timing", "velocity", "articulation")}
    prediction["pedal"] = rng.random((10, 4))
    prediction["group"] = np.arange(10) // 2
    flat = sample(prediction, expressiveness=0.0, temperature=1.0, seed=0)
    assert not flat["tempo"].any() and np.ptp(flat["level"]) == 0 and not flat["pedal"].any()
    assert not flat["timing"].any() and not flat["articulation"].any()
    one, two = (sample(prediction, expressiveness=e, temperature=1.0, seed=0) for e in (1.0, 2.0))
    assert np.allclose(two["tempo"], 2 * one["tempo"]) and np.allclose(two["timing"], 2 * one["timing"])


# ---------------------------------------------------------------------------- rendering
def test_render_plays_every_note_reproducibly(phrase_checkpoint, etude):
    pretrained = load_pretrained(phrase_checkpoint)
    a = render(pretrained, etude, RenderOptions.of(seed=3))[0].performance
    b = render(pretrained, etude, RenderOptions.of(seed=3))[0].performance
    c = render(pretrained, etude, RenderOptions.of(seed=4))[0].performance
    assert sorted(a.notes["id"].tolist()) == list(range(len(etude)))
    assert np.array_equal(a.notes, b.notes) and np.array_equal(a.controls, b.controls)
    assert not np.array_equal(a.notes["onset_sec"], c.notes["onset_sec"])
    deadpan = render(pretrained, etude, RenderOptions.of(expressiveness=0.0, tempo=90))[0].performance
    assert len(deadpan.controls) == 0 and np.ptp(deadpan.notes["velocity"]) == 0
    by_row = deadpan.notes[np.argsort(deadpan.notes["id"])]
    written = etude.seconds_from_quarter(etude.notes["onset_quarter"], 90)
    assert np.allclose(by_row["onset_sec"], written - written.min(), atol=2e-3)


def test_a_control_the_family_does_not_use_is_refused(phrase_checkpoint, etude, tmp_path, tiny_checkpoint):
    pretrained = load_pretrained(phrase_checkpoint)
    with pytest.raises(EspressivoError, match="does not use --tempo-drift"):
        render(pretrained, etude, RenderOptions.of(tempo_drift=8))
    with pytest.raises(EspressivoError, match="primed"):
        render(pretrained, etude, prime=np.zeros((4, 8), np.int64))
    with pytest.raises(EspressivoError, match="does not use --expressiveness"):
        render(load_pretrained(tiny_checkpoint), etude, RenderOptions.of(expressiveness=0.5))
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(tmp_path / "x.mid"), "--model",
                 str(phrase_checkpoint), "--consensus", "4"])  # fmt: skip
    assert code == 2


def test_a_damaged_calibration_is_refused_in_one_line(phrase_checkpoint, tmp_path, capsys):
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(phrase_checkpoint, folder)
    for damaged in (["x"], {"tempo": {"gain": "big"}}, {"tempo": {"gain": float("nan")}}, {"nonsense": {}}):
        config = json.loads((folder / "config.json").read_text())
        config["sampling"] = damaged
        (folder / "config.json").write_text(json.dumps(config))
        code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(tmp_path / "o.mid"), "--model", str(folder)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "calibration" in err, err


def test_thread_count_is_chosen_by_the_family_and_restored(tiny_checkpoint, phrase_checkpoint, etude):
    """Note-by-note sampling runs on one thread whatever torch's setting (fastest, no spinning on a busy machine,
    and the same notes for a seed on any machine); the setting is restored afterwards."""
    import importlib

    notewise = importlib.import_module(
        "espressivo.render.notewise"
    )  # the module (the package's `render` is the function)

    seen = []
    original = notewise.render_notewise

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        notewise.render_notewise = spy
        first = render(load_pretrained(tiny_checkpoint), etude, RenderOptions.of(seed=1))[0].performance
        again = render(load_pretrained(tiny_checkpoint), etude, RenderOptions.of(seed=1, threads=1))[0].performance
        assert seen == [1, 1] and torch.get_num_threads() == 2
        assert np.array_equal(first.notes, again.notes)
    finally:
        notewise.render_notewise = original
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------- shape figures
def test_melody_lead_and_pedal_presses():
    score = tiny_score([0.0, 0.0, 0.0, 1.0, 2.0, 2.0], [1.0] * 6, [48, 55, 72, 60, 50, 74])
    velocity = np.array([50, 60, 70, 64, 40, 50], float)
    assert melody_lead(score, velocity, np.ones(6, bool)) == pytest.approx(((70 - 55) + (50 - 40)) / 2)
    notes = np.zeros(2, NOTE_DTYPE)
    notes["onset_sec"], notes["duration_sec"], notes["pitch"], notes["velocity"] = [0.0, 59.0], [1.0, 1.0], 60, 64
    controls = make_controls(np.array([[0.0, SUSTAIN, 127], [1.0, SUSTAIN, 0], [2.0, SUSTAIN, 100],
                                       [3.0, SUSTAIN, 90], [4.0, SUSTAIN, 0]]))  # fmt: skip
    assert pedal_per_minute(Performance(notes, controls)) == pytest.approx(2.0)


# ---------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def phrase_pairs(tmp_path_factory, asap_root):
    return small_pairs(tmp_path_factory.mktemp("ppairs"), asap_root, 3)


def test_calibration_on_validation_windows(phrase_pairs, tmp_path):
    """tools/calibrate_phrase.py: per output a gain in 1..3 and the noise share, the pedal's hold and lift,
    stored in the checkpoint and read by render."""
    checkpoint = save_checkpoint(tmp_path / "p", tiny_phrase(), "phrase", TOK)
    command = [sys.executable, "tools/calibrate_phrase.py", str(checkpoint), "--pairs", str(phrase_pairs),
               "--tempo-noise", "0.2"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    sampling = load_pretrained(checkpoint).config["sampling"]
    assert set(sampling) == {"tempo", "level", "timing", "velocity", "articulation", "pedal"}
    assert all(1.0 <= sampling[k]["gain"] <= 3.0 for k in ("tempo", "level", "timing", "velocity", "articulation"))
    assert sampling["tempo"]["noise"] == 0.2 and sampling["level"]["noise"] == 0.5
    assert 0.5 <= sampling["pedal"]["hold"] <= 2.0 and 0.0 <= sampling["pedal"]["lift"] <= 1.0


def test_train_from_a_renderer_encoder_with_the_engine(phrase_pairs, tiny_checkpoint, tmp_path):
    config = tmp_path / "phrase.yaml"
    config.write_text(
        f"data: {phrase_pairs}\nout: {tmp_path / 'run'}\ninit_from: {tiny_checkpoint}\nmodel_type: phrase\n"
        "model: tiny\nseq_len: 64\nmax_beats: 64\nbatch_size: 2\nmax_steps: 3\nwarmup_steps: 1\neval_every: 3\n"
        "eval_windows: 2\nsave_every: 3\nlog_every: 1\nthreads: 1\n"
    )
    result = subprocess.run([sys.executable, "-m", "espressivo", "train", str(config)], capture_output=True,
                            text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 4 and log[-1].split(",")[3]
    trained = load_pretrained(tmp_path / "run" / "best")
    assert trained.model_type == "phrase" and json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    start = load_pretrained(tiny_checkpoint).model.state_dict()["encoder.0.attn.q.weight"]
    moved = trained.model.state_dict()["encoder.0.attn.q.weight"]
    assert torch.allclose(start, moved, atol=0.05)  # started from the renderer's encoder (3 small steps)
    out = tmp_path / "r.mid"
    assert (
        main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(tmp_path / "run" / "best")])
        == 0
    )
    assert len(read_midi(out)) == 84


def test_the_pedal_changes_where_one_onset_dips_below_its_neighbours():
    """Fast, evenly pedalled passages: the probability never dips inside a note, only one onset's dips below the
    onsets around it (where some pianists change): ``change`` lifts the pedal there."""
    later = np.array([0.98, 0.97, 0.98, 0.80, 0.98, 0.98, 0.97, 0.98])
    probability = np.column_stack([later, later, later, later])  # no dip inside any onset
    group = np.arange(8)
    plain = pedal_decision(probability, group, hold=1.0 / later.mean(), lift=0.02)
    assert plain.all()  # held throughout, never changed
    changed = pedal_decision(probability, group, hold=1.0 / later.mean(), lift=0.02, change=0.1)
    assert changed[:, 1:].all() and changed[:, 0].tolist() == [True, True, True, False, True, True, True, True]


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_a_phrase_model_built_from_its_preset_renders(preset, etude, tmp_path):
    """The feature count comes from the feature set: a preset alone builds a model that renders (it used to
    default to 21 features of 24 and fail on the first matrix product)."""
    torch.manual_seed(0)
    model = build_model("phrase", preset, slot_sizes=slot_sizes(TOK)).eval()
    pretrained = load_pretrained(save_checkpoint(tmp_path / preset, model, "phrase", TOK))
    result = render(pretrained, etude, RenderOptions.of(seed=1))[0]
    assert len(result.performance) == len(etude)
