"""Synthesis (real soundfont, audible pedal) and plots."""

import shutil
import wave

import numpy as np
import pytest

from espressivo import Performance, read_alignment, read_midi, read_score
from espressivo.audio import synthesize, wav_stats
from espressivo.core import SUSTAIN
from espressivo.viz import expression_curves, plot_pair, plot_performance
from tests.conftest import EXAMPLES

needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")


def level_dbfs(path, start, end):
    with wave.open(str(path)) as handle:
        rate = handle.getframerate()
        x = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").reshape(-1, handle.getnchannels()) / 32768
    segment = x[int(start * rate) : int(end * rate)]
    return 20 * np.log10(np.sqrt(np.mean(segment**2)) + 1e-12)


@needs_fluidsynth
def test_example_wav_is_music_of_the_right_length(tmp_path):
    perf = read_midi(EXAMPLES / "etude_performance.mid")
    stats = wav_stats(synthesize(perf, tmp_path / "etude.wav"))
    assert perf.end_sec <= stats["duration_sec"] <= perf.end_sec + 4  # plus the release tail
    assert stats["rms_dbfs"] > -45  # not silence
    assert stats["peak_dbfs"] < 0  # not clipped
    assert level_dbfs(tmp_path / "etude.wav", 0.6, 3.0) > -50  # the first seconds sound


@needs_fluidsynth
def test_sustain_pedal_is_audible(tmp_path):
    note = dict(onset_sec=[0.0], duration_sec=[0.2], pitch=[60], velocity=[80])
    pedal = synthesize(
        Performance.from_arrays(**note, controls=[(0.0, SUSTAIN, 127), (3.0, SUSTAIN, 0)]), tmp_path / "p.wav"
    )
    dry = synthesize(Performance.from_arrays(**note, controls=[(3.0, SUSTAIN, 0)]), tmp_path / "d.wav")
    assert level_dbfs(pedal, 1.0, 2.5) > level_dbfs(dry, 1.0, 2.5) + 20


@needs_fluidsynth
def test_synth_refuses_empty_performance(tmp_path):
    from espressivo import EspressivoError

    with pytest.raises(EspressivoError, match="no notes"):
        synthesize(Performance.empty(), tmp_path / "x.wav")


def test_expression_curves_of_a_steady_hand_built_performance():
    from espressivo.core import Alignment
    from espressivo.core.score import TIME_SIGNATURE_DTYPE, Score, score_note_dtype

    notes = np.zeros(8, score_note_dtype())
    notes["id"] = [f"n{i}" for i in range(8)]
    notes["onset_beat"] = notes["onset_quarter"] = np.arange(8)
    notes["duration_beat"] = notes["duration_quarter"] = 1
    notes["pitch"] = 60
    score = Score(notes, time_signatures=np.array([(0.0, 0.0, 4, 4)], TIME_SIGNATURE_DTYPE))
    perf = Performance.from_arrays(np.arange(8) * 0.5, [0.4] * 8, [60] * 8, np.arange(8) * 10 + 20)
    curves = expression_curves(score, perf, Alignment.from_pairs(notes["id"], np.arange(8)))
    assert np.allclose(curves["tempo_bpm"], 120)  # a beat every half second
    assert curves["velocity"].tolist() == list(range(20, 100, 10))


def test_plots_are_written(tmp_path):
    score = read_score(EXAMPLES / "etude.musicxml")
    perf = read_midi(EXAMPLES / "etude_performance.mid")
    alignment = read_alignment(EXAMPLES / "etude_alignment.tsv.gz")
    for path in (
        plot_performance(perf, tmp_path / "roll.png"),
        plot_pair(score, perf, alignment, tmp_path / "pair.png"),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
