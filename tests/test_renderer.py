"""The score -> performance renderer: model, representation, training tasks, rendering, tempo mapping, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from espressivo.cli import main
from espressivo.core import Score
from espressivo.errors import EspressivoError
from espressivo.features.slots import (
    decode_slots,
    performed_slots,
    render_order,
    render_tokenizer,
    score_slots,
    slot_sizes,
)
from espressivo.io import read_midi, read_score
from espressivo.models import build_model
from espressivo.models.checkpoint import load_pretrained
from espressivo.render import RenderOptions, render, tempo_mapped_bytes

from .conftest import EXAMPLES, small_pairs

TOK = render_tokenizer()


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("notewise", "tiny", slot_sizes=slot_sizes(TOK)).eval()


@pytest.fixture(scope="module")
def etude() -> Score:
    return read_score(EXAMPLES / "etude.musicxml")


def long_score(notes: int) -> Score:
    """A chorale of four-note chords, one per quarter, ``notes`` notes in all."""
    rows = []
    for i in range(notes):
        chord, voice = divmod(i, 4)
        rows.append((f"n{i}", chord, 1.0, chord, 1.0, 48 + 7 * voice + chord % 5, voice + 1, 1, 0, False, 0))
    from espressivo.core.score import score_note_dtype

    array = np.array(rows, dtype=score_note_dtype())
    return Score(array)


# ---------------------------------------------------------------------------- representation
def test_render_order_puts_grace_notes_then_high_notes_first():
    onset = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    pitch = np.array([60, 72, 64, 50, 55])
    grace = np.array([False, False, True, False, False])
    assert render_order(onset, pitch, grace).tolist() == [2, 1, 0, 4, 3]


def test_performed_slots_exact_values():
    onset = np.array([0.0, 0.020, 0.010, 0.5])  # the third note played before the second: raised to it
    slots = performed_slots(onset, np.array([0.1, 0.2, 0.3, 6.0]), np.array([72, 67, 60, 72]),
                            np.array([80, 60, 50, 127]), np.array([[0, 0, 64, 127]] * 4), TOK)  # fmt: skip
    assert slots[:, 1].tolist() == [0, 20, 0, 480]
    assert slots[:, 3].tolist() == [100, 200, 300, 4999]  # durations clamp to 4999 ms
    assert slots[:, 2].tolist() == [80, 60, 50, 127]
    assert slots[0, 4:].tolist() == [0, 0, 1, 1]


def test_consensus_and_chord_spread_keep_a_chord_note_ahead_of_the_first():
    from espressivo.render.notewise import consensus_slots, spread_chords

    chord = np.zeros((2, 3, 8), np.int64)
    chord[:, :, 0] = 60
    chord[:, 1:, 1] = [[500, -10], [500, -20]]  # the second chord note leads by 10 and 20 ms
    out = consensus_slots(chord, score_ioi=np.array([0, 500, 0]))
    assert out[:, 1].tolist() == [0, 500, -15]  # chord at 492.5 ms: 500 and 485
    spread = spread_chords(out, np.array([0, 500, 0]), 0.0)
    assert np.cumsum(spread[:, 1]).tolist() == [0, 492, 492]


def test_decode_keeps_score_separation_and_releases_the_pedal():
    src = score_slots(np.array([0.0, 0.5, 0.5]), np.array([0.5, 0.5, 0.5]), np.array([60, 64, 67]),
                      np.array([64, 64, 64]), TOK)  # fmt: skip
    out = src.copy()
    out[:, 1] = [0, 0, 0]  # the model put the second onset on the first: it stays 5 ms apart
    out[:, 4:] = 1
    perf = decode_slots(out, src[:, 1], TOK)
    assert np.allclose(np.sort(perf.notes["onset_sec"]), [0.0, 0.005, 0.005])
    assert perf.controls["value"][-1] == 0


# ---------------------------------------------------------------------------- model
def test_forward_shapes_and_loss():
    model = tiny()
    src = torch.randint(0, 2, (2, 16, 8))
    tgt = torch.randint(0, 2, (2, 16, 8))
    features = torch.zeros(2, 16, 12)
    logits, loss = model(src, tgt, features)
    assert [tuple(x.shape) for x in logits] == [(2, 16, s) for s in slot_sizes(TOK)]
    assert torch.isfinite(loss) and loss > 0


def test_decoder_is_causal_and_encoder_sees_everything():
    model = tiny()
    src = torch.randint(0, 2, (1, 12, 8))
    tgt = torch.randint(0, 2, (1, 12, 8))
    base = model(src, tgt)[0][1]
    changed_tgt = tgt.clone()
    changed_tgt[0, 8, 1:] = 1 - changed_tgt[0, 8, 1:]  # the IOI head sees only the note's pitch before it
    after = model(src, changed_tgt)[0][1]
    assert torch.allclose(base[0, :9], after[0, :9], atol=1e-5)
    assert not torch.allclose(base[0, 9], after[0, 9])
    changed_src = src.clone()
    changed_src[0, 11, 0] = 100
    assert not torch.allclose(base[0, 0], model(changed_src, tgt)[0][1][0, 0])


def test_save_load_equality(tiny_checkpoint):
    loaded = load_pretrained(tiny_checkpoint)
    assert loaded.model_type == "notewise"
    src = torch.randint(0, 2, (1, 10, 8))
    tgt = torch.randint(0, 2, (1, 10, 8))
    reference = tiny()
    for a, b in zip(reference(src, tgt)[0], loaded.model(src, tgt)[0], strict=True):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------- rendering
def test_render_preserves_notes_one_to_one(tiny_checkpoint, etude):
    pretrained = load_pretrained(tiny_checkpoint)
    result = render(pretrained, etude, RenderOptions.of(seed=3))[0]
    perf = result.performance
    assert len(perf) == len(etude)
    assert sorted(perf.notes["id"].tolist()) == list(range(len(etude)))
    assert np.array_equal(perf.notes["pitch"], etude.notes["pitch"][perf.notes["id"]])
    assert (perf.notes["duration_sec"] > 0).all() and np.isfinite(perf.notes["onset_sec"]).all()


def test_seeds_reproduce_and_differ(tiny_checkpoint, etude):
    pretrained = load_pretrained(tiny_checkpoint)
    a = render(pretrained, etude, RenderOptions.of(seed=1))[0].performance
    b = render(pretrained, etude, RenderOptions.of(seed=1))[0].performance
    c = render(pretrained, etude, RenderOptions.of(seed=2))[0].performance
    assert np.array_equal(a.notes, b.notes)
    assert not np.array_equal(a.notes, c.notes)


@pytest.mark.parametrize("segment", [0, 200])
def test_long_score_windows_cover_every_note(tiny_checkpoint, segment):
    pretrained = load_pretrained(tiny_checkpoint)
    score = long_score(700)
    perf = render(pretrained, score, RenderOptions.of(seed=0, window=64, context=16, segment=segment, overlap=32))[0]
    perf = perf.performance
    assert len(perf) == 700 and sorted(perf.notes["id"].tolist()) == list(range(700))
    # every chord still starts after the previous one (IOIs floored where the score moves on)
    by_row = np.empty(700)
    by_row[perf.notes["id"]] = perf.notes["onset_sec"]
    chord_start = by_row.reshape(-1, 4).min(1)
    assert (np.diff(chord_start) > 0).all()


def test_segments_overlap_and_stitch_by_cross_fading():
    from espressivo.render.notewise import _stitch, plan_segments

    assert plan_segments(100, 0, 8) == [(0, 100)] and plan_segments(100, 200, 8) == [(0, 100)]
    segments = plan_segments(100, 40, 8)
    assert segments == [(0, 40), (32, 72), (64, 100)]
    parts = np.zeros((3, 40, 8), np.int64)
    parts[0, :, 1], parts[1, :, 1], parts[2, :, 1] = 100, 200, 300  # three tempi
    out = _stitch(parts, segments, 8, 100)
    ioi = out[:, 1]
    assert (ioi[:32] == 100).all() and (ioi[40:64] == 200).all() and (ioi[72:] == 300).all()
    assert (np.diff(ioi[31:41]) > 0).all()  # a glide across the overlap, not a jump


def test_consensus_averages_samples_note_by_note():
    from espressivo.render.notewise import consensus_slots

    # three samples of two notes: PITCH IOI VELOCITY DURATION PEDAL x4
    samples = np.array(
        [
            [[60, 0, 40, 99, 0, 0, 1, 1], [64, 100, 60, 9, 0, 1, 1, 0]],
            [[60, 0, 50, 999, 1, 0, 1, 0], [64, 200, 70, 99, 0, 1, 0, 0]],
            [[60, 0, 61, 9, 1, 0, 0, 0], [64, 330, 80, 999, 0, 0, 1, 0]],
        ]
    )
    out = consensus_slots(samples)
    assert out.tolist() == [[60, 0, 50, 99, 1, 0, 1, 0], [64, 210, 70, 99, 0, 1, 1, 0]]
    assert consensus_slots(samples[:1]).tolist() == samples[0].tolist()
    # a chord (notes 1 and 2 share a score onset): placed at the mean chord onset, spread by the median offsets
    chord = np.zeros((3, 3, 8), np.int64)
    chord[:, :, 0] = 60
    chord[:, 1:, 1] = [[100, 0], [200, 0], [330, 30]]
    out = consensus_slots(chord, score_ioi=np.array([0, 500, 0]))
    assert out[:, 1].tolist() == [0, 215, 0]  # one sample's spread is outvoted; the mean IOI would give 10


def test_chord_spread_scales_offsets_around_the_chord_onset():
    from espressivo.render.notewise import spread_chords

    slots = np.zeros((5, 8), np.int64)
    slots[:, 1] = [0, 500, 10, 20, 400]  # a note, a three-note chord spread over 30 ms, a note
    score_ioi = np.array([0, 500, 0, 0, 400])
    onsets = lambda s: np.cumsum(s[:, 1])  # noqa: E731
    assert onsets(spread_chords(slots, score_ioi, 0.5)).tolist() == [0, 507, 512, 522, 930]
    assert onsets(spread_chords(slots, score_ioi, 0.0)).tolist() == [0, 513, 513, 513, 930]
    assert spread_chords(slots, score_ioi, 1.0) is slots
    # a grace note before a two-note chord (all three at one score onset): it keeps its time, the chord closes
    slots[:, 1] = [0, 440, 60, 20, 400]
    grace = np.array([False, True, False, False, False])
    assert onsets(spread_chords(slots, score_ioi, 0.0, grace)).tolist() == [0, 440, 510, 510, 920]
    assert onsets(spread_chords(slots, score_ioi, 0.0)).tolist() == [0, 487, 487, 487, 920]  # without: struck together


def test_tempo_guard_pulls_iois_towards_the_score():
    from espressivo.render.notewise import _tempo_guard

    model = tiny()
    assert _tempo_guard(model, 0.0) is None
    guard = _tempo_guard(model, 0.5)
    logits = torch.zeros(3, model.config.slot_sizes[1])
    out = guard(logits, torch.tensor([500, 0, 100]))
    assert out[0].argmax() == 500 and out[2].argmax() == 100
    assert torch.equal(out[1], logits[1])  # a chord note (score IOI 0) is left alone
    # log(510 / 10)^2 / (2 * 0.25): a zero IOI where the score has 500 ms
    assert float(out[0, 0]) == pytest.approx(-(np.log(51.0) ** 2) / 0.5, rel=1e-5)
    assert float(out[0, 1010]) == pytest.approx(-(np.log(1020 / 510) ** 2) / 0.5, rel=1e-4)
    graced = guard(logits, torch.tensor([500, 0, 100]), torch.tensor([True, False, False]))
    assert torch.equal(graced[0], logits[0]) and torch.equal(graced[2], out[2])  # a grace note is left alone


def test_tempo_guard_keeps_an_untrained_renderer_near_the_score_tempo(tiny_checkpoint, etude):
    from espressivo.render.notewise import render_slots, score_inputs

    pretrained = load_pretrained(tiny_checkpoint)
    inputs = score_inputs(etude, TOK)
    moves = inputs.src[:, 1] > 0

    def ratio(guard):
        slots = render_slots(pretrained.model, inputs, RenderOptions.of(seed=4, tempo_guard=guard))[0]
        return np.abs(np.log((slots[moves, 1] + 10) / (inputs.src[moves, 1] + 10)))

    free, held = ratio(0.0), ratio(0.2)
    assert np.median(held) < 0.3 < np.median(free)  # random IOIs without the guard, near the score's with it
    assert ratio(0.2).tolist() == held.tolist()  # still a seeded draw


def test_consensus_rendering_is_steadier_than_one_sample(tiny_checkpoint, etude):
    pretrained = load_pretrained(tiny_checkpoint)

    def velocities(seed, consensus):
        perf = render(pretrained, etude, RenderOptions.of(seed=seed, consensus=consensus))[0].performance
        out = np.empty(len(perf))
        out[perf.notes["id"]] = perf.notes["velocity"]
        return out

    one = [velocities(s, 1) for s in (1, 2)]
    many = [velocities(s, 8) for s in (1, 2)]
    assert np.array_equal(many[0], velocities(1, 8))  # reproducible
    assert not np.array_equal(many[0], many[1])  # seeds still differ ...
    assert np.abs(many[0] - many[1]).mean() < np.abs(one[0] - one[1]).mean()  # ... by less


def test_dynamics_drift_follows_the_markings_and_keeps_accents():
    from espressivo.core import Performance
    from espressivo.render.dynamics import marked_level, smooth_over_beats, steady_dynamics

    score = long_score(400)  # 100 beats of four-note chords, no dynamics markings
    level = marked_level(score)
    assert np.allclose(level, level[0]) and 60 < level[0] < 70
    perf = score.to_performance(velocity=64)
    beat = score.notes["onset_beat"][perf.notes["id"]]
    drift = 40 * beat / beat.max()  # louder and louder: +40 by the end
    accent = np.where(beat % 4 == 0, 12.0, 0.0)  # every fourth beat accented
    notes = perf.notes.copy()
    notes["velocity"] = np.rint(60 + drift + accent)
    steady = steady_dynamics(Performance(notes, perf.controls), score, 4.0).notes["velocity"].astype(float)
    middle = (beat > 20) & (beat < 80)
    assert abs(steady[middle].mean() - level[0]) < 1.5  # the level is the marked one again
    assert np.allclose(steady[middle] - smooth_over_beats(beat, steady, 4.0)[middle], accent[middle] - 3, atol=1.5)
    unchanged = steady_dynamics(Performance(notes, perf.controls), score, 0.0)
    assert np.array_equal(unchanged.notes["velocity"], notes["velocity"])


def test_global_controls(tiny_checkpoint, etude):
    pretrained = load_pretrained(tiny_checkpoint)
    perf = render(pretrained, etude, RenderOptions.of(seed=1, tempo=90))[0].performance
    q = etude.notes["onset_quarter"][perf.notes["id"]]
    t = perf.notes["onset_sec"]
    assert 60 * (q.max() - q.min()) / (t.max() - t.min()) == pytest.approx(90, rel=1e-6)
    flat = render(pretrained, etude, RenderOptions.of(seed=1, dynamics_scale=0))[0].performance
    assert np.ptp(flat.notes["velocity"]) <= 1


def test_a_model_trained_at_the_performed_tempo_keeps_the_written_mean_tempo(tiny_checkpoint, etude):
    from dataclasses import replace

    from espressivo.render.base import written_qpm

    pretrained = load_pretrained(tiny_checkpoint)
    anchored = replace(pretrained, config={**pretrained.config, "train": {"score_tempo": "performed"}})
    perf = render(anchored, etude, RenderOptions.of(seed=1))[0].performance
    q = etude.notes["onset_quarter"][perf.notes["id"]]
    t = perf.notes["onset_sec"]
    assert 60 * (q.max() - q.min()) / (t.max() - t.min()) == pytest.approx(written_qpm(etude), rel=1e-6)
    free = render(pretrained, etude, RenderOptions.of(seed=1))[0].performance  # an untrained tiny model: any tempo
    assert free.notes["onset_sec"].max() != pytest.approx(t.max(), rel=1e-3)


def test_tempo_option_keeps_the_written_tempo_changes():
    from dataclasses import replace

    from espressivo.core.score import TEMPO_DTYPE
    from espressivo.render import score_inputs

    score = long_score(32)  # 8 chords, one per quarter
    marks = np.array([(0.0, 60.0, ""), (4.0, 120.0, "")], dtype=TEMPO_DTYPE)  # slower first half
    score = replace(score, tempo_markings=marks)
    written = score_inputs(score, TOK).src[:, 1]
    at_90 = score_inputs(score, TOK, qpm=90).src[:, 1]
    chords = written[written > 0]
    assert chords[0] == 1000 and chords[-1] == 500  # 60 then 120 quarters per minute
    # 7 quarters at a mean of 90 per minute: the same shape, 4 2/3 s in all
    assert at_90.sum() == pytest.approx(7 * 60 / 90 * 1000, abs=4)
    assert (at_90[at_90 > 0][:3] > 1.9 * at_90[at_90 > 0][-1]).all()


def test_tempo_drift_is_taken_out_and_fast_rubato_kept():
    from espressivo.core import Performance
    from espressivo.errors import EspressivoError
    from espressivo.render.timing import shape_tempo

    score = long_score(256)  # 64 chords, one per beat, at one written tempo
    beats = np.arange(63)
    periods = np.linspace(0.4, 0.8, 63) * np.where(beats % 8 == 7, 1.3, 1.0)  # a slow slide; every 8th beat held
    chord_time = np.concatenate([[0.0], np.cumsum(periods)])
    notes = score.to_performance(velocity=64).notes.copy()
    notes["onset_sec"] = chord_time[notes["id"] // 4]
    notes["duration_sec"] = 0.2
    steady = shape_tempo(Performance(notes), score, drift_beats=8.0).notes
    new = np.diff(steady["onset_sec"][::4])[8:-8]  # away from the edges
    held = beats[8:-8] % 8 == 7
    assert np.ptp(new[~held]) < 0.25 * np.ptp(periods[8:-8][~held])  # the slide is gone ...
    assert (new[held] / new[~held].mean() > 1.2).all()  # ... the held beats are still held
    assert steady["onset_sec"][-1] == pytest.approx(notes["onset_sec"][-1], abs=1e-6)  # the same length
    with pytest.raises(EspressivoError, match="tempo-drift"):
        RenderOptions.of(tempo_drift=1)


def test_tempo_mapped_output_sits_on_the_score_grid(tiny_checkpoint, etude, tmp_path):
    import symusic

    pretrained = load_pretrained(tiny_checkpoint)
    perf = render(pretrained, etude, RenderOptions.of(seed=5))[0].performance
    path = tmp_path / "mapped.mid"
    path.write_bytes(tempo_mapped_bytes(etude, perf))
    midi = symusic.Score(str(path))
    assert midi.ticks_per_quarter == 480 and len(midi.tempos) > 1
    assert [(ts.numerator, ts.denominator) for ts in midi.time_signatures] == [(4, 4)]
    notes = midi.tracks[0].notes.numpy()
    expected = np.rint(etude.notes["onset_quarter"] * 480).astype(int)
    order = np.lexsort((notes["pitch"], notes["time"]))
    expected_order = np.lexsort((etude.notes["pitch"], expected))
    assert np.array_equal(notes["time"][order], expected[expected_order])
    assert np.array_equal(notes["pitch"][order], etude.notes["pitch"][expected_order])
    # played back, each chord starts at its rendered (mean) time
    again = read_midi(path)
    from espressivo.render.tempo_map import anchors

    _quarters, seconds = anchors(etude, perf)
    start = again.notes["onset_sec"]
    replay = np.unique(np.round(start, 3))
    assert np.allclose(replay, np.round(seconds - seconds[0] + start.min(), 3), atol=2e-3)


# ---------------------------------------------------------------------------- training tasks
@pytest.fixture(scope="module")
def render_pairs(tmp_path_factory, asap_root):
    return small_pairs(tmp_path_factory.mktemp("rpairs"), asap_root, 3)


def test_render_pairs_windows(render_pairs):
    from espressivo.data.augment import Augmentation
    from espressivo.data.pairs import RenderPairs

    pairs = RenderPairs(render_pairs, "train", TOK, notes=128, augmentation=Augmentation(3, 0.05, 4))
    window = pairs.sample(np.random.default_rng(0))
    assert window["src"].shape == window["tgt"].shape == (128, 8) and window["features"].shape == (128, 12)
    assert not window["loss_mask"][:, 0].any() and window["loss_mask"][:, 1:].any()
    assert np.array_equal(window["src"][:, 0], window["tgt"][:, 0])  # pitch 1:1
    first = next(iter(pairs.windows()))
    assert first["src"][0, 1] == first["tgt"][0, 1] == 0
    assert sum(int(w["keep"].sum()) for w in pairs.windows()) == sum(len(p["pitch"]) for p in pairs.pieces)


def test_training_order_follows_the_pianist_inside_a_chord():
    from espressivo.features.slots import training_order

    written = np.array([0.0, 0.0, 0.0, 0.5, 0.5])
    performed = np.array([0.030, 0.010, 0.010, 0.40, 0.39])  # the chord rolled from notes 1 and 2 (a tie)
    pitch = np.array([60, 64, 72, 50, 55])
    assert training_order(written, performed, pitch).tolist() == [2, 1, 0, 4, 3]
    # a note of the next chord played early stays in its chord
    performed[3] = 0.0
    assert training_order(written, performed, pitch).tolist() == [2, 1, 0, 3, 4]


def test_performed_tempo_scale_from_matched_notes():
    from espressivo.data.pairs import performed_tempo_scale

    written = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    performed = np.array([0.1, 0.8, 1.6, 2.5, 9.0])  # the last note unmatched: ignored
    matched = np.array([True, True, True, True, False])
    assert performed_tempo_scale(written, performed, matched) == pytest.approx(2.4 / 1.5)
    assert performed_tempo_scale(written, performed, np.zeros(5, bool)) == 1.0
    assert performed_tempo_scale(written, written * 100, np.ones(5, bool)) == 5.0  # kept within 0.2..5


def test_render_pairs_score_at_the_performed_tempo(render_pairs):
    from espressivo.data.pairs import RenderPairs
    from espressivo.errors import EspressivoError

    written = RenderPairs(render_pairs, "train", TOK, notes=128)
    performed = RenderPairs(render_pairs, "train", TOK, notes=128, score_tempo="performed")
    for w, p in zip(written.pieces, performed.pieces, strict=True):
        ratio = p["w_onset"][-1] / w["w_onset"][-1]
        ok = p["ok"]
        span_perf = p["p_onset"][ok].max() - p["p_onset"][ok].min()
        span_score = p["w_onset"][ok].max() - p["w_onset"][ok].min()
        assert ratio != pytest.approx(1.0, abs=1e-3)  # these performances are not at the written tempo
        assert span_score == pytest.approx(span_perf, rel=0.02)
        assert np.array_equal(w["p_onset"], p["p_onset"])  # the performance side is untouched
    with pytest.raises(EspressivoError, match="score_tempo"):
        RenderPairs(render_pairs, "train", TOK, notes=128, score_tempo="fast")


def test_denoise_masks_about_the_share_asked():
    from types import SimpleNamespace

    from espressivo.train.tasks import DenoiseTask

    task = DenoiseTask.__new__(DenoiseTask)
    task.c = SimpleNamespace(mask_prob=0.3)
    task.block = TOK.block
    task.starts = np.array([s for s, _ in TOK.slot_ranges])
    task.sizes = np.array([e - s for s, e in TOK.slot_ranges])
    ids = np.concatenate([TOK.encode(read_midi(EXAMPLES / "etude_performance.mid"))[: 60 * 8],
                          np.full(4 * 8, TOK.special("PAD"))])  # fmt: skip
    out = task._corrupt(ids, np.random.default_rng(0))
    assert out["keep"].sum() == 60 and not out["loss_mask"][60:].any()
    assert 0.2 < out["loss_mask"][:60].mean() < 0.4
    masked = out["loss_mask"]
    assert (out["src"][masked] == np.broadcast_to(task.sizes, masked.shape)[masked]).all()
    assert np.array_equal(out["src"][~masked], out["tgt"][~masked])


def _train(config_path):
    return subprocess.run([sys.executable, "-m", "espressivo", "train", str(config_path)],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def test_pretrain_then_finetune_with_the_training_engine(render_pairs, tmp_path):
    corpus = tmp_path / "corpus"
    assert main(["data", "prepare", "--source", str(EXAMPLES), "--tokenizer", "note", "--tokenizer-config",
                 "pedal_levels=2", "--out", str(corpus)]) == 0  # fmt: skip
    index = json.loads((corpus / "index.json").read_text())
    index["entries"].append(index["entries"][0] | {"split": "validation"})
    (corpus / "index.json").write_text(json.dumps(index))
    common = "model_type: renderer\nmodel: tiny\nseq_len: 32\nbatch_size: 2\nmax_steps: 3\nwarmup_steps: 1\n" \
             "eval_every: 3\neval_windows: 2\nsave_every: 3\nlog_every: 1\nthreads: 1\n"  # fmt: skip
    (tmp_path / "pre.yaml").write_text(f"data: {corpus}\nout: {tmp_path / 'pre'}\ntask: denoise\n{common}")
    result = _train(tmp_path / "pre.yaml")
    assert result.returncode == 0, result.stderr
    (tmp_path / "ft.yaml").write_text(
        f"data: {render_pairs}\nout: {tmp_path / 'ft'}\ninit_from: {tmp_path / 'pre' / 'best'}\n{common}"
    )
    result = _train(tmp_path / "ft.yaml")
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "ft" / "log.csv").read_text().splitlines()
    assert len(log) == 4 and log[-1].split(",")[3]  # validated at the last step
    assert load_pretrained(tmp_path / "ft" / "best").model_type == "notewise"


def test_wrong_task_for_the_model_is_refused(render_pairs, tmp_path):
    (tmp_path / "bad.yaml").write_text(f"data: {render_pairs}\nout: {tmp_path / 'x'}\nmodel_type: transformer\n"
                                       "task: render\n")  # fmt: skip
    result = _train(tmp_path / "bad.yaml")
    assert result.returncode == 2 and "lm or events" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- CLI
def test_cli_render_writes_midi_wav_png_and_tempo_map(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out.mid"
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--seed", "2", "--plot", "--tempo-mapped", str(tmp_path / "edit.mid"), "--top-p", "0.9"])  # fmt: skip
    assert code == 0
    assert len(read_midi(out)) == 84 and len(read_midi(tmp_path / "edit.mid")) == 84
    assert (tmp_path / "out.png").stat().st_size > 10_000


def test_cli_render_says_when_it_estimated_the_tempo(tiny_checkpoint, tmp_path, capsys):
    from espressivo.render.score_tempo import estimated_qpm

    from .test_score_io import KERN  # no metronome mark

    path = tmp_path / "bare.krn"
    path.write_text(KERN)
    args = ["render", str(path), "-o", str(tmp_path / "o.mid"), "--model", str(tiny_checkpoint)]
    assert main(args) == 0
    qpm = round(estimated_qpm(read_score(path, unfold=True)), 1)
    assert f"no metronome mark: played around {qpm:g} quarters per minute, estimated" in capsys.readouterr().out
    assert main([*args, "--no-estimate-tempo"]) == 0 and "estimated" not in capsys.readouterr().out
    assert main([*args, "--tempo", "80"]) == 0 and "estimated" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tempo", "0"], "--tempo"),
        (["--top-p", "0"], "top-p"),
        (["--temperature", "-1"], "temperature"),
        (["--tempo-scale", "100"], "--tempo-scale"),
        (["--tempo-drift", "1"], "--tempo-drift"),
        (["--consensus", "0"], "--consensus"),
        (["--dynamics-drift", "-2"], "--dynamics-drift"),
        (["--chord-spread", "9"], "--chord-spread"),
        (["--consensus", "1000"], "--consensus"),
        (["--tempo-guard", "0.01"], "--tempo-guard"),
        (["--tempo-guard", "nan"], "--tempo-guard"),
        (["--roll-step", "2"], "--roll-step"),
        (["--roll-step", "nan"], "--roll-step"),
    ],
)
def test_cli_render_bad_flags(tiny_checkpoint, tmp_path, capsys, args, message):
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(tmp_path / "o.mid"),
                 "--model", str(tiny_checkpoint), *args])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.musicxml", b""),
        ("junk.musicxml", b"\x00\x01garbage"),
        ("junk.mid", b"MThd\x00"),
        ("notes.txt", b"C D E"),
    ],
)
def test_cli_render_bad_scores(tiny_checkpoint, tmp_path, capsys, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    code = main(["render", str(path), "-o", str(tmp_path / "o.mid"), "--model", str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("espressivo: error:") and err.count("\n") == 1
    assert not (tmp_path / "o.mid").exists()


def test_cli_render_refuses_wrong_outputs_and_models(tiny_checkpoint, tmp_path, capsys):
    score = str(EXAMPLES / "etude.musicxml")
    assert main(["render", score, "-o", str(tmp_path / "o.wav"), "--model", str(tiny_checkpoint)]) == 2
    same = str(tmp_path / "o.mid")
    assert main(["render", score, "-o", same, "--tempo-mapped", same, "--model", str(tiny_checkpoint)]) == 2
    assert main(["render", score, "-o", str(tmp_path / "o.mid"), "--model", str(tmp_path / "nothing")]) == 2
    assert main(["render", score, "-o", str(tmp_path / "o.mid"), "--model", "transformer-small"]) == 2
    assert "not a renderer" in capsys.readouterr().err


def test_cli_render_a_midi_score_from_asap(tiny_checkpoint, asap_root, tmp_path):
    midi_score = sorted(asap_root.rglob("midi_score.mid"))[0]
    out = tmp_path / "o.mid"
    code = main(["render", str(midi_score), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--tempo", "100", "--dynamics-scale", "1.5", "--tempo-mapped", str(tmp_path / "e.mid")])  # fmt: skip
    assert code == 0
    score = read_score(midi_score, unfold=True)
    assert len(read_midi(out)) == len(score) == len(read_midi(tmp_path / "e.mid"))


def test_any_sampled_slots_decode_to_valid_midi():
    from espressivo.io.midi import midi_bytes, parse_midi

    rng = np.random.default_rng(0)
    sizes = np.array(slot_sizes(TOK))
    for _ in range(50):
        n = int(rng.integers(1, 40))
        slots = rng.integers(0, sizes, size=(n, len(sizes)))
        perf = decode_slots(slots, rng.integers(0, 3, n), TOK)
        again = parse_midi(midi_bytes(perf))
        assert len(again) == n and (again.notes["duration_sec"] > 0).all()


def test_cli_render_variations(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "v.mid"
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--variations", "3", "--tempo-mapped", str(tmp_path / "e.mid")])  # fmt: skip
    assert code == 0
    files = [read_midi(tmp_path / f"v-{k}.mid") for k in (1, 2, 3)]
    assert all(len(f) == 84 for f in files) and (tmp_path / "e-3.mid").is_file()
    assert not np.array_equal(files[0].notes["onset_sec"], files[1].notes["onset_sec"])
    assert main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--variations", "0"]) == 2  # fmt: skip


def test_sampling_heads_match_the_model_heads():
    from espressivo.render.notewise import BF16_HEAD_CLASSES, cpu_has_bf16, sampling_heads

    model = build_model("notewise", "tiny", slot_sizes=slot_sizes(TOK)).eval()
    heads = sampling_heads(model)
    wide = [s for s, h in enumerate(model.heads) if h.out_features >= BF16_HEAD_CLASSES]
    assert wide == [1, 3]
    for s, head in enumerate(heads):
        expected = torch.bfloat16 if s in wide and cpu_has_bf16() else torch.float32
        assert head.weight.dtype == expected
    assert sampling_heads(model)[1] is heads[1]  # cast once, reused
    hidden, context = torch.randn(3, 64), torch.randn(3, 64)
    with torch.inference_mode():
        for s in range(1, len(heads)):
            exact = model.slot_logits(hidden, s, context)
            fast = model.slot_logits(hidden, s, context, heads)
            assert fast.dtype == torch.float32 and torch.allclose(fast, exact, atol=0.02 * exact.abs().max().item())


def test_render_options_route_flat_settings_to_their_group():
    from espressivo.errors import EspressivoError

    options = RenderOptions.of(seed=3, tempo=90, chord_spread=0.5, window=512)
    assert (options.sampling.seed, options.timing.tempo, options.shaping.chord_spread) == (3, 90, 0.5)
    assert options.sampling.window == 512 and options.changed() == {"seed": 3, "tempo": 90, "chord_spread": 0.5,
                                                                    "window": 512}  # fmt: skip
    again = options.replace(tempo=None, expressiveness=2.0)
    assert again.timing.tempo is None and again.shaping.expressiveness == 2.0 and again.sampling.seed == 3
    assert RenderOptions().flat()["top_p"] == 0.95 and RenderOptions.of() == RenderOptions()
    with pytest.raises(EspressivoError, match="unknown rendering settings: tempo_smoothing"):
        RenderOptions.of(tempo_smoothing=2)
    with pytest.raises(EspressivoError, match="--tempo must lie"):
        options.replace(tempo=5)


def test_a_pickup_bar_keeps_the_bar_lines_where_the_score_prints_them(asap_root, tmp_path):
    """Chopin op. 10/3 opens with an eighth-note pickup: the editable MIDI starts with a 1/8 bar, and 2/4 from
    the first downbeat (2/4 from tick 0 put every bar line an eighth early)."""
    import symusic

    score = read_score(asap_root / "Chopin" / "Etudes_op_10" / "3" / "xml_score.mxl")
    perf = score.to_performance()
    midi = symusic.Score.from_midi(tempo_mapped_bytes(score, perf))
    signatures = [(t.time, t.numerator, t.denominator) for t in midi.time_signatures]
    assert signatures[:2] == [(0, 1, 8), (240, 2, 4)]
    first_downbeat = np.sort(score.measures["onset_quarter"])[1]
    on_downbeat = perf.notes["id"][score.notes["onset_quarter"][perf.notes["id"]] == first_downbeat]
    ticks = {n.time for n in midi.tracks[0].notes}
    assert 240 in ticks and len(on_downbeat) > 0 and min(ticks) == 0


def test_a_pickup_is_bar_zero_so_bars_are_numbered_as_printed(asap_root):
    """Chopin op. 10/3 numbers its pickup 0: "bars 21 to 24" are the printed bars 21-24 (the 22nd to 25th
    measures as played), not 20-23; a score without a pickup starts at bar 1."""
    from espressivo.render.passage import bar_span

    score = read_score(asap_root / "Chopin" / "Etudes_op_10" / "3" / "xml_score.mxl")
    starts = np.sort(score.measures["onset_quarter"])
    assert score.pickup_quarters == 0.5 and score.first_bar == 0
    begin, end = bar_span(score, 21, 24)
    assert begin == score.beat_from_quarter(starts[21]) and end == score.beat_from_quarter(starts[25])
    assert bar_span(score, 0, 0)[0] == score.beat_from_quarter(starts[0])  # the pickup itself
    with pytest.raises(EspressivoError, match=r"bars must lie in 0\.\.77"):
        bar_span(score, 0, 78)
    plain = read_score(EXAMPLES / "etude.musicxml")
    assert plain.pickup_quarters == 0.0 and plain.first_bar == 1
    with pytest.raises(EspressivoError, match=r"bars must lie in 1\.\.8"):
        bar_span(plain, 0, 1)
