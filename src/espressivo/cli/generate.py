"""``espressivo generate``, ``continue``: performances from the language models."""

from __future__ import annotations

from pathlib import Path

from espressivo.cli.app import app
from espressivo.cli.common import (
    MAX_TOKENS,
    _refuse_overwriting,
)
from espressivo.errors import EspressivoError
from espressivo.io import read_midi


def _threads(count: int) -> int:
    if not 1 <= count <= 256:
        raise EspressivoError("--threads must lie in 1..256")
    return count


def _write_generated(performances, output: Path, wav: bool, plot: bool) -> None:
    from espressivo.io import write_midi

    if output.suffix.lower() not in (".mid", ".midi"):
        raise EspressivoError(f"{output}: the output must be a .mid file")
    for number, perf in enumerate(performances, start=1):
        path = output if len(performances) == 1 else output.with_name(f"{output.stem}-{number}{output.suffix}")
        write_midi(perf, path)
        line = f"wrote {path}: {len(perf)} notes, {perf.end_sec:.1f} s"
        if wav and len(perf):
            from espressivo.audio import synthesize

            line += f", {synthesize(perf, path.with_suffix('.wav'))}"
        if plot and len(perf):
            from espressivo.viz import plot_performance

            line += f", {plot_performance(perf, path.with_suffix('.png'), title=path.name)}"
        print(line)


def _sampling(temperature, top_k, top_p, min_p, beam, seed):
    from espressivo.generate import SamplingConfig

    return SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, beam_size=beam, seed=seed)


@app.command("generate", short_flags={"output": "-o"})
def generate(
    output: Path | None = None,
    model: str = "default",
    seconds: float = 30.0,
    tokens: int = 0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.95,
    min_p: float = 0.0,
    beam: int = 1,
    seed: int = 0,
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
        temperature: sampling temperature
        top_k: keep the k most likely events (0: all)
        top_p: nucleus sampling mass
        min_p: drop events below this share of the most likely one
        beam: beam search width (1: sampling)
        seed: random seed
        variations: how many performances
        threads: torch CPU threads for the token loop (1: fastest one token at a time, and on a busy machine)
        wav: also write a WAV next to each MIDI file
        plot: also write a piano-roll PNG
    """
    from espressivo.generate import generate_performances
    from espressivo.models.checkpoint import load_pretrained

    if output is None:
        raise EspressivoError("give the MIDI file to write with -o OUT.mid")
    if not (0 < seconds <= 3600) or not 0 <= tokens <= MAX_TOKENS:
        raise EspressivoError(f"--seconds must lie in (0, 3600] and --tokens in 0..{MAX_TOKENS}")
    config = _sampling(temperature, top_k, top_p, min_p, beam, seed)
    pretrained = load_pretrained(model)
    perfs = generate_performances(
        pretrained, config, seconds=0 if tokens else seconds, max_tokens=tokens, variations=variations,
        num_threads=_threads(threads),
    )  # fmt: skip
    _write_generated(perfs, output, wav, plot)


@app.command("continue", short_flags={"output": "-o"})
def continue_(
    prompt: Path,
    output: Path | None = None,
    prompt_seconds: float = 10.0,
    seconds: float = 30.0,
    model: str = "default",
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.95,
    min_p: float = 0.0,
    beam: int = 1,
    seed: int = 0,
    variations: int = 1,
    threads: int = 1,
    wav: bool = False,
    plot: bool = False,
) -> None:
    """Continue a performance: prime the model with the first --prompt-seconds of PROMPT.mid and let it play on
    for --seconds more (the output holds the prompt and the continuation).

    Args:
        prompt: performance MIDI file to start from
        output: MIDI file to write
        prompt_seconds: how much of the prompt to keep
        seconds: how much music to add
        model: shipped model name or checkpoint folder
        temperature: sampling temperature
        top_k: keep the k most likely events (0: all)
        top_p: nucleus sampling mass
        min_p: drop events below this share of the most likely one
        beam: beam search width (1: sampling)
        seed: random seed
        variations: how many continuations
        threads: torch CPU threads for the token loop (1: fastest one token at a time, and on a busy machine)
        wav: also write WAV files
        plot: also write piano-roll PNGs
    """
    from espressivo.generate import generate_performances
    from espressivo.models.checkpoint import load_pretrained

    if output is None:
        raise EspressivoError("give the MIDI file to write with -o OUT.mid")
    _refuse_overwriting([prompt], [output], (".mid", ".midi"))
    if not (0 < prompt_seconds <= 3600 and 0 < seconds <= 3600):
        raise EspressivoError("--prompt-seconds and --seconds must lie in (0, 3600]")
    config = _sampling(temperature, top_k, top_p, min_p, beam, seed)
    pretrained = load_pretrained(model)
    head = read_midi(prompt).slice(0, prompt_seconds)
    perfs = generate_performances(pretrained, config, prompt_performance=head, seconds=seconds, variations=variations,
                                  num_threads=_threads(threads))  # fmt: skip
    _write_generated(perfs, output, wav, plot)
