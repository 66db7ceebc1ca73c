"""``espressivo render``, ``interpret``: score -> performance with any renderer family; a CVRNN's interpretation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from espressivo.cli.app import app
from espressivo.cli.common import (
    _load_renderer,
    _numbered,
    _refuse_overwriting,
)
from espressivo.errors import EspressivoError
from espressivo.io import read_score
from espressivo.io.aligned import read_aligned
from espressivo.io.files import atomic_write_bytes
from espressivo.render.dynamics import DEFAULT_DYNAMICS_DRIFT
from espressivo.render.families import DEFAULT_RENDERER
from espressivo.render.rolls import ROLL_STEP_BEATS
from espressivo.render.timing import DEFAULT_TEMPO_DRIFT, DEFAULT_TEMPO_GUARD, DEFAULT_TEMPO_SMOOTHING


@app.command(
    "render",
    short_flags={"output": "-o"},
    groups={
        "performance": ("model", "seed", "temperature", "expressiveness", "variations", "threads"),
        "tempo and dynamics": ("tempo", "tempo_scale", "dynamics_scale", "repeats"),
        "output": ("wav", "plot", "tempo_mapped"),
        "style (cvrnn-small)": ("interpretation", "reference", "reference_score"),
    },
    expert=("top_p", "tempo_smoothing", "tempo_drift", "dynamics_drift", "chord_spread", "consensus", "tempo_guard",
            "roll_step", "estimate_tempo", "reference_alignment", "reference_notes"),
)  # fmt: skip
def render_command(
    score: Path,
    output: Path | None = None,
    model: str = DEFAULT_RENDERER,
    temperature: float = 1.0,
    top_p: float = 0.95,
    seed: int = 0,
    tempo: float | None = None,
    tempo_scale: float = 1.0,
    dynamics_scale: float = 1.0,
    tempo_smoothing: float = DEFAULT_TEMPO_SMOOTHING,
    tempo_drift: float = DEFAULT_TEMPO_DRIFT,
    dynamics_drift: float = DEFAULT_DYNAMICS_DRIFT,
    chord_spread: float = 1.0,
    consensus: int = 1,
    tempo_guard: float = DEFAULT_TEMPO_GUARD,
    roll_step: float = ROLL_STEP_BEATS,
    estimate_tempo: bool = True,
    expressiveness: float = 1.0,
    threads: int = 0,
    wav: bool = False,
    plot: bool = False,
    tempo_mapped: Path | None = None,
    repeats: bool = True,
    variations: int = 1,
    interpretation: str | None = None,
    reference: Path | None = None,
    reference_score: Path | None = None,
    reference_alignment: Path | None = None,
    reference_notes: int = 64,
) -> None:
    """Render a score as an expressive performance: timing, dynamics, articulation and pedal sampled from
    a renderer trained on human pianists.  Different seeds give different performances.  With a CVRNN
    (--model cvrnn-small) the interpretation can be steered (--interpretation) or taken from a reference.

    Expert options, accepted but not listed here (docs/rendering.md): the note-by-note renderer's sampling and
    shaping (--top-p, --tempo-smoothing, --tempo-drift, --dynamics-drift, --chord-spread, --consensus,
    --tempo-guard), --roll-step, --no-estimate-tempo, and the CVRNN's --reference-alignment and
    --reference-notes.  A renderer refuses, in one line, an option it does not use.

    Args:
        score: MusicXML, .mxl, MEI, kern or MIDI score
        output: performance MIDI to write (required)
        model: a shipped renderer or a checkpoint folder
        temperature: sampling temperature (lower: safer, flatter)
        top_p: nucleus sampling mass
        seed: random seed (same seed, same performance)
        tempo: overall tempo in quarter notes per minute (default: the score's metronome mark; a score
            without one at the tempo estimated from its notes and tempo word, see --estimate-tempo)
        tempo_scale: multiply the tempo (1.1 = 10 % faster)
        dynamics_scale: widen (> 1) or narrow (< 1) the dynamic range around the mean velocity
        tempo_smoothing: smooth the renderer's local tempo over this many score beats (Gaussian sigma;
            0: the sampled timing as it is; not used by a CVRNN, whose tempo is its own output)
        tempo_drift: take out the renderer's departures from the written tempo map that are slower than
            this many beats (0: keep them); its faster rubato stays
        dynamics_drift: hold the renderer's loudness level to what the score's dynamics markings call for,
            taking out its slower departures than this many beats (0: its own level); accents and swells stay
            (not used by a CVRNN)
        chord_spread: scale how far chord notes spread around the chord's onset (0: struck together, 1: as
            sampled; not used by a CVRNN)
        consensus: sample this many performances and play their note-by-note consensus (mean chord onsets,
            median spread, velocity and duration, majority pedal): steadier and closer to pianists note by note,
            less varied between seeds (1: one sample as drawn)
        tempo_guard: while sampling, pull every IOI towards the score's (a log-normal prior of this sigma:
            smaller holds the tempo tighter) so a performance cannot run away from its tempo (0: off; not used
            by a CVRNN)
        roll_step: roll the chords the score marks arpeggiated (MusicXML), this many beats between notes
            (0: play them as sampled; not used by a CVRNN)
        estimate_tempo: a score without a metronome mark is played at the tempo pianists would take, estimated
            from how fast its notes move and its tempo word (--no-estimate-tempo: at 120 quarters per minute,
            as notation programs assume)
        expressiveness: phrase renderer: how much expression, 0 (deadpan) .. 1 (as trained) .. 3 (exaggerated);
            scales its tempo and loudness curves and note deviations
        threads: torch CPU threads (0: chosen by the renderer: one for note-by-note sampling, which is fastest
            and does not spin on a busy machine; torch's default for the phrase renderer's batched windows)
        wav: also write OUTPUT.wav (FluidSynth)
        plot: also write OUTPUT.png: piano roll, tempo and velocity curves against the score
        tempo_mapped: also write this editable MIDI: notes on the score grid, timing in tempo events
        repeats: play the repeats as unfolded (--no-repeats: the score as written, once)
        variations: render this many different performances in one batch (OUT-1.mid, OUT-2.mid, ...)
        interpretation: cvrnn: shift z by these prior sigmas, "d1,d2,d3,d4,d5", or a curve of keyframes
            "0:d1,...;1:d1,..." at fractions of the piece
        reference: cvrnn: a performance MIDI whose style (its first notes' interpretation) the rendering continues
        reference_score: cvrnn: the score the reference performance plays
        reference_alignment: cvrnn: its note alignment (TSV); default: aligned with parangonar
        reference_notes: cvrnn: how many score notes of the reference to encode
    """
    from espressivo.core import Alignment
    from espressivo.io import write_midi
    from espressivo.render import RenderOptions, render, write_tempo_mapped

    if output is None:
        raise EspressivoError("give the MIDI file to write with -o OUT.mid")
    for path in (output, tempo_mapped):
        if path is not None and path.suffix.lower() not in (".mid", ".midi"):
            raise EspressivoError(f"{path}: the output must be a .mid file")
    if tempo_mapped is not None and tempo_mapped.resolve() == output.resolve():
        raise EspressivoError("--tempo-mapped must name another file than -o")
    _refuse_overwriting([score, reference, reference_score, reference_alignment], [output, tempo_mapped],
                        (".mid", ".midi"))  # fmt: skip
    options = RenderOptions(
        temperature,
        top_p,
        seed,
        tempo,
        tempo_scale,
        dynamics_scale,
        tempo_smoothing=tempo_smoothing,
        tempo_drift=tempo_drift,
        dynamics_drift=dynamics_drift,
        chord_spread=chord_spread,
        consensus=consensus,
        tempo_guard=tempo_guard,
        roll_step=roll_step,
        estimate_tempo=estimate_tempo,
        expressiveness=expressiveness,
        threads=threads,
    )
    if not score.is_file():
        raise EspressivoError(f"{score}: no such file")
    if not 1 <= variations <= 16:
        raise EspressivoError("--variations must lie in 1..16")
    the_score = read_score(score, unfold=repeats)
    pretrained = _load_renderer(model)
    from espressivo.render.families import check_controls, family_of

    check_controls(family_of(pretrained), options, model)
    if pretrained.model_type == "phrase" and the_score.marks is None:
        print(f"{score.name}: no performance markings in this score (dynamics, slurs, hairpins, articulation); "
              "rendering from its notes and metre alone", file=sys.stderr)  # fmt: skip
    steering = interpretation is not None or reference is not None or reference_score is not None
    if pretrained.model_type != "cvrnn" and steering:
        raise EspressivoError("--interpretation and --reference need a CVRNN model (--model cvrnn-small)")
    if pretrained.model_type == "cvrnn" and consensus > 1:
        raise EspressivoError("--consensus applies to transformer renderers, not to a CVRNN")
    if (reference is None) != (reference_score is None):
        raise EspressivoError("give --reference and --reference-score together")
    if pretrained.model_type == "cvrnn":
        from espressivo.render.cvrnn import parse_interpretation, reference_state, render_cvrnn

        shift = None
        if interpretation is not None:
            z_dim = pretrained.model.config.z_dim
            shift = parse_interpretation(interpretation, z_dim, the_score.notes["onset_beat"])
        state = None
        if reference is not None:
            ref_score, ref_perf, ref_alignment = read_aligned(reference_score, reference, reference_alignment)
            state = reference_state(pretrained, ref_score, ref_perf, ref_alignment, reference_notes)
        results = render_cvrnn(pretrained, the_score, options, variations=variations, shift=shift,
                               reference_state=state)  # fmt: skip
    else:
        results = render(pretrained, the_score, options, variations=variations)
    for number, result in enumerate(results, start=1):
        perf = result.performance
        path = _numbered(output, number, len(results))
        write_midi(perf, path)
        line = f"wrote {path}: {len(perf)} notes, {perf.end_sec:.1f} s"
        if tempo is None and result.options.tempo is not None:
            line += f" (no metronome mark: played around {result.options.tempo:g} quarters per minute, estimated)"
        if tempo_mapped is not None:
            editable = _numbered(tempo_mapped, number, len(results))
            write_tempo_mapped(the_score, perf, editable)
            line += f", {editable}"
        if wav:
            from espressivo.audio import synthesize

            line += f", {synthesize(perf, path.with_suffix('.wav'))}"
        if plot:
            from espressivo.viz import plot_pair

            alignment = Alignment.from_pairs(the_score.notes["id"][perf.notes["id"]], perf.notes["id"])
            title = f"{score.name}: {Path(str(pretrained.path)).name}, seed {seed}" + (
                f", variation {number}" if len(results) > 1 else ""
            )
            line += f", {plot_pair(the_score, perf, alignment, path.with_suffix('.png'), title=title)}"
        print(line)


@app.command("interpret", short_flags={"output": "-o"})
def interpret_command(
    performance: Path,
    score: Path | None = None,
    output: Path | None = None,
    alignment: Path | None = None,
    model: str = "cvrnn-small",
    plot: Path | None = None,
) -> None:
    """Encode a performance into its CVRNN interpretation sequence: one z vector per score note (the
    inference network's mean), saved as .npy (notes x 5, score order); --plot draws it as the paper's Figure 6.

    Args:
        performance: performance MIDI
        score: the score it plays (MusicXML, .mxl, MEI, kern or MIDI)
        output: .npy file to write (required)
        alignment: note alignment TSV ((n)ASAP / parangonar format); default: aligned with parangonar
        model: a shipped CVRNN or a checkpoint folder
        plot: also write this PNG
    """
    from espressivo.render.cvrnn import interpret

    if score is None or output is None:
        raise EspressivoError("give the score with --score and the .npy to write with -o")
    if output.suffix.lower() != ".npy":
        raise EspressivoError(f"{output}: the output must be a .npy file")
    if plot is not None and plot.suffix.lower() != ".png":
        raise EspressivoError(f"{plot}: the plot must be a .png file")
    pretrained = _load_renderer(model, ("cvrnn",))
    the_score, perf, found = read_aligned(score, performance, alignment)
    z, _ = interpret(pretrained, the_score, perf, found)
    import io as io_module

    buffer = io_module.BytesIO()
    np.save(buffer, z.astype(np.float32))
    atomic_write_bytes(output, buffer.getvalue())
    line = f"wrote {output}: {len(z)} notes x {z.shape[1]} dimensions (mean {[round(float(v), 2) for v in z.mean(0)]})"
    if plot is not None:
        from espressivo.viz.interpretation import plot_interpretation

        title = f"{performance.name}: interpretation sequence ({Path(str(pretrained.path)).name})"
        line += f", {plot_interpretation(the_score.notes['onset_beat'], the_score.notes['pitch'], z, plot, title)}"
    print(line)
