"""``espressivo render``, ``interpret``: score -> performance with any renderer family; a CVRNN's interpretation."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espressivo.cli.app import app
from espressivo.cli.common import (
    _load_renderer,
    _numbered,
    planned_outputs,
)
from espressivo.errors import EspressivoError
from espressivo.io import read_score
from espressivo.io.aligned import read_aligned
from espressivo.io.files import atomic_write_bytes
from espressivo.render.base import Sampling, Shaping, Timing
from espressivo.render.dispatch import DEFAULT_RENDERER


@dataclass(frozen=True)
class Output:
    """output: what else to write beside the performance MIDI

    Args:
        wav: also write OUTPUT.wav (FluidSynth)
        plot: also write OUTPUT.png: piano roll, tempo and velocity curves against the score
        tempo_mapped: also write this editable MIDI: notes on the score grid, timing in tempo events
    """

    wav: bool = False
    plot: bool = False
    tempo_mapped: Path | None = None


@app.command(
    "render",
    short_flags={"output": "-o"},
    groups={"performance": ("model", "variations", "repeats"), "style (cvrnn-small)": ("interpretation", "reference")},
    expert=("reference_notes",),
)  # fmt: skip
def render_command(
    score: Path,
    output: Path | None = None,
    model: str = DEFAULT_RENDERER,
    variations: int = 1,
    repeats: bool = True,
    sampling: Sampling = Sampling(),
    timing: Timing = Timing(),
    shaping: Shaping = Shaping(),
    also: Output = Output(),
    interpretation: str | None = None,
    reference: list[Path] | None = None,
    reference_notes: int = 64,
) -> None:
    """Render a score as an expressive performance: timing, dynamics, articulation and pedal sampled from
    a renderer trained on human pianists.  Different seeds give different performances.  With a CVRNN
    (--model cvrnn-small) the interpretation can be steered (--interpretation) or taken from a reference.

    Expert options, accepted but not listed here (docs/rendering.md): --threads, --no-estimate-tempo, the
    note-by-note renderer's --top-p, --consensus, --tempo-drift, --tempo-guard, --dynamics-drift,
    --chord-spread and --roll-step, and the CVRNN's --reference-notes.  A renderer refuses, in one line, an
    option it does not use.

    Args:
        score: MusicXML, .mxl, MEI, kern or MIDI score
        output: performance MIDI to write (required)
        model: a shipped renderer or a checkpoint folder
        variations: render this many different performances in one batch (OUT-1.mid, OUT-2.mid, ...)
        repeats: play the repeats as unfolded (--no-repeats: the score as written, once)
        interpretation: cvrnn: shift z by these prior sigmas, "d1,d2,d3,d4,d5", or a curve of keyframes
            "0:d1,...;1:d1,..." at fractions of the piece
        reference: cvrnn: PERFORMANCE.mid SCORE [ALIGNMENT.tsv]: a performance whose style (its first notes'
            interpretation) the rendering continues, the score it plays, and its note alignment (default:
            aligned with parangonar)
        reference_notes: cvrnn: how many score notes of the reference to encode
    """
    from espressivo.core import Alignment
    from espressivo.io import write_midi
    from espressivo.render import RenderOptions, render, write_tempo_mapped

    tempo_mapped = also.tempo_mapped
    if output is None:
        raise EspressivoError("give the MIDI file to write with -o OUT.mid")
    for path in (output, tempo_mapped):
        if path is not None and path.suffix.lower() not in (".mid", ".midi"):
            raise EspressivoError(f"{path}: the output must be a .mid file")
    if tempo_mapped is not None and tempo_mapped.resolve() == output.resolve():
        raise EspressivoError("--tempo-mapped must name another file than -o")
    if reference is not None and len(reference) not in (2, 3):
        raise EspressivoError("--reference takes PERFORMANCE.mid SCORE [ALIGNMENT.tsv]")
    derived = tuple(s for s, on in ((".wav", also.wav), (".png", also.plot)) if on)
    midi = (".mid", ".midi")
    planned_outputs([score, *(reference or [])], [(output, midi), (tempo_mapped, midi)], max(variations, 1), derived)
    options = RenderOptions(sampling, timing, shaping)
    if not score.is_file():
        raise EspressivoError(f"{score}: no such file")
    if not 1 <= variations <= 16:
        raise EspressivoError("--variations must lie in 1..16")
    the_score = read_score(score, unfold=repeats)
    pretrained = _load_renderer(model)
    from espressivo.families import family_of
    from espressivo.render.dispatch import check_controls

    family = family_of(pretrained)
    check_controls(family, options, model)
    if family.markings and the_score.marks is None:
        print(f"{score.name}: no performance markings in this score (dynamics, slurs, hairpins, articulation); "
              "rendering from its notes and metre alone", file=sys.stderr)  # fmt: skip
    shift = state = None
    if family.steering:
        from espressivo.render.cvrnn import parse_interpretation, reference_state

        if interpretation is not None:
            z_dim = pretrained.model.config.z_dim
            shift = parse_interpretation(interpretation, z_dim, the_score.notes["onset_beat"])
        if reference is not None:
            ref_perf, ref_score, ref_alignment = (*reference, None)[:3]
            ref_score, ref_perf, ref_alignment = read_aligned(ref_score, ref_perf, ref_alignment)
            state = reference_state(pretrained, ref_score, ref_perf, ref_alignment, reference_notes)
    elif interpretation is not None or reference is not None:
        raise EspressivoError("--interpretation and --reference need a CVRNN model (--model cvrnn-small)")
    results = render(pretrained, the_score, options, variations=variations, shift=shift, reference_state=state)
    for number, result in enumerate(results, start=1):
        perf = result.performance
        path = _numbered(output, number, len(results))
        write_midi(perf, path)
        line = f"wrote {path}: {len(perf)} notes, {perf.end_sec:.1f} s"
        estimated = result.options.timing.tempo
        if timing.tempo is None and estimated is not None:
            line += f" (no metronome mark: played around {estimated:g} quarters per minute, estimated)"
        if tempo_mapped is not None:
            editable = _numbered(tempo_mapped, number, len(results))
            write_tempo_mapped(the_score, perf, editable)
            line += f", {editable}"
        if also.wav:
            from espressivo.audio import synthesize

            line += f", {synthesize(perf, path.with_suffix('.wav'))}"
        if also.plot:
            from espressivo.viz import plot_pair

            alignment = Alignment.from_pairs(the_score.notes["id"][perf.notes["id"]], perf.notes["id"])
            title = f"{score.name}: {Path(str(pretrained.path)).name}, seed {sampling.seed}" + (
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
