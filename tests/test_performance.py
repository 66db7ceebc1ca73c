"""The Performance data model: hand-built inputs, exact expected outputs."""

import numpy as np
import pytest

from espressivo import EspressivoError, Performance
from espressivo.core import SUSTAIN


def perf(notes, controls=()):
    onset, duration, pitch, velocity = zip(*notes, strict=True) if notes else ((), (), (), ())
    return Performance.from_arrays(onset, duration, pitch, velocity, controls=controls)


def test_from_arrays_orders_and_numbers_notes():
    p = perf([(1.0, 0.5, 60, 80), (0.0, 1.0, 64, 70), (0.0, 1.0, 60, 90)])
    assert p.notes["onset_sec"].tolist() == [0.0, 0.0, 1.0]
    assert p.notes["pitch"].tolist() == [60, 64, 60]
    assert p.notes["id"].tolist() == [0, 1, 2]
    assert p.end_sec == 1.5


def test_arrays_are_read_only():
    p = perf([(0.0, 1.0, 60, 80)])
    with pytest.raises(ValueError):
        p.notes["pitch"][0] = 61


@pytest.mark.parametrize(
    "notes",
    [
        [(-1.0, 1.0, 60, 80)],
        [(0.0, -0.1, 60, 80)],
        [(0.0, 1.0, 128, 80)],
        [(0.0, 1.0, 60, 0)],
        [(float("nan"), 1.0, 60, 80)],
    ],
)
def test_invalid_notes_are_refused(notes):
    with pytest.raises(EspressivoError):
        perf(notes)


# ---------------------------------------------------------------- sustain pedal (Performance RNN rule)
def test_sustain_extends_release_to_pedal_up():
    p = perf([(0.0, 0.5, 60, 80), (2.0, 0.5, 62, 80)], controls=[(0.2, SUSTAIN, 127), (1.5, SUSTAIN, 0)])
    s = p.apply_sustain()
    # first note released at 0.5 while the pedal is down -> sounds until 1.5; second note after release
    assert s.offset_sec.tolist() == [1.5, 2.5]


def test_sustain_does_not_shorten_a_note_held_past_the_release():
    p = perf([(0.0, 3.0, 60, 80)], controls=[(0.5, SUSTAIN, 100), (1.0, SUSTAIN, 0)])
    assert p.apply_sustain().offset_sec.tolist() == [3.0]


def test_sustain_restrike_of_same_key_ends_the_sustained_note():
    p = perf(
        [(0.0, 0.3, 60, 80), (1.0, 0.3, 60, 70), (1.2, 0.2, 64, 60)],
        controls=[(0.1, SUSTAIN, 127), (2.0, SUSTAIN, 0)],
    )
    s = p.apply_sustain()
    # C4 sustained from 0.3 is cut when C4 is struck again at 1.0; the second C4 and E4 ring to 2.0
    assert s.offset_sec.tolist() == [1.0, 2.0, 2.0]


def test_sustain_pedal_never_released_holds_to_the_end():
    p = perf([(0.0, 0.2, 60, 80), (0.5, 1.5, 67, 80)], controls=[(0.1, SUSTAIN, 127)])
    assert p.apply_sustain().offset_sec.tolist() == [2.0, 2.0]


def test_sustain_threshold_and_half_pedal_values():
    # value 63 is "up", 64 is "down"
    p = perf(
        [(0.0, 0.2, 60, 80), (1.0, 0.2, 62, 80)], controls=[(0.1, SUSTAIN, 63), (0.9, SUSTAIN, 64), (1.5, SUSTAIN, 0)]
    )
    assert p.apply_sustain().offset_sec.tolist() == [0.2, 1.5]


def test_pedal_intervals_and_values():
    p = perf([(0.0, 3.0, 60, 80)], controls=[(0.5, SUSTAIN, 127), (1.0, SUSTAIN, 0), (2.0, SUSTAIN, 90)])
    down, up = p.pedal_intervals()
    assert down.tolist() == [0.5, 2.0] and up.tolist() == [1.0, 3.0]
    assert p.pedal_value_at([0.0, 0.5, 0.7, 1.0, 2.5]).tolist() == [0, 127, 127, 0, 90]


# ---------------------------------------------------------------- other operations
def test_transpose_reports_notes_falling_off_the_keyboard():
    p = perf([(0.0, 1.0, 21, 80), (0.0, 1.0, 60, 80), (1.0, 1.0, 107, 80)])
    up, dropped = p.transpose(2)
    assert up.notes["pitch"].tolist() == [23, 62]
    assert dropped["pitch"].tolist() == [107]
    down, dropped = p.transpose(-1)
    assert down.notes["pitch"].tolist() == [59, 106] and dropped["pitch"].tolist() == [21]


def test_time_stretch_scales_notes_and_pedals():
    p = perf([(1.0, 0.5, 60, 80)], controls=[(0.5, SUSTAIN, 127)]).time_stretch(1.1)
    assert p.notes["onset_sec"][0] == pytest.approx(1.1)
    assert p.notes["duration_sec"][0] == pytest.approx(0.55)
    assert p.controls["time_sec"][0] == pytest.approx(0.55)
    with pytest.raises(EspressivoError):
        p.time_stretch(0)


def test_velocity_scale_and_shift_clamp():
    p = perf([(0.0, 1.0, 60, 10), (0.0, 1.0, 62, 100)])
    assert p.adjust_velocity(scale=1.5).notes["velocity"].tolist() == [15, 127]
    assert p.adjust_velocity(shift=-20).notes["velocity"].tolist() == [1, 80]


def test_slice_keeps_pedal_state_and_rebases():
    p = perf(
        [(0.0, 1.0, 60, 80), (1.5, 1.0, 62, 80), (2.5, 1.0, 64, 80)],
        controls=[(1.0, SUSTAIN, 127), (2.2, SUSTAIN, 0)],
    )
    s = p.slice(1.2, 3.0)
    assert s.notes["pitch"].tolist() == [62, 64]
    assert s.notes["onset_sec"].tolist() == pytest.approx([0.3, 1.3])
    assert s.notes["duration_sec"].tolist() == pytest.approx([1.0, 0.5])  # the last one clipped at 3.0
    assert s.controls["time_sec"].tolist() == pytest.approx([0.0, 1.0])
    assert s.controls["value"].tolist() == [127, 0]
    assert p.slice(1.2, 3.0, rebase=False).notes["onset_sec"].tolist() == [1.5, 2.5]


def test_merge_keeps_tracks_apart():
    a = perf([(0.0, 1.0, 60, 80)])
    b = perf([(0.5, 1.0, 48, 60)], controls=[(0.0, SUSTAIN, 127)])
    m = Performance.merge([a, b])
    assert m.notes["pitch"].tolist() == [60, 48]
    assert m.notes["track"].tolist() == [0, 1]
    assert m.notes["id"].tolist() == [0, 1]
    assert len(m.controls) == 1


def test_deduplicate_same_pitch_overlaps():
    p = perf(
        [
            (0.0, 1.0, 60, 70),
            (0.0005, 0.5, 60, 90),  # the same key press twice (within 1 ms): keep the louder
            (0.6, 0.4, 60, 50),  # struck again while the first is held: the first is cut at 0.6
            (0.0, 2.0, 64, 80),  # another pitch: untouched
        ]
    )
    d = p.deduplicate()
    c4 = d.notes[d.notes["pitch"] == 60]
    assert c4["onset_sec"].tolist() == [0.0005, 0.6]
    assert c4["velocity"].tolist() == [90, 50]
    assert c4["duration_sec"].tolist() == pytest.approx([0.5, 0.4])
    assert d.notes[d.notes["pitch"] == 64]["duration_sec"].tolist() == [2.0]
    assert d.deduplicate().notes.tolist() == d.notes.tolist()  # idempotent


def test_operations_do_not_modify_the_original():
    p = perf([(0.0, 0.5, 60, 80)], controls=[(0.1, SUSTAIN, 127), (1.0, SUSTAIN, 0)])
    before = p.notes.copy()
    p.apply_sustain(), p.transpose(3), p.time_stretch(2), p.adjust_velocity(2), p.slice(0, 0.3), p.deduplicate()
    assert p.notes.tolist() == before.tolist()


def test_empty_performance():
    e = Performance.empty()
    assert len(e) == 0 and e.end_sec == 0
    assert len(e.apply_sustain()) == 0 and len(e.transpose(3)[0]) == 0
    assert np.asarray(e.pedal_value_at([1.0])).tolist() == [0]


def test_time_map_exact_values():
    from espressivo.core import TimeMap

    # a chord at beat 0 (played at 0.00 and 0.02), a note at beat 1, one at beat 2 played before beat 1's
    tm = TimeMap.of(np.array([0.0, 0.0, 1.0, 2.00001]), np.array([0.0, 0.02, 0.6, 0.5]))
    assert tm.position.tolist() == [0.0, 1.0, 2.0] and tm.count.tolist() == [2, 1, 1]
    assert np.allclose(tm.seconds, [0.01, 0.6, 0.6])  # the late point raised to a running maximum
    assert tm.group.tolist() == [0, 0, 1, 2]
    assert np.allclose(tm(np.array([0.5, 3.0])), [0.305, 0.6]) and np.allclose(tm.slope(), [0.59, 0.0])
    raw = TimeMap.of(np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.6, 0.5]), monotone=False)
    assert np.allclose(raw.seconds, [0.0, 0.6, 0.5])
