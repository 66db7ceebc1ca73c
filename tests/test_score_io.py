"""Score reading: the bundled etude, small MEI and kern files built inline, and real (n)ASAP scores."""

import numpy as np
import pytest

from espressivo import read_alignment, read_midi, read_score
from tests.conftest import EXAMPLES

MEI = """<?xml version="1.0" encoding="UTF-8"?>
<mei xmlns="http://www.music-encoding.org/ns/mei" meiversion="4.0.0">
 <meiHead><fileDesc><titleStmt><title>tiny</title></titleStmt><pubStmt/></fileDesc></meiHead>
 <music><body><mdiv><score>
  <scoreDef meter.count="3" meter.unit="4" key.sig="1s">
   <staffGrp><staffDef n="1" lines="5" clef.shape="G" clef.line="2"/></staffGrp>
  </scoreDef>
  <section><measure n="1"><staff n="1"><layer n="1">
   <note xml:id="a1" pname="g" oct="4" dur="4"/><note xml:id="a2" pname="b" oct="4" dur="4"/>
   <note xml:id="a3" pname="d" oct="5" dur="4"/>
  </layer></staff></measure></section>
 </score></mdiv></body></music>
</mei>
"""

KERN = """**kern
*M2/4
*k[]
=1
4c
8e
8g
=2
2cc
==
*-
"""


def test_bundled_musicxml():
    score = read_score(EXAMPLES / "etude.musicxml")
    assert score.title == "Espressivo Etude No. 1"
    assert len(score) == 84 and len(score.measures) == 8
    assert score.time_signatures[["beats", "beat_type"]].tolist() == [(4, 4)]
    assert score.key_signatures["fifths"].tolist() == [0]
    assert [m for m in score.tempo_markings["qpm"] if np.isfinite(m)] == [72.0]
    assert score.dynamics["text"].tolist() == ["p", "mf"]
    assert set(score.notes["staff"].tolist()) == {1, 2}
    # written tempo: 32 quarters at 72 per minute
    assert score.to_performance().end_sec == pytest.approx(32 * 60 / 72)


def test_beat_quarter_map_in_compound_time():
    from espressivo.core.score import TIME_SIGNATURE_DTYPE, Score, score_note_dtype

    ts = np.array([(0.0, 0.0, 4, 4), (4.0, 4.0, 6, 8)], TIME_SIGNATURE_DTYPE)
    score = Score(np.zeros(0, score_note_dtype()), time_signatures=ts)
    # in 6/8 an eighth is a beat: 1 quarter = 2 beats
    assert score.beat_from_quarter([0, 2, 4, 5, 7]).tolist() == [0, 2, 4, 6, 10]
    assert score.quarter_from_beat([0, 2, 4, 6, 10]).tolist() == [0, 2, 4, 5, 7]


def test_mei_and_kern(tmp_path):
    (tmp_path / "t.mei").write_text(MEI)
    mei = read_score(tmp_path / "t.mei")
    assert mei.notes["pitch"].tolist() == [67, 71, 74]
    assert mei.notes["onset_quarter"].tolist() == [0, 1, 2]
    assert mei.time_signatures[["beats", "beat_type"]].tolist() == [(3, 4)]
    (tmp_path / "t.krn").write_text(KERN)
    kern = read_score(tmp_path / "t.krn")
    assert kern.notes["pitch"].tolist() == [60, 64, 67, 72]
    assert kern.notes["duration_quarter"].tolist() == [1, 0.5, 0.5, 2]


def test_midi_score(asap_root):
    score = read_score(asap_root / "Bach/Fugue/bwv_846/midi_score.mid")
    assert len(score) > 700
    assert np.all(np.diff(score.notes["onset_quarter"]) >= 0)


@pytest.mark.parametrize("seed", [0])
def test_asap_scores_carry_the_alignment_ids(asap, seed):
    """Unfolded MusicXML scores name every matched note of the alignment files, with the same pitch."""
    rng = np.random.default_rng(seed)
    musicxml = [i for i in asap if i.score_format == "musicxml"]
    picks = [musicxml[k] for k in rng.choice(len(musicxml), 6, replace=False)]
    for item in picks:
        score, alignment = item.load_score(), item.load_alignment()
        perf = item.load_performance()
        present = np.isin(alignment.matches["score_id"], score.notes["id"])
        assert present.mean() >= 0.995, item.name
        assert alignment.pitch_agreement(score, perf) >= 0.99, item.name
        assert score.unfolded


def test_bundled_alignment_is_complete():
    score = read_score(EXAMPLES / "etude.musicxml")
    perf = read_midi(EXAMPLES / "etude_performance.mid")
    alignment = read_alignment(EXAMPLES / "etude_alignment.tsv.gz")
    s_idx, p_idx = alignment.indices(score, perf)
    assert len(s_idx) == len(p_idx) == len(score) == len(perf)
    assert alignment.pitch_agreement(score, perf) == 1.0


def test_deadpan_of_a_pickup_starts_at_zero():
    """A pickup before quarter 0 (as partitura numbers an anacrusis) must not give negative onsets."""
    base = read_score(EXAMPLES / "etude.musicxml")
    notes = base.notes.copy()
    notes["onset_quarter"] -= 1.0
    shifted = type(base)(notes, base.time_signatures, base.key_signatures, base.tempo_markings, base.dynamics)
    deadpan = shifted.to_performance()
    assert deadpan.notes["onset_sec"].min() == 0.0
    np.testing.assert_allclose(deadpan.notes["onset_sec"], base.to_performance().notes["onset_sec"])


def test_grace_sequence_keeps_its_written_order(tmp_path):
    from espressivo.features.slots import render_order

    def note(step, octave, grace=False, chord=False):
        head = ('<grace slash="yes"/>' if grace else "") + ("<chord/>" if chord else "")
        length = "" if grace else "<duration>2</duration>"
        return (f"<note>{head}<pitch><step>{step}</step><octave>{octave}</octave></pitch>{length}<voice>1</voice>"
                f"<type>{'16th' if grace else 'half'}</type></note>")  # fmt: skip

    body = (note("E", 5, True) + note("G", 5, True) + note("C", 5)  # a rising run of two grace notes, then C
            + note("D", 5, True) + note("F", 5, True, chord=True) + note("B", 4))  # a grace chord, then B  # fmt: skip
    path = tmp_path / "graces.musicxml"
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type>
</time></attributes>{body}</measure></part></score-partwise>""")
    for unfold in (False, True):
        notes = read_score(path, unfold=unfold).notes
        # rows: the main note, then the grace notes as written (pitch order would put E, G the other way); the
        # notes of a grace chord from the top
        assert notes["pitch"].tolist() == [72, 76, 79, 71, 77, 74]
        assert notes["is_grace"].tolist() == [False, True, True, False, True, True]
        order = render_order(notes["onset_quarter"], notes["pitch"], notes["is_grace"])
        assert notes["pitch"][order].tolist() == [76, 79, 72, 77, 74, 71]  # as written, then the main note


@pytest.fixture
def partitura_original(monkeypatch):
    """partitura as it comes (espressivo installs its linear steps when it imports it): restorer of the two."""
    from espressivo.io.partitura_linear import _add_point
    from espressivo.io.score import import_partitura

    pt = import_partitura()

    def restore():
        monkeypatch.setattr(pt.utils.music, "note_array_from_note_list",
                            pt.utils.music.note_array_from_note_list.original)  # fmt: skip
        monkeypatch.setattr(pt.score.Part, "_add_point", _add_point.original)

    return pt, restore


def test_the_linear_steps_give_partitura_s_own_note_arrays_and_timelines(partitura_original, asap_root):
    """Grace-note order and the timeline's points, in linear time, equal to partitura's quadratic originals on
    scores with grace notes, grace chords, several staves and repeats."""
    pt, restore = partitura_original
    pieces = ["Chopin/Ballades/3", "Chopin/Etudes_op_10/3", "Liszt/Transcendental_Etudes/4",
              "Mozart/Piano_Sonatas/11-3"]
    paths = [asap_root / piece / "xml_score.mxl" for piece in pieces] + [EXAMPLES / "etude.musicxml"]
    paths = [p for p in paths if p.is_file()]

    def read(path):
        document = pt.load_musicxml(str(path), quiet=True)
        parts = list(document.parts)
        arrays = [p.note_array(include_grace_notes=True, include_pitch_spelling=True, include_staff=True)
                  for p in parts]  # fmt: skip
        points = [[tp.t for tp in p._points] for p in parts]
        links = [all(a.next is b and b.prev is a for a, b in zip(p._points[:-1], p._points[1:], strict=True))
                 for p in parts]  # fmt: skip
        return arrays, points, links

    fast = [read(p) for p in paths]
    restore()
    slow = [read(p) for p in paths]
    graces = 0
    for (fa, fp, fl), (sa, sp, _) in zip(fast, slow, strict=True):
        assert fp == sp and all(fl)
        for a, b in zip(fa, sa, strict=True):
            assert a.dtype == b.dtype
            for name in a.dtype.names:
                assert np.array_equal(a[name], b[name]), name
            graces += int(a["is_grace"].sum())
    assert graces > 20  # the scores do have grace notes to order
