"""Performance MIDI I/O: exact round trips, tempo maps, multi-track merging, partitura-compatible ids."""

import mido
import numpy as np
import pytest

from espressivo import Performance, read_midi, write_midi
from espressivo.core import SOFT, SOSTENUTO, SUSTAIN
from espressivo.io.midi import midi_bytes, parse_midi


def hand_built() -> Performance:
    return Performance.from_arrays(
        onset_sec=[0.0, 0.0, 0.25, 0.5003, 1.0, 1.0, 3.7771],
        duration_sec=[0.5, 2.0, 0.2501, 0.1, 0.0004, 1.2, 0.333],
        pitch=[60, 64, 60, 21, 108, 67, 72],
        velocity=[1, 127, 64, 33, 90, 100, 55],
        controls=[(0.1, SUSTAIN, 127), (0.9, SUSTAIN, 0), (1.0, SOFT, 100), (2.0, SOSTENUTO, 70), (3.0, SOFT, 0)],
    )


def test_round_trip_is_exact_within_a_millisecond(tmp_path):
    original = hand_built()
    write_midi(original, tmp_path / "p.mid")
    back = read_midi(tmp_path / "p.mid")
    assert len(back) == len(original)
    assert back.notes["pitch"].tolist() == original.notes["pitch"].tolist()
    assert back.notes["velocity"].tolist() == original.notes["velocity"].tolist()
    assert np.abs(back.notes["onset_sec"] - original.notes["onset_sec"]).max() <= 0.001
    assert np.abs(back.offset_sec - original.offset_sec).max() <= 0.001
    assert back.controls["controller"].tolist() == original.controls["controller"].tolist()
    assert back.controls["value"].tolist() == original.controls["value"].tolist()
    assert np.abs(back.controls["time_sec"] - original.controls["time_sec"]).max() <= 0.001


def test_round_trip_of_a_real_performance(asap_root):
    original = read_midi(asap_root / "Bach/Fugue/bwv_846/Shi05M.mid")
    back = parse_midi(midi_bytes(original))
    assert back.notes["pitch"].tolist() == original.notes["pitch"].tolist()
    assert np.abs(back.notes["onset_sec"] - original.notes["onset_sec"]).max() <= 0.001
    assert np.abs(back.offset_sec - original.offset_sec).max() <= 0.001
    assert len(back.controls) == len(original.controls) > 0


def _mido_file(tracks, tpq=480):
    mid = mido.MidiFile(ticks_per_beat=tpq)
    for events in tracks:
        track = mido.MidiTrack()
        for message in events:
            track.append(message)
        mid.tracks.append(track)
    return mid


def test_tempo_map_and_multitrack_merge(tmp_path):
    # track 0: tempo 120 bpm, after one quarter (0.5 s) 60 bpm; track 1: right hand; track 2: left hand + pedal
    meta = [
        mido.MetaMessage("set_tempo", tempo=500_000, time=0),
        mido.MetaMessage("set_tempo", tempo=1_000_000, time=480),
    ]
    right = [
        mido.Message("note_on", note=72, velocity=80, time=0),
        mido.Message("note_on", note=72, velocity=0, time=960),  # velocity-0 note-on ends the note
        mido.Message("note_on", note=74, velocity=70, time=0),
        mido.Message("note_off", note=74, velocity=0, time=480),
    ]
    left = [
        mido.Message("control_change", control=64, value=127, time=240),
        mido.Message("note_on", note=48, velocity=50, channel=1, time=0),
        mido.Message("control_change", control=7, value=100, time=0),  # not a pedal: ignored
        mido.Message("note_off", note=48, velocity=0, channel=1, time=480),
        mido.Message("control_change", control=64, value=0, time=0),
    ]
    _mido_file([meta, right, left]).save(tmp_path / "m.mid")
    p = read_midi(tmp_path / "m.mid")
    # 72: ticks 0..960 = 0.5 s + 0.5 quarter at 60 bpm (0.5 s) = 1.0 s
    assert p.notes["pitch"].tolist() == [72, 48, 74]
    assert p.notes["onset_sec"].tolist() == pytest.approx([0.0, 0.25, 1.5])
    assert p.offset_sec.tolist() == pytest.approx([1.5, 1.0, 2.5])
    assert p.notes["track"].tolist() == [0, 1, 0]  # symusic numbers the tracks that hold notes
    assert p.controls["time_sec"].tolist() == pytest.approx([0.25, 1.0])
    assert p.controls["controller"].tolist() == [SUSTAIN, SUSTAIN]


def test_ids_follow_partitura_numbering(asap_root):
    """(n)ASAP alignments name performance notes by partitura's ids; ours must be the same notes."""
    from espressivo.io.score import import_partitura

    pt = import_partitura()
    for name in ("Bach/Fugue/bwv_846/Shi05M.mid", "Bach/Italian_concerto/LeeN07.mid"):
        path = asap_root / name
        if not path.exists():
            continue
        ours = read_midi(path, pairing="partitura")
        theirs = pt.load_performance_midi(str(path)).note_array()
        ids = np.char.lstrip(theirs["id"].astype(str), "n").astype(int)
        assert np.array_equal(ours.notes["pitch"][ids], theirs["pitch"])
        assert np.abs(ours.notes["onset_sec"][ids] - theirs["onset_sec"]).max() < 1e-4  # theirs is float32


def test_alignment_file_pitches_and_onsets_match_our_notes(asap):
    """The TSV repeats each performed note's pitch and onset: check them against our reader."""
    import gzip

    for item in asap.performances("test")[:10]:
        perf = item.load_performance()
        with gzip.open(item.alignment_path, "rt") as handle:
            rows = [line.split("\t") for line in handle.read().splitlines()[1:]]
        rows = [r for r in rows if r[1] != "deletion" and len(r) >= 6]
        ids = np.array([int(r[1][1:]) for r in rows])
        assert np.array_equal(perf.notes["pitch"][ids], [int(r[4]) for r in rows])
        assert np.abs(perf.notes["onset_sec"][ids] - np.array([float(r[5]) for r in rows])).max() < 1e-4


def test_fast_note_scanner_agrees_with_mido(asap_midi_files, tmp_path):
    """The byte scanner behind pairing="partitura" must read exactly what mido reads."""
    from espressivo.io.midi import _mido_note_events, _scan_note_events

    rng = np.random.default_rng(3)
    for k in rng.choice(len(asap_midi_files), 25, replace=False):
        data = asap_midi_files[k].read_bytes()
        assert _scan_note_events(data) == _mido_note_events(data)
    # running status, sysex, meta events, program changes, re-struck keys, stray note-offs, two channels
    track = [
        mido.Message("program_change", program=0, time=0),
        mido.Message("sysex", data=[1, 2, 3], time=0),
        mido.Message("note_on", note=60, velocity=50, time=10),
        mido.Message("note_on", note=60, velocity=70, time=10),  # replaces the sounding C4
        mido.MetaMessage("text", text="x", time=0),
        mido.Message("note_on", note=60, velocity=0, time=10),
        mido.Message("note_off", note=60, time=5),  # stray: ignored
        mido.Message("note_on", note=60, velocity=40, channel=3, time=0),
        mido.Message("pitchwheel", pitch=100, time=3),
        mido.Message("note_off", note=60, channel=3, time=2),
    ]
    path = tmp_path / "edge.mid"
    _mido_file([track]).save(path)
    data = path.read_bytes()
    assert _scan_note_events(data) == _mido_note_events(data) == [(20, 30, 60, 70, 0), (35, 40, 60, 40, 0)]
