"""performance-rnn: the paper's 413 events, exact event lists on tiny inputs, round trips on real data."""

import numpy as np
import pytest

from espressivo import Performance
from espressivo.core import SUSTAIN
from espressivo.tokenizers import from_name


@pytest.fixture(scope="module")
def tok():
    return from_name("performance-rnn")


def events(tok, notes, controls=()):
    onset, duration, pitch, velocity = zip(*notes, strict=True)
    perf = Performance.from_arrays(onset, duration, pitch, velocity, controls=controls)
    return tok.vocab.tokens(tok.encode(perf))


def test_vocabulary_is_the_papers(tok):
    assert tok.n_events == 413
    v = tok.vocab
    assert (v["NOTE_ON"].start, v["NOTE_OFF"].start, v["TIME_SHIFT"].start, v["VELOCITY"].start) == (0, 128, 256, 381)
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (413, 414, 415)
    assert v.token(0) == "NOTE_ON_0" and v.token(380) == "TIME_SHIFT_125" and v.token(412) == "VELOCITY_32"
    assert all(v.index(v.token(i)) == i for i in range(len(v)))
    assert from_name("performance-rnn", velocity_bins=0).n_events == 381  # RNN-NV


def test_simultaneous_notes(tok):
    # a C major triad, 0.5 s, velocity 80 (bin 20): one velocity event, presses by pitch, releases first
    assert events(tok, [(0.0, 0.5, 67, 80), (0.0, 0.5, 60, 80), (0.0, 0.5, 64, 80)]) == [
        "VELOCITY_20", "NOTE_ON_60", "NOTE_ON_64", "NOTE_ON_67",
        "TIME_SHIFT_62", "NOTE_OFF_60", "NOTE_OFF_64", "NOTE_OFF_67",
    ]  # fmt: skip


def test_long_rest_chains_time_shifts(tok):
    # 2.5 s of silence: the second note starts at step round(2.508 / 0.008) = 314, 313 steps after the
    # first note's release: 125 + 125 + 63
    assert events(tok, [(0.0, 0.008, 60, 64), (2.508, 0.016, 62, 64)]) == [
        "VELOCITY_16", "NOTE_ON_60", "TIME_SHIFT_1", "NOTE_OFF_60",
        "TIME_SHIFT_125", "TIME_SHIFT_125", "TIME_SHIFT_63", "NOTE_ON_62", "TIME_SHIFT_2", "NOTE_OFF_62",
    ]  # fmt: skip


def test_repeated_notes_and_velocity_changes(tok):
    # the same key three times; velocity event only when the bin changes (97..100 is one bin)
    assert events(tok, [(0.0, 0.2, 60, 100), (0.2, 0.2, 60, 98), (0.4, 0.2, 60, 30)]) == [
        "VELOCITY_25", "NOTE_ON_60", "TIME_SHIFT_25", "NOTE_OFF_60", "NOTE_ON_60",
        "TIME_SHIFT_25", "NOTE_OFF_60", "VELOCITY_8", "NOTE_ON_60", "TIME_SHIFT_25", "NOTE_OFF_60",
    ]  # fmt: skip


def test_overlapping_same_key_is_cut_at_the_restrike(tok):
    # a key struck again while held: the first note ends where the second starts
    assert events(tok, [(0.0, 1.0, 60, 64), (0.4, 0.2, 60, 64)]) == [
        "VELOCITY_16", "NOTE_ON_60", "TIME_SHIFT_50", "NOTE_OFF_60", "NOTE_ON_60", "TIME_SHIFT_25", "NOTE_OFF_60",
    ]  # fmt: skip


def test_sustain_variant_folds_the_pedal(tok):
    sus = from_name("performance-rnn", sustain=True)
    notes = [(0.0, 0.2, 60, 64)]
    pedal = [(0.0, SUSTAIN, 127), (1.0, SUSTAIN, 0)]
    assert events(tok, notes, pedal)[-2:] == ["TIME_SHIFT_25", "NOTE_OFF_60"]
    assert events(sus, notes, pedal)[-2:] == ["TIME_SHIFT_125", "NOTE_OFF_60"]


def test_no_velocity_variant():
    nv = from_name("performance-rnn", velocity_bins=0, default_velocity=70)
    ids = nv.encode(Performance.from_arrays([0.0], [0.1], [60], [10]))
    assert nv.vocab.tokens(ids) == ["NOTE_ON_60", "TIME_SHIFT_12", "NOTE_OFF_60"]  # 12.5 steps rounds to even
    assert nv.decode(ids).notes["velocity"].tolist() == [70]


def test_decode_counts_what_it_cannot_realise(tok):
    v = tok.vocab
    ids = [v.index(t) for t in ["NOTE_OFF_60", "VELOCITY_10", "NOTE_ON_62", "NOTE_ON_64", "NOTE_OFF_64",
                                "TIME_SHIFT_10", "NOTE_OFF_62"]] + [999, -5, tok.pad_id]  # fmt: skip
    perf, dropped = tok.decode_checked(ids)
    # dropped: a release of a silent key, a zero-length note (64), two ids outside the vocabulary
    assert dropped == 4
    assert perf.notes["pitch"].tolist() == [62] and perf.notes["duration_sec"].tolist() == [0.08]
    assert perf.notes["velocity"].tolist() == [38]  # the middle of bin 10 (37..40), rounded down
    # EOS ends the sequence; a note still sounding is released at the end
    eos = tok.decode([v.index("NOTE_ON_60"), v.index("TIME_SHIFT_5"), tok.eos_id, v.index("NOTE_OFF_60")])
    assert eos.notes["duration_sec"].tolist() == [0.04]


def test_random_id_sequences_never_raise(tok):
    rng = np.random.default_rng(0)
    for _ in range(300):
        ids = rng.integers(-3, len(tok.vocab) + 3, rng.integers(0, 600))
        perf, dropped = tok.decode_checked(ids)
        assert dropped >= 0 and np.all(perf.notes["duration_sec"] > 0)


def test_round_trip_on_real_performances(asap):
    """Same notes; onsets and offsets within 4 ms; velocity in its bin.  Exceptions, by design: a note whose
    key is struck again before its release ends at the re-strike, a note shorter than one step lasts one
    step, and two presses of one key on one 8 ms step become one (the louder)."""
    rng = np.random.default_rng(1)
    items = [asap.items[k] for k in rng.choice(len(asap), 12, replace=False)]
    for variant in ({}, {"sustain": True}):
        tok = from_name("performance-rnn", **variant)
        for item in items:
            perf = item.load_performance()
            source = perf.apply_sustain() if variant else perf
            back, dropped = tok.decode_checked(tok.encode(perf))
            assert dropped == 0
            s = source.notes[np.lexsort((-source.notes["velocity"], source.notes["onset_sec"], source.notes["pitch"]))]
            b = back.notes[np.lexsort((back.notes["onset_sec"], back.notes["pitch"]))]
            on_step = np.rint(s["onset_sec"] / 0.008).astype(int)
            same_step = np.concatenate([[False], (s["pitch"][1:] == s["pitch"][:-1]) & (on_step[1:] == on_step[:-1])])
            s = s[~same_step]
            assert same_step.mean() < 0.002 and len(s) == len(b)
            assert np.array_equal(s["pitch"], b["pitch"])
            assert np.abs(s["onset_sec"] - b["onset_sec"]).max() <= 0.004 + 1e-9
            assert np.array_equal((s["velocity"] - 1) // 4, (b["velocity"] - 1) // 4)
            next_onset = np.where(
                np.concatenate([s["pitch"][1:] == s["pitch"][:-1], [False]]), np.roll(s["onset_sec"], -1), np.inf
            )
            offset = s["onset_sec"] + s["duration_sec"]
            # released before its key is struck again, and longer than the one-step minimum
            free = (offset <= next_onset + 1e-9) & (s["duration_sec"] >= 0.012)
            assert free.mean() > 0.98
            assert np.abs(offset[free] - (b["onset_sec"] + b["duration_sec"])[free]).max() <= 0.004 + 1e-9


def test_save_and_load(tmp_path):
    from espressivo.tokenizers import load_tokenizer

    tok = from_name("performance-rnn", sustain=True, velocity_bins=16)
    tok.save(tmp_path / "t.json")
    again = load_tokenizer(tmp_path / "t.json")
    assert again.config == tok.config and len(again.vocab) == len(tok.vocab)
