"""CVRNN: representation, model, training task, rendering, interpretation, steering, reference, CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from espressivo.cli import main
from espressivo.core import Score
from espressivo.features.cvrnn import (
    HEADS,
    decode_performance,
    encode_performance,
    roll_windows,
    smoothed_beat_period,
    track_from_score,
)
from espressivo.io import read_alignment, read_midi, read_score
from espressivo.models import build_model
from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.render import RenderOptions, render

from .conftest import EXAMPLES, small_pairs


@pytest.fixture(scope="module")
def etude():
    score = read_score(EXAMPLES / "etude.musicxml")
    return score, read_midi(EXAMPLES / "etude_performance.mid"), read_alignment(EXAMPLES / "etude_alignment.tsv.gz")


def tiny(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model("cvrnn", "tiny", **overrides)


def batch_of(track, x, model):
    c = model.config
    roll, group = roll_windows(track, c.roll_steps_per_beat, c.roll_radius_beats, c.roll_pitches)
    return {"cats": torch.from_numpy(track.cats)[None], "roll": torch.from_numpy(roll)[None],
            "group": torch.from_numpy(group)[None], "x": torch.from_numpy(x)[None]}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_cvrnn(tmp_path_factory):
    from espressivo.features.slots import render_tokenizer

    path = tmp_path_factory.mktemp("cvrnn") / "ckpt"
    save_checkpoint(path, tiny().eval(), "cvrnn", render_tokenizer())
    return path


# ---------------------------------------------------------------------------- representation
def test_smoothed_tempo_recovers_a_steady_and_a_changing_tempo():
    beats = np.arange(0, 40, 0.5)
    steady = smoothed_beat_period(beats, beats * 0.5, beats)
    assert np.allclose(steady, 0.5, atol=1e-6)
    # a ritardando: the beat period grows linearly from 0.5 to 1.0 s
    period = np.linspace(0.5, 1.0, len(beats))
    onsets = np.concatenate([[0.0], np.cumsum(period[:-1] * 0.5)])
    smooth = smoothed_beat_period(beats, onsets, beats)
    inner = slice(8, -8)
    assert np.abs(smooth[inner] - period[inner]).max() < 0.02


def test_encode_decode_round_trip_on_the_etude(etude):
    from espressivo.render.cvrnn import performed_track

    score, perf, alignment = etude
    track, x, matched = performed_track(score, perf, alignment)
    assert x.shape == (len(score), len(HEADS)) and matched.all()
    assert (x >= 0).all() and (x < np.array(list(HEADS.values()))).all()
    decoded = decode_performance(track, x)
    assert np.array_equal(np.sort(decoded.notes["id"]), np.arange(len(score)))
    rows = decoded.notes["id"]
    s_idx, p_idx = alignment.indices(score, perf)
    human = np.empty(len(score))
    human[s_idx] = perf.notes["onset_sec"][p_idx]
    got = np.empty(len(score))
    got[rows] = decoded.notes["onset_sec"]
    # onsets relative to the first: within a few milliseconds (1/100 beat steps, no drift)
    error = np.abs((got - got.min()) - (human - human.min()))
    assert error.max() < 0.02, error.max()
    velocity = np.empty(len(score))
    velocity[rows] = decoded.notes["velocity"]
    assert np.array_equal(velocity[s_idx], perf.notes["velocity"][p_idx])


def test_classes_of_a_tiny_hand_made_performance():
    """Two quarter notes then a two-note chord at 60 BPM written, played at 60: exact classes."""
    from espressivo.features.cvrnn import score_track
    from espressivo.features.score import SCORE_FEATURE_DTYPE

    sf = np.zeros(4, SCORE_FEATURE_DTYPE)
    sf["pitch"], sf["duration_beat"], sf["ts_beats"], sf["ts_beat_type"] = [60, 62, 64, 67], 1.0, 4, 4
    beats = np.array([0.0, 1.0, 2.0, 2.0])
    track = score_track(beats, sf, beats * 1.0)  # written: one beat per second
    onset = np.array([0.0, 1.0, 2.1, 2.0])  # the chord's top note 100 ms late... the bottom on time
    x = encode_performance(track, onset, np.full(4, 0.5), np.array([60, 70, 80, 90]),
                           beat_period=np.ones(4))  # fmt: skip
    assert x[:, 0].tolist() == [60, 70, 80, 90]
    assert (x[:, 1] == 49).all()  # 0.5 beat = 50 hundredths, class 49
    assert (x[:, 3] == 50).all()  # exactly the reference tempo
    # group mean of the chord is 2.05; ideal = 1.0 + 1 beat = 2.0: micro-onsets +10 and 0
    assert x[:, 2].tolist() == [50, 50, 60, 50]
    back = decode_performance(track, x)
    onsets = np.empty(4)
    onsets[back.notes["id"]] = back.notes["onset_sec"]
    assert np.allclose(onsets, onset, atol=1e-9)


def test_roll_windows_are_centred_on_each_group():
    from espressivo.features.cvrnn import score_track
    from espressivo.features.score import SCORE_FEATURE_DTYPE

    sf = np.zeros(3, SCORE_FEATURE_DTYPE)
    sf["pitch"], sf["duration_beat"], sf["ts_beats"], sf["ts_beat_type"] = [60, 64, 72], [1, 1, 2], 4, 4
    beats = np.array([0.0, 0.0, 1.0])
    track = score_track(beats, sf, beats)
    windows, group = roll_windows(track, steps_per_beat=2, radius_beats=2, pitches=88)
    assert windows.shape == (2, 8, 88) and group.tolist() == [0, 0, 1]
    assert windows[0, 4, 60 - 21] == 2 and windows[0, 5, 60 - 21] == 1 and windows[0, 3, 60 - 21] == 0
    assert windows[1, 4, 72 - 21] == 2 and windows[1, 2, 60 - 21] == 2  # the first chord two frames back


# ---------------------------------------------------------------------------- model
def test_forward_shapes_kl_per_dimension_and_bottleneck(etude):
    from espressivo.render.cvrnn import performed_track

    score, perf, alignment = etude
    track, x, _ = performed_track(score, perf, alignment)
    model = tiny().eval()
    out, loss = model(**batch_of(track, x, model))
    assert torch.isfinite(loss) and set(out["nll"]) == set(HEADS) and out["kl"].shape == (model.config.z_dim,)
    # the generation network reads only [c, psi(z)]: no input of the size of h
    assert model.generate[0].in_features == model.config.score_dim + model.config.dense_units


def test_elbo_decreases_when_overfitting_one_piece_and_the_posterior_reconstructs(etude):
    import dataclasses

    from espressivo.generate.draw import threads
    from espressivo.render.cvrnn import performed_track, reconstruct, run, score_context

    score, perf, alignment = etude
    track, x, _ = performed_track(score, perf, alignment)
    n = 48  # the etude's first 48 notes: the same evidence at about half the cost of its 84
    track = dataclasses.replace(track, **{f.name: getattr(track, f.name)[:n] for f in dataclasses.fields(track)
                                          if np.ndim(getattr(track, f.name))})  # fmt: skip
    x = x[:n]
    model = tiny(1)
    batch = batch_of(track, x, model)
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    losses = []
    with threads(1):  # a recurrent walk over notes: one thread is fastest, and loaded machines do not spin
        for _ in range(200):
            _, loss = model(**batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.4 * np.mean(losses[:10])
    model.eval()
    context = score_context(model, track)
    rebuilt = reconstruct(model, context, x)
    blind, _ = run(model, context, zero_z=True, temperature=0.01)  # the same decoder with z = 0
    error, blind_error = np.abs(rebuilt - x).mean(0), np.abs(blind[0] - x).mean(0)
    assert error[0] < 10 and error[0] < 0.6 * blind_error[0]  # velocity: the posterior z carries it
    assert error[2] < 2 and error[3] < 2  # micro-onset and tempo within 2 classes on average


def test_save_load_equality(tiny_cvrnn, etude):
    from espressivo.render.cvrnn import performed_track

    score, perf, alignment = etude
    track, x, _ = performed_track(score, perf, alignment)
    loaded = load_pretrained(tiny_cvrnn)
    fresh = tiny().eval()
    assert loaded.model_type == "cvrnn"
    with torch.no_grad():
        a = loaded.model(**batch_of(track, x, fresh))[1]
        b = fresh(**batch_of(track, x, fresh))[1]
    assert torch.allclose(a, b)


# ---------------------------------------------------------------------------- rendering
def test_render_one_to_one_seeds_and_steering(tiny_cvrnn, etude):
    from espressivo.render.cvrnn import render_cvrnn

    score = etude[0]
    pretrained = load_pretrained(tiny_cvrnn)
    a = render(pretrained, score, RenderOptions.of(seed=1))[0].performance
    b = render(pretrained, score, RenderOptions.of(seed=1))[0].performance
    c = render(pretrained, score, RenderOptions.of(seed=2))[0].performance
    assert len(a) == len(score) and np.array_equal(np.sort(a.notes["id"]), np.arange(len(score)))
    assert np.array_equal(a.notes["pitch"], score.notes["pitch"][a.notes["id"]])
    assert np.array_equal(a.notes, b.notes) and not np.array_equal(a.notes, c.notes)
    up = render_cvrnn(pretrained, score, RenderOptions.of(seed=1), shift=[2, 0, 0, 0, 0])[0].performance
    assert len(up) == len(score) and not np.array_equal(up.notes, a.notes)


def test_interpret_and_reference_state(tiny_cvrnn, etude):
    from espressivo.render.cvrnn import interpret, reference_state, render_cvrnn

    score, perf, alignment = etude
    pretrained = load_pretrained(tiny_cvrnn)
    z, _ = interpret(pretrained, score, perf, alignment)
    assert z.shape == (len(score), 5) and np.isfinite(z).all()
    z_auto, _ = interpret(pretrained, score, perf)  # aligned by parangonar
    assert np.abs(z_auto - z).max() < 1e-4
    state = reference_state(pretrained, score, perf, alignment, notes=32)
    out = render_cvrnn(pretrained, score, RenderOptions.of(seed=0), reference_state=state)[0].performance
    plain = render_cvrnn(pretrained, score, RenderOptions.of(seed=0))[0].performance
    assert len(out) == len(score) and not np.array_equal(out.notes, plain.notes)


def test_parse_interpretation_constant_and_curve():
    from espressivo.errors import EspressivoError
    from espressivo.render.cvrnn import parse_interpretation

    pos = np.array([0.0, 1.0, 2.0, 4.0])
    assert np.array_equal(parse_interpretation("1,0,0,0,-2", 5, pos), np.tile([1, 0, 0, 0, -2], (4, 1)))
    curve = parse_interpretation("0:-2,0,0,0,0; 1:2,0,0,0,0", 5, pos)
    assert np.allclose(curve[:, 0], [-2, -1, 0, 2]) and not curve[:, 1:].any()
    for bad in (
        "1,2",
        "a,b,c,d,e",
        "2:0,0,0,0,0",
        "0:1,1,1,1,1;x:0,0,0,0,0",
        "99,0,0,0,0",
        "nan,0,0,0,0",
        ";;",
        "0:1,1,1,1,1;0:2,2,2,2,2",
    ):
        with pytest.raises(EspressivoError):
            parse_interpretation(bad, 5, pos)


def test_long_score_renders_every_note(tiny_cvrnn):
    from espressivo.core.score import score_note_dtype

    rows = [(f"n{i}", i // 4, 1.0, i // 4, 1.0, 48 + 7 * (i % 4), 1, 1, 0, False, 0) for i in range(1200)]
    score = Score(np.array(rows, dtype=score_note_dtype()))
    perf = render(load_pretrained(tiny_cvrnn), score, RenderOptions.of(seed=0))[0].performance
    assert len(perf) == 1200 and np.all(np.diff(np.sort(perf.notes["onset_sec"])) >= 0)
    assert len(track_from_score(score)) == 1200


# ---------------------------------------------------------------------------- training task
@pytest.fixture(scope="module")
def cvrnn_pairs(tmp_path_factory, asap_root):
    return small_pairs(tmp_path_factory.mktemp("cpairs"), asap_root, 2)


def test_cvrnn_windows_with_augmentation(cvrnn_pairs):
    from espressivo.data.cvrnn import CVRNNAugmentation, CVRNNPairs
    from espressivo.models.cvrnn import CVRNNConfig

    config = CVRNNConfig.from_name("tiny")
    pairs = CVRNNPairs(cvrnn_pairs, "train", config, notes=60, augmentation=CVRNNAugmentation(7, 0.05))
    w = pairs.sample(np.random.default_rng(0))
    assert w["x"].shape == (60, len(HEADS)) and w["roll"].shape[1:] == (config.roll_frames, 88)
    assert w["keep"].all() and (w["x"] < np.array(list(HEADS.values()))).all()
    plain = CVRNNPairs(cvrnn_pairs, "train", config, notes=60)
    assert sum(int(v["keep"].sum()) for v in plain.windows()) >= sum(len(p["track"]) for p in plain.pieces)


def test_train_with_the_engine_then_render_and_interpret_from_the_cli(cvrnn_pairs, tmp_path, etude):
    config = tmp_path / "cvrnn.yaml"
    config.write_text(f"data: {cvrnn_pairs}\nout: {tmp_path / 'run'}\nmodel_type: cvrnn\nmodel: tiny\nseq_len: 24\n"
                      "batch_size: 2\nmax_steps: 3\nwarmup_steps: 1\neval_every: 3\neval_windows: 2\nsave_every: 3\n"
                      "log_every: 1\nthreads: 1\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "espressivo", "train", str(config)], capture_output=True,
                            text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    best = tmp_path / "run" / "best"
    assert load_pretrained(best).model_type == "cvrnn"
    out = tmp_path / "r.mid"
    score, perf = EXAMPLES / "etude.musicxml", EXAMPLES / "etude_performance.mid"
    assert main(["render", str(score), "-o", str(out), "--model", str(best), "--interpretation", "0,-2,0,0,0",
                 "--reference", str(perf), str(score), str(EXAMPLES / "etude_alignment.tsv.gz"),
                 "--variations", "2"]) == 0  # fmt: skip
    assert len(read_midi(tmp_path / "r-1.mid")) == 84 and len(read_midi(tmp_path / "r-2.mid")) == 84
    assert main(["interpret", str(perf), "--score", str(score), "-o", str(tmp_path / "z.npy"), "--model", str(best),
                 "--plot", str(tmp_path / "z.png")]) == 0  # fmt: skip
    assert np.load(tmp_path / "z.npy").shape == (84, 5) and (tmp_path / "z.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--interpretation", "1,2,3"], "5 numbers"),
        (["--reference", "{perf}"], "PERFORMANCE.mid SCORE [ALIGNMENT.tsv]"),
        (["--reference", "{perf}", "{score}", "{score}", "{score}"], "PERFORMANCE.mid SCORE [ALIGNMENT.tsv]"),
        (["--reference", "{bad}", "{score}"], "MIDI file"),
        (["--reference", "{empty}", "{score}"], "no notes"),
        (["--reference", "{perf}", "{missing}"], "no such file"),
        (["--reference", "{perf}", "{score}", "--reference-notes", "0"], ">= 1"),
    ],
)
def test_bad_steering_input_is_one_line_and_exit_2(tiny_cvrnn, tmp_path, capsys, extra, message):
    from espressivo.core import Performance
    from espressivo.io import write_midi

    (tmp_path / "bad.mid").write_bytes(b"MThd garbage")
    write_midi(Performance.empty(), tmp_path / "empty.mid")
    names = {"perf": EXAMPLES / "etude_performance.mid", "score": EXAMPLES / "etude.musicxml",
             "bad": tmp_path / "bad.mid", "empty": tmp_path / "empty.mid",
             "missing": tmp_path / "nope.musicxml"}  # fmt: skip
    args = [a.format(**names) for a in extra]
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(tmp_path / "o.mid"), "--model",
                 str(tiny_cvrnn), *args])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_performance_of_another_piece_is_refused(tiny_cvrnn, asap, tmp_path, capsys):
    item = next(i for i in asap.performances("test") if i.alignment_fits_score)
    etude, etude_perf = EXAMPLES / "etude.musicxml", EXAMPLES / "etude_performance.mid"
    for perf, score in ((etude_perf, item.score_path), (item.performance_path, etude)):
        code = main(["interpret", str(perf), "--score", str(score), "-o", str(tmp_path / "z.npy"), "--model",
                     str(tiny_cvrnn)])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "is it a performance of that score?" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "z.npy").exists()


def test_steering_a_renderer_is_refused(tmp_path, capsys):
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(tmp_path / "o.mid"), "--interpretation",
                 "1,0,0,0,0"])  # fmt: skip
    assert code == 2 and "CVRNN" in capsys.readouterr().err


def test_interpret_rejects_bad_input(tiny_cvrnn, tmp_path, capsys):
    score, perf = EXAMPLES / "etude.musicxml", EXAMPLES / "etude_performance.mid"
    for args in (["--score", str(score), "-o", str(tmp_path / "z.txt")],
                 ["-o", str(tmp_path / "z.npy")],
                 ["--score", str(tmp_path / "none.musicxml"), "-o", str(tmp_path / "z.npy")]):  # fmt: skip
        assert main(["interpret", str(perf), "--model", str(tiny_cvrnn), *args]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    renderer = EXAMPLES.parent / "checkpoints" / "renderer-small"
    assert main(["interpret", str(perf), "--score", str(score), "-o", str(tmp_path / "z.npy"), "--model",
                 str(renderer)]) == 2  # fmt: skip
    assert "not a cvrnn" in capsys.readouterr().err


def test_a_negative_interpretation_reads_as_a_value(tiny_cvrnn, tmp_path):
    out = tmp_path / "o.mid"
    assert main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(tiny_cvrnn),
                 "--interpretation", "-2,0,0,0,0"]) == 0  # fmt: skip
    assert len(read_midi(out)) == 84


def test_reference_snippet_from_an_asap_pair_through_the_cli(tiny_cvrnn, asap, tmp_path):
    """A test-split (n)ASAP performance as the reference, once with its alignment file and once aligned by
    parangonar; the etude is played in its style."""
    item = next(i for i in asap.performances("test") if i.alignment_fits_score)
    out = tmp_path / "styled.mid"
    base = ["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(tiny_cvrnn),
            "--reference-notes", "48", "--reference", str(item.performance_path), str(item.score_path)]  # fmt: skip
    assert main([*base, str(item.alignment_path)]) == 0
    with_file = read_midi(out)
    assert main(base) == 0
    assert len(with_file) == 84 and len(read_midi(out)) == 84


def test_sampled_decoding_keeps_onset_groups_in_order_and_smooths_the_tempo():
    from espressivo.features.cvrnn import MIN_GROUP_IOI_SHARE, score_track
    from espressivo.features.score import SCORE_FEATURE_DTYPE

    n = 40
    sf = np.zeros(n, SCORE_FEATURE_DTYPE)
    sf["pitch"], sf["duration_beat"], sf["ts_beats"], sf["ts_beat_type"] = 60, 0.5, 4, 4
    beats = np.arange(n) * 0.5
    track = score_track(beats, sf, beats * 0.5)  # 120 BPM written
    x = np.zeros((n, len(HEADS)), np.int64)
    x[:, 0], x[:, 1] = 64, 49
    x[:, 2] = np.where(np.arange(n) % 2, 0, 50)  # every other note drawn half a beat early: -50/100
    x[:, 3] = np.where(np.arange(n) % 2, 99, 0)  # tempo jumping between -50 % and +49 %
    raw = decode_performance(track, x)
    smooth = decode_performance(track, x, sampled=True)
    raw_on, on = np.sort(raw.notes["onset_sec"]), smooth.notes["onset_sec"][np.argsort(smooth.notes["id"])]
    assert np.any(np.diff(raw.notes["onset_sec"][np.argsort(raw.notes["id"])]) < 0)  # raw: notes out of order
    gaps = np.diff(on)
    period = np.exp(np.mean(np.log([0.5 / 0.5, 0.5 / 1.49]))) * 0.5  # the smoothed tempo's beat period
    assert gaps.min() >= MIN_GROUP_IOI_SHARE * 0.5 * period * 0.9
    assert len(raw_on) == n
    x[:, 2] = 50  # no micro-timing: the gaps show the tempo alone
    steady = decode_performance(track, x, sampled=True)
    inner = np.diff(np.sort(steady.notes["onset_sec"]))[8:-8]
    jumpy = np.diff(np.sort(decode_performance(track, x).notes["onset_sec"]))[8:-8]
    assert jumpy.max() / jumpy.min() > 2.5 and inner.max() / inner.min() < 1.1  # the alternation is smoothed away


def test_the_demo_steers_the_dimension_that_moved_the_tempo_most_consistently():
    from types import SimpleNamespace

    from espressivo.cli.common import _steering_dimension

    row = lambda change, share: {"tempo_percent": {"mean_change_plus2_vs_minus2": change, "same_sign_share": share}}  # noqa: E731
    dims = {"z1": row(30.0, 0.5), "z2": row(-20.0, 1.0), "z3": row(5.0, 1.0)}
    assert _steering_dimension(SimpleNamespace(config={"evaluation": {"latent_dimensions": dims}})) == 1
    assert _steering_dimension(SimpleNamespace(config={})) == 0
    assert _steering_dimension(load_pretrained("cvrnn-small")) in range(5)  # the shipped model: z3 today


def test_cli_render_refuses_consensus_with_a_cvrnn(tiny_cvrnn, tmp_path, capsys):
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(tmp_path / "o.mid"), "--model",
                 str(tiny_cvrnn), "--consensus", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--consensus" in err and err.count("\n") == 1
    assert not (tmp_path / "o.mid").exists()
