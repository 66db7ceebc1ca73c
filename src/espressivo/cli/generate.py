"""``espressivo generate``, ``continue``, ``infill``: performances from the language models."""

from __future__ import annotations

from pathlib import Path

from espressivo.cli.app import app
from espressivo.cli.common import MAX_TOKENS, _numbered, _refuse_overwriting
from espressivo.errors import EspressivoError
from espressivo.generate.draw import SamplingConfig
from espressivo.io import read_midi

# plain sampling (temperature 1, no truncation): on the test protocol it measured closer to real playing than Aria's
# temperature 0.98 + min-p 0.035 with aria-small (velocity sd 16.6 vs 10.3, real 14.4; notes/s 8.5 vs 19.5, real
# 12.1; pedal presses 26 vs 46 a minute, real 53; IOI JS 0.19 vs 0.21): docs/models.md, aria-small
DEFAULT_SAMPLING = SamplingConfig()
MAX_VARIATIONS = 64


def _checked(threads: int, variations: int) -> int:
    if not 1 <= threads <= 256:
        raise EspressivoError("--threads must lie in 1..256")
    if not 1 <= variations <= MAX_VARIATIONS:
        raise EspressivoError(f"--variations must lie in 1..{MAX_VARIATIONS}")
    return threads


def _outputs(output: Path | None, count: int, inputs: list[Path]) -> list[Path]:
    """The files a command will write (numbered for variations), refused before any work when one of them is an
    input or not a MIDI file."""
    if output is None:
        raise EspressivoError("give the MIDI file to write with -o OUT.mid")
    paths = [_numbered(output, n, count) for n in range(1, count + 1)]
    extras = [p.with_suffix(s) for p in paths for s in (".wav", ".png")]
    _refuse_overwriting(inputs, paths, (".mid", ".midi"))
    _refuse_overwriting(inputs, extras, (".wav", ".png"))
    return paths


def _write(performances, paths: list[Path], wav: bool, plot: bool, report: list[str] | None = None) -> None:
    from espressivo.io import write_midi

    for line in report or []:
        print(f"note: {line}")
    for perf, path in zip(performances, paths, strict=True):
        write_midi(perf, path)
        line = f"wrote {path}: {len(perf)} notes, {perf.end_sec:.1f} s"
        if wav and len(perf):
            from espressivo.audio import synthesize

            line += f", {synthesize(perf, path.with_suffix('.wav'))}"
        if plot and len(perf):
            from espressivo.viz import plot_performance

            line += f", {plot_performance(perf, path.with_suffix('.png'), title=path.name)}"
        print(line)


@app.command("generate", short_flags={"output": "-o"})
def generate(
    output: Path | None = None,
    model: str = "default",
    seconds: float = 30.0,
    tokens: int = 0,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    variations: int = 1,
    threads: int = 1,
    wav: bool = False,
    plot: bool = False,
) -> None:
    """Improvise a piano performance with a language model (the best shipped one by default).

    Args:
        output: MIDI file to write (variations add -1, -2, ...)
        model: shipped model name or checkpoint folder
        seconds: length of music
        tokens: length in tokens instead (0: use --seconds)
        variations: how many performances (sampled side by side)
        threads: torch CPU threads for the token loop (1: fastest one token at a time, and on a busy machine)
        wav: also write a WAV next to each MIDI file
        plot: also write a piano-roll PNG
    """
    from espressivo.generate import generate_performances
    from espressivo.models.checkpoint import load_pretrained

    if not (0 < seconds <= 3600) or not 0 <= tokens <= MAX_TOKENS:
        raise EspressivoError(f"--seconds must lie in (0, 3600] and --tokens in 0..{MAX_TOKENS}")
    threads = _checked(threads, variations)
    paths = _outputs(output, variations, [])
    pretrained = load_pretrained(model)
    report: list[str] = []
    perfs = generate_performances(
        pretrained, sampling, seconds=0 if tokens else seconds, max_tokens=tokens, variations=variations,
        num_threads=threads, report=report,
    )  # fmt: skip
    _write(perfs, paths, wav, plot, report)


def _prompt(path: Path, seconds: float):
    """The first ``seconds`` of a performance as played (notes struck before the cut keep their length)."""
    perf = read_midi(path)
    if len(perf) == 0:
        raise EspressivoError(f"{path}: the prompt has no notes")
    head = perf.slice(0, seconds, clip=False)
    if len(head) == 0:
        first = float(perf.notes["onset_sec"].min())
        raise EspressivoError(f"{path}: no note starts in the first {seconds:g} s (the first is at {first:.1f} s)")
    return head


@app.command("continue", short_flags={"output": "-o"})
def continue_(
    prompt: Path,
    output: Path | None = None,
    prompt_seconds: float = 10.0,
    seconds: float = 30.0,
    model: str = "default",
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    variations: int = 1,
    threads: int = 1,
    wav: bool = False,
    plot: bool = False,
) -> None:
    """Continue a performance: prime the model with the first --prompt-seconds of PROMPT.mid and let it play on
    for --seconds more (the output holds the prompt, as played, and the continuation).

    Args:
        prompt: performance MIDI file to start from
        output: MIDI file to write (variations add -1, -2, ...)
        prompt_seconds: how much of the prompt to keep (a prompt longer than the model's context keeps its newest
            part in view)
        seconds: how much music to add
        model: shipped model name or checkpoint folder
        variations: how many continuations (sampled side by side)
        threads: torch CPU threads for the token loop (1: fastest one token at a time, and on a busy machine)
        wav: also write WAV files
        plot: also write piano-roll PNGs
    """
    from espressivo.generate import generate_performances
    from espressivo.models.checkpoint import load_pretrained

    if not (0 < prompt_seconds <= 3600 and 0 < seconds <= 3600):
        raise EspressivoError("--prompt-seconds and --seconds must lie in (0, 3600]")
    threads = _checked(threads, variations)
    paths = _outputs(output, variations, [prompt])
    head = _prompt(prompt, prompt_seconds)
    pretrained = load_pretrained(model)
    report: list[str] = []
    perfs = generate_performances(pretrained, sampling, prompt_performance=head, prompt_cut_sec=prompt_seconds,
                                  seconds=seconds, variations=variations, num_threads=threads,
                                  report=report)  # fmt: skip
    _write(perfs, paths, wav, plot, report)


@app.command("infill", short_flags={"output": "-o", "start": "--from", "end": "--to"})
def infill(
    performance: Path,
    output: Path | None = None,
    start: float = -1.0,
    end: float = -1.0,
    model: str = "aria-small",
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    variations: int = 1,
    threads: int = 1,
    wav: bool = False,
    plot: bool = False,
) -> None:
    """Fill a gap: play seconds --from .. --to of PERFORMANCE.mid again so that they join what comes before and
    after (the notes outside the gap are kept exactly).

    Args:
        performance: performance MIDI file
        output: MIDI file to write (variations add -1, -2, ...)
        start: where the gap starts, in seconds (--from)
        end: where it ends, in seconds (--to; at most 12 s after --from)
        model: an event model (aria tokens): a shipped name or a checkpoint folder
        variations: how many takes of the gap (sampled side by side)
        threads: torch CPU threads for the token loop
        wav: also write WAV files
        plot: also write piano-roll PNGs
    """
    from espressivo.generate.infill import check_gap
    from espressivo.generate.infill import infill as fill
    from espressivo.models.checkpoint import load_pretrained

    if start < 0 or end < 0:
        raise EspressivoError("give the gap with --from SECONDS --to SECONDS")
    threads = _checked(threads, variations)
    paths = _outputs(output, variations, [performance])
    perf = read_midi(performance)
    check_gap(perf, start, end)
    pretrained = load_pretrained(model)
    takes = fill(pretrained, sampling, perf, start, end, variations=variations, num_threads=threads)
    _write(takes, paths, wav, plot)
