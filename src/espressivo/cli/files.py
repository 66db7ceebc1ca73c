"""``espressivo info``, ``synth``, ``plot``: look at and listen to performances and scores."""

from __future__ import annotations

from pathlib import Path

from espressivo.cli.app import app
from espressivo.cli.common import (
    _is_score,
    _print,
    _refuse_overwriting,
    load_input,
    performance_summary,
    score_summary,
)
from espressivo.errors import EspressivoError
from espressivo.io import read_alignment, read_midi, read_score


@app.command("info")
def info(file: Path, score: bool = False, json: bool = False) -> None:
    """Summarise a performance MIDI file or a score: notes, duration, pitch range, pedals, velocity; for
    scores also measures, time and key signatures, tempo and dynamics markings.

    Args:
        file: a performance MIDI file, or a score (.musicxml, .xml, .mxl, .mei, .krn, or .mid with --score)
        score: read a MIDI file as a score rather than a performance
        json: print JSON
    """
    if _is_score(file, score):
        _print(score_summary(read_score(file)), json)
    else:
        _print(performance_summary(read_midi(file)), json)


@app.command("synth", short_flags={"output": "-o"})
def synth(
    file: Path,
    output: Path | None = None,
    soundfont: Path | None = None,
    sample_rate: int = 44100,
    gain: float = 1.0,
    fold_pedal: bool = False,
    score: bool = False,
    qpm: float | None = None,
) -> None:
    """Render a performance (or a score, played deadpan at its written tempo) to a WAV file with a
    piano soundfont; the sustain pedal is heard.

    Args:
        file: performance MIDI or score
        output: WAV file to write (required)
        soundfont: .sf2/.sf3 file (default: $ESPRESSIVO_SOUNDFONT or the system FluidR3_GM)
        sample_rate: samples per second
        gain: FluidSynth master gain (0..5)
        fold_pedal: fold the sustain pedal into note durations before synthesis
        score: read a MIDI file as a score
        qpm: tempo for a score, in quarter notes per minute (default: its tempo marking, else 120)
    """
    from espressivo.audio import synthesize, wav_stats

    if output is None:
        raise EspressivoError("give the WAV file to write with -o OUT.wav")
    _refuse_overwriting([file, soundfont], [output], (".wav",))
    perf, _ = load_input(file, score, qpm)
    synthesize(perf, output, soundfont=soundfont, sample_rate=sample_rate, gain=gain, fold_pedal=fold_pedal)
    stats = wav_stats(output)
    level = f"RMS {stats['rms_dbfs']:.1f} dBFS, peak {stats['peak_dbfs']:.1f} dBFS"
    print(f"wrote {output}: {stats['duration_sec']:.1f} s, {level}")


@app.command("plot", short_flags={"output": "-o"})
def plot(
    file: Path,
    output: Path | None = None,
    with_score: Path | None = None,
    alignment: Path | None = None,
    score: bool = False,
    title: str = "",
) -> None:
    """Draw a piano roll coloured by velocity with a pedal lane; given a score and an alignment for a
    performance, also its tempo curve (beats/min over score time) and velocity curve.

    Args:
        file: performance MIDI or score
        output: PNG file to write (required)
        with_score: the score the performance plays (needs --alignment)
        alignment: (n)ASAP note_alignment.tsv[.gz] between --with-score and FILE
        score: read a MIDI FILE as a score
        title: figure title
    """
    from espressivo.viz import plot_pair, plot_performance

    if output is None:
        raise EspressivoError("give the PNG file to write with -o OUT.png")
    if (with_score is None) != (alignment is None):
        raise EspressivoError("--with-score and --alignment go together")
    perf, _ = load_input(file, score)
    if with_score is not None and alignment is not None:
        unfold = with_score.suffix.lower() in (".mxl", ".musicxml", ".xml")
        the_score = read_score(with_score, unfold=unfold)
        aligned = read_alignment(alignment)
        if len(aligned.indices(the_score, perf)[0]) == 0 and unfold:
            the_score = read_score(with_score)
        plot_pair(the_score, perf, aligned, output, title=title)
    else:
        plot_performance(perf, output, title=title or file.name)
    print(f"wrote {output}")
