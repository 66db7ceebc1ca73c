"""Every registered tokenizer (MiduTok-style): re-encoding is stable, random ids decode, save/load;
plus the note tokenizer's exact layout and real-data round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espressivo import EspressivoError, Performance, read_score
from espressivo.core import SUSTAIN
from espressivo.tokenizers import TOKENIZERS, from_name, load_tokenizer
from tests.conftest import EXAMPLES

VARIANTS = [
    ("performance-rnn", {}),
    ("performance-rnn", {"sustain": True}),
    ("performance-rnn", {"velocity_bins": 0}),
    ("note", {}),
    ("note", {"time_step_ms": 10, "velocity_bins": 12, "pedal_levels": 2}),
    ("aria", {}),
    ("aria", {"window_ms": 2000, "velocity_bins": 8}),
]


@st.composite
def performances(draw):
    n = draw(st.integers(0, 40))
    onset = draw(st.lists(st.floats(0, 20, allow_nan=False), min_size=n, max_size=n))
    duration = draw(st.lists(st.floats(0.001, 3), min_size=n, max_size=n))
    pitch = draw(st.lists(st.integers(21, 108), min_size=n, max_size=n))
    velocity = draw(st.lists(st.integers(1, 127), min_size=n, max_size=n))
    pedal_times = sorted(draw(st.lists(st.floats(0, 20), max_size=6)))
    controls = [(t, SUSTAIN, 127 if k % 2 == 0 else 0) for k, t in enumerate(pedal_times)]
    return Performance.from_arrays(onset, duration, pitch, velocity, controls=controls)


@pytest.mark.parametrize(("name", "config"), VARIANTS)
@settings(max_examples=60, deadline=None)
@given(perf=performances())
def test_reencoding_a_decoded_sequence_is_stable(name, config, perf):
    tok = from_name(name, **config)
    ids = tok.encode(perf)
    decoded, dropped = tok.decode_checked(ids)
    assert dropped == 0
    assert np.array_equal(tok.encode(decoded), ids)


@pytest.mark.parametrize(("name", "config"), VARIANTS)
def test_random_ids_decode_without_raising(name, config):
    tok = from_name(name, **config)
    rng = np.random.default_rng(5)
    for _ in range(200):
        perf, dropped = tok.decode_checked(rng.integers(-2, len(tok.vocab) + 2, rng.integers(0, 400)))
        assert isinstance(perf, Performance) and dropped >= 0


@pytest.mark.parametrize(("name", "config"), VARIANTS)
def test_save_load(name, config, tmp_path):
    tok = from_name(name, **config)
    tok.save(tmp_path / "tok.json")
    assert load_tokenizer(tmp_path / "tok.json").config == tok.config


def test_registry_and_bad_specs(tmp_path):
    assert {"performance-rnn", "note", "aria"} <= set(TOKENIZERS)
    with pytest.raises(EspressivoError):
        from_name("nope")
    with pytest.raises(EspressivoError):
        from_name("note", time_step_ms=0)
    with pytest.raises(EspressivoError):
        from_name("note", bogus=1)
    (tmp_path / "bad.json").write_text('{"tokenizer": "note", "config": {"evil": 1}}')
    with pytest.raises(EspressivoError):
        load_tokenizer(tmp_path / "bad.json")
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(EspressivoError):
        load_tokenizer(tmp_path / "garbage.json")
    with pytest.raises(EspressivoError):
        from_name("note").decode(np.zeros((2, 2), int))


def test_note_block_layout():
    tok = from_name("note")
    perf = Performance.from_arrays(
        [0.0, 0.0, 1.5], [0.5, 0.5, 0.1], [64, 60, 60], [80, 81, 20], controls=[(0.2, SUSTAIN, 127), (1.0, SUSTAIN, 0)]
    )
    assert tok.vocab.tokens(tok.encode(perf)) == [
        "PITCH_60", "IOI_0", "VELOCITY_81", "DURATION_500", "PEDAL_0", "PEDAL_127", "PEDAL_127", "PEDAL_0",
        "PITCH_64", "IOI_0", "VELOCITY_80", "DURATION_500", "PEDAL_0", "PEDAL_127", "PEDAL_127", "PEDAL_0",
        "PITCH_60", "IOI_1500", "VELOCITY_20", "DURATION_100", "PEDAL_0", "PEDAL_0", "PEDAL_0", "PEDAL_0",
    ]  # fmt: skip
    # the chord's pedal is sampled over the 1.5 s to the next onset: 0, 0.375, 0.75, 1.125 s


def test_note_decode_drops_bad_blocks():
    tok = from_name("note")
    good = tok.encode(Performance.from_arrays([0.0, 0.1], [0.1, 0.1], [60, 62], [50, 60]))
    bad = good.copy()
    bad[9] = tok.vocab["PITCH"].start  # an IOI slot holding a pitch id
    perf, dropped = tok.decode_checked(np.concatenate([bad, good[:3]]))  # + a trailing partial block
    assert dropped == 2 and perf.notes["pitch"].tolist() == [60]
    masked = good.copy()
    masked[2] = tok.special("MASK")
    assert tok.decode_checked(masked)[1] == 1


def test_note_round_trip_on_real_performances(asap):
    tok = from_name("note")
    rng = np.random.default_rng(2)
    for k in rng.choice(len(asap), 8, replace=False):
        perf = asap.items[k].load_performance()
        back, dropped = tok.decode_checked(tok.encode(perf))
        assert dropped == 0 and len(back) == len(perf)
        a = perf.notes[np.lexsort((perf.notes["pitch"], np.rint(perf.notes["onset_sec"] / 0.001)))]
        b = back.notes[np.lexsort((back.notes["pitch"], back.notes["onset_sec"]))]
        assert np.array_equal(a["pitch"], b["pitch"]) and np.array_equal(a["velocity"], b["velocity"])
        # inter-onset intervals within the 1 ms grid; rests over 4.99 s are shortened to 4.99 s by design
        ioi_a = np.minimum(np.diff(np.rint(a["onset_sec"] / 0.001)), 4990)
        assert np.array_equal(ioi_a, np.rint(np.diff(b["onset_sec"]) * 1000))
        assert abs(a["onset_sec"][0] - b["onset_sec"][0]) <= 0.0005 + 1e-9
        short = a["duration_sec"] < 4.99
        assert np.abs(a["duration_sec"] - b["duration_sec"])[short].max() <= 0.0005 + 1e-9


def test_score_and_performance_share_the_vocabulary():
    tok = from_name("note")
    score = read_score(EXAMPLES / "etude.musicxml")
    ids = tok.encode_score(score)
    assert len(ids) == tok.block * len(score)
    deadpan = tok.decode(ids)
    assert deadpan.notes["velocity"].tolist() == [64] * len(score)
    assert deadpan.end_sec == pytest.approx(32 * 60 / 72, abs=0.002)


def test_note_tokenizer_counts_the_notes_it_clamps():
    """Durations and rests beyond the vocabulary are clamped at encoding; encode_checked says how many notes."""
    from espressivo.core import Performance

    tok = from_name("note")
    perf = Performance.from_arrays(onset_sec=[0.0, 0.5, 7.0], duration_sec=[7.0, 0.4, 0.3], pitch=[60, 64, 67],
                                   velocity=[80, 70, 60])  # fmt: skip
    ids, altered = tok.encode_checked(perf)
    assert altered == 2 and np.array_equal(ids, tok.encode(perf))  # the 7 s note and the 6.5 s rest
    back = tok.decode(ids)
    assert back.notes["duration_sec"].max() == pytest.approx(4.999)
    assert back.notes["onset_sec"][-1] == pytest.approx(5.49)
    assert tok.encode_checked(back)[1] == 0 and from_name("performance-rnn").encode_checked(perf)[1] == 0


def test_aria_event_layout():
    """A chord, a note past the first 5-s window, the pedal as its own events; a release before the notes of
    its time step and a press after them."""
    tok = from_name("aria")
    perf = Performance.from_arrays(
        [0.0, 0.0, 6.2, 7.0], [0.5, 0.5, 7.0, 0.2], [64, 60, 109, 40], [80, 81, 20, 30],
        controls=[(0.2, SUSTAIN, 127), (6.2, SUSTAIN, 0), (7.0, SUSTAIN, 100), (7.5, SUSTAIN, 0), (7.504, SUSTAIN, 90)],
    )  # fmt: skip
    ids, altered = tok.encode_checked(perf)
    note = lambda pitch, velocity: f"NOTE_{(pitch - 21) * 16 + velocity // 8}"  # noqa: E731
    assert tok.vocab.tokens(ids) == [
        note(60, 81), "ONSET_0", "DUR_50", note(64, 80), "ONSET_0", "DUR_50", "PED_ON", "ONSET_20",
        "TICK", "PED_OFF", "ONSET_120", note(97, 20), "ONSET_120", "DUR_500",
        note(40, 30), "ONSET_200", "DUR_20", "PED_ON", "ONSET_200",
    ]  # fmt: skip
    # one note altered: pitch 109 moved an octave down onto the keyboard, its 7 s clamped to 5 s; the lift of 4 ms
    # at 7.5 s is no lift on the 10-ms grid (the pedal stays down, and is never released)
    assert altered == 1
    back = tok.decode(ids)
    assert back.notes["pitch"].tolist() == [60, 64, 97, 40] and back.notes["velocity"].tolist() == [84, 84, 20, 28]
    assert back.controls["time_sec"].tolist() == [0.2, 6.2, 7.0] and back.controls["value"].tolist() == [127, 0, 127]
    assert np.allclose(tok.times(ids)[[2, 7, 8, 10]], [0.0, 0.2, 5.0, 6.2])


def test_aria_pedal_states_at_the_origin_and_at_the_end():
    tok = from_name("aria")
    perf = Performance.from_arrays([1.0, 2.0], [0.1, 0.1], [60, 62], 64, controls=[(0.5, SUSTAIN, 127)])
    ids, _, _ = tok.encode_events(perf, origin_sec=1.0)
    # from 1 s: the pedal is down at the origin (stated after the notes of that step, as a press is), and never
    # comes up (no release is made up at the end)
    names = tok.vocab.tokens(ids)
    assert names[1:5] == ["ONSET_0", "DUR_10", "PED_ON", "ONSET_0"] and "PED_OFF" not in names


def test_aria_decode_drops_malformed_events():
    tok = from_name("aria")
    good = tok.encode(Performance.from_arrays([0.0, 0.1], [0.1, 0.1], [60, 62], [50, 60]))
    broken = np.concatenate([good[:2], good[3:]])  # the first note loses its duration
    perf, dropped = tok.decode_checked(broken)
    assert perf.notes["pitch"].tolist() == [62] and dropped == 1
    assert tok.decode_checked(np.concatenate([good, [tok.special("EOS")], good]))[0].notes.size == 2
