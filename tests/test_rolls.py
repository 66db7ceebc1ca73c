"""Rolled chords: arpeggio marks read from MusicXML, the chords found, and rolled in a rendering."""

import numpy as np
import pytest

from espressivo import read_score
from espressivo.core import Performance, Score
from espressivo.core.score import score_note_dtype
from espressivo.errors import EspressivoError
from espressivo.render import RenderOptions
from espressivo.render.rolls import MAX_STEP_SEC, roll_chords, roll_groups


def musicxml(notes: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type>
</time><staves>2</staves></attributes>{notes}</measure></part></score-partwise>"""


def note(step: str, octave: int, *, chord=False, arpeggio: str | None = None, ident: str | None = None, staff=1):
    mark = "" if arpeggio is None else f"<notations><arpeggiate{arpeggio}/></notations>"
    return (f"<note{'' if ident is None else f' id={ident!r}'}>{'<chord/>' if chord else ''}<pitch><step>{step}</step>"
            f"<octave>{octave}</octave></pitch><duration>2</duration><voice>1</voice><type>half</type>"
            f"<staff>{staff}</staff>{mark}</note>")  # fmt: skip


def test_arpeggio_marks_are_read_with_their_direction(tmp_path):
    body = (note("C", 4, arpeggio="", ident="a") + note("E", 4, chord=True, arpeggio="")  # the second has no id
            + note("G", 4, chord=True, arpeggio="", ident="c")
            + note("D", 4, arpeggio=' direction="down"', ident="d")
            + note("A", 4, chord=True, arpeggio=' direction="down"', ident="e")
            + note("F", 4, chord=True, ident="f"))  # fmt: skip
    path = tmp_path / "rolled.musicxml"
    path.write_text(musicxml(body))
    score = read_score(path)
    by_pitch = dict(zip(score.notes["pitch"].tolist(), score.notes["arpeggio"].tolist(), strict=True))
    assert by_pitch == {60: 1, 64: 1, 67: 1, 62: -1, 69: -1, 65: 0}
    unfolded = read_score(path, unfold=True)
    assert sorted(unfolded.notes["arpeggio"].tolist()) == sorted(by_pitch.values())


def test_malformed_musicxml_with_arpeggios_is_rejected_cleanly(tmp_path):
    path = tmp_path / "broken.musicxml"
    path.write_text(musicxml(note("C", 4, arpeggio="", ident="a"))[:-40])  # cut off
    with pytest.raises(EspressivoError, match="cannot read"):
        read_score(path)


def test_bundled_score_has_no_arpeggios():
    from tests.conftest import EXAMPLES

    assert not read_score(EXAMPLES / "etude.musicxml").notes["arpeggio"].any()


def chord_score(rows) -> Score:
    """rows: (onset_quarter, pitch, staff, arpeggio, is_grace)."""
    notes = np.zeros(len(rows), score_note_dtype())
    for k, (onset, pitch, staff, arpeggio, grace) in enumerate(rows):
        notes[k] = (f"n{k}", onset, 1.0, onset, 1.0, pitch, 1, staff, 0, grace, arpeggio)
    return Score(notes)


ROWS = [
    (0.0, 48, 2, 1, False), (0.0, 55, 2, 1, False), (0.0, 64, 1, 1, False),  # marked, both hands: one roll
    (1.0, 40, 2, 0, False), (1.0, 59, 2, 0, False), (1.0, 72, 1, 0, False),  # left hand spans 19: rolled
    (2.0, 48, 2, 0, False), (2.0, 55, 2, 0, False), (2.0, 76, 1, 0, False),  # spans 7 in a hand: not rolled
    (3.0, 62, 1, -1, False), (3.0, 67, 1, -1, False), (3.0, 60, 1, 0, True),  # marked downwards; a grace note
]  # fmt: skip


def test_roll_groups_exact():
    group, direction = roll_groups(chord_score(ROWS).notes, wide_span=17)
    assert group.tolist() == [0, 0, 0, 2, 2, -1, -1, -1, -1, 1, 1, -1]
    assert direction.tolist() == [1] * 9 + [-1, -1, 1]
    assert (roll_groups(chord_score(ROWS).notes, marked=False, wide_span=0)[0] == -1).all()


def test_roll_chords_places_notes_in_order_around_the_chord_and_keeps_releases():
    score = chord_score(ROWS)
    onset = np.repeat([1.0, 2.0, 3.0, 4.0], 3) + np.array([0, 0.002, 0.004] * 4)  # a beat a second (sorted)
    perf = Performance.from_arrays(onset, np.full(12, 0.8), score.notes["pitch"], 64)
    notes = perf.notes.copy()
    notes["id"] = np.arange(12)
    rolled = roll_chords(Performance(notes, perf.controls), score, step_beats=0.05, wide_span=17).notes
    step = 0.05  # 0.05 beats of a 1-second beat
    mean = onset[:3].mean()
    assert np.allclose(rolled["onset_sec"][:3], mean + np.array([-1, 0, 1]) * step)  # upwards, centred
    assert np.allclose(rolled["onset_sec"][3:5], onset[3:5].mean() + np.array([-0.5, 0.5]) * step)
    assert np.allclose(rolled["onset_sec"][9:11], onset[9:11].mean() + np.array([0.5, -0.5]) * step)  # downwards
    assert np.allclose(rolled["onset_sec"][5:9], onset[5:9]) and rolled["onset_sec"][11] == onset[11]
    assert np.allclose(rolled["onset_sec"] + rolled["duration_sec"], onset + 0.8)  # releases kept
    assert np.array_equal(rolled["pitch"], perf.notes["pitch"])
    wide = roll_chords(Performance(notes, perf.controls), score, step_beats=1.0, wide_span=17).notes  # capped
    assert np.allclose(np.diff(wide["onset_sec"][:3]), MAX_STEP_SEC)
    early = notes.copy()
    early["onset_sec"][:3] = 0.0
    start = roll_chords(Performance(early, perf.controls), score, 0.05).notes["onset_sec"][:3]
    assert start[0] == 0.0 and np.allclose(np.diff(start), 0.05 * 2.002)  # begins at 0; the first beat lasts 2 s
    unchanged = Performance(notes, perf.controls)
    assert roll_chords(unchanged, score, step_beats=0.0) is unchanged


def test_renderer_rolls_marked_chords(tmp_path):
    from espressivo.models.checkpoint import load_pretrained
    from espressivo.render import render

    body = note("C", 3, arpeggio="", ident="a") + "".join(
        note(s, o, chord=True, arpeggio="", ident=f"x{k}") for k, (s, o) in enumerate([("G", 3), ("E", 4), ("C", 5)])
    )
    path = tmp_path / "rolled.musicxml"
    path.write_text(musicxml(body))
    score = read_score(path)
    pretrained = load_pretrained("renderer-small")
    perf = render(pretrained, score, RenderOptions.of(seed=1))[0].performance
    by_pitch = perf.notes[np.argsort(perf.notes["pitch"])]
    assert np.all(np.diff(by_pitch["onset_sec"]) > 0.015)  # bottom to top, a step apart
    flat = render(pretrained, score, RenderOptions.of(seed=1, roll_step=0))[0].performance
    assert np.ptp(flat.notes["onset_sec"]) < np.ptp(perf.notes["onset_sec"])


@pytest.mark.parametrize("step", [-0.1, 1.5, float("nan")])
def test_bad_roll_step_is_rejected(step):
    with pytest.raises(EspressivoError):
        RenderOptions.of(roll_step=step)
