"""``espressivo evaluate lm``, ``evaluate render``."""

from __future__ import annotations

import json as json_module
import sys
from pathlib import Path
from typing import Literal

from espressivo.cli.app import app
from espressivo.cli.common import (
    _load_renderer,
)
from espressivo.cli.generate import DEFAULT_SAMPLING
from espressivo.errors import EspressivoError
from espressivo.generate.draw import SamplingConfig
from espressivo.io import read_midi
from espressivo.io.files import atomic_write_bytes
from espressivo.render.base import Sampling, Shaping, Timing
from espressivo.render.dispatch import DEFAULT_RENDERER


@app.command("evaluate lm")
def evaluate_lm(
    model: str = "default",
    split: Literal["train", "validation", "test"] = "test",
    samples: int = 10,
    sample_seconds: float = 30.0,
    pieces: int = 5,
    seeds: int = 3,
    prompt_seconds: float = 10.0,
    continue_seconds: float = 20.0,
    gap: float = 8.0,
    limit: int = 0,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    threads: int = 1,
    json: Path | None = None,
    markdown: Path | None = None,
    plot: Path | None = None,
    rolls: Path | None = None,
    root: Path | None = None,
) -> None:
    """Evaluate a language model on an (n)ASAP split: likelihood (nats per id, bits per second of music, NLL by
    position in the context) and what it plays beside real music: improvisations, continuations of openings and
    (event models) filled gaps: notes/s, held keys, long notes, note length, pedalling, IOI distribution,
    velocity spread, and how a continuation keeps its prompt's key, register, pace and pedal.

    Args:
        model: shipped model name or checkpoint folder
        split: (n)ASAP split
        samples: unconditional samples (0: none)
        sample_seconds: length of each sample
        pieces: openings to continue (one performance per piece, spread over the composers; 0: none)
        seeds: continuations (and gap fillings) per opening
        prompt_seconds: length of each opening
        continue_seconds: how long each continuation plays
        gap: seconds after the opening filled again (event models; 0: none)
        limit: only the first N performances of the split for the likelihood (0: all)
        threads: torch CPU threads for sampling
        json: write the full report here
        markdown: write the tables here
        plot: write the statistics figure (PNG) here
        rolls: write piano rolls of two continuations beside the pianist's (PNG) here
        root: the shared data folder holding asap/
    """
    import warnings

    from espressivo.data import AsapDataset
    from espressivo.evaluate.generation import likelihood, protocol
    from espressivo.evaluate.reports import lm_markdown
    from espressivo.models.checkpoint import load_pretrained

    counts = (samples, pieces, seeds, limit)
    if min(counts) < 0 or max(samples, pieces * seeds) > 64 or not 1 <= seeds <= 16:
        raise EspressivoError("need 0 <= --samples <= 64, 1 <= --seeds <= 16, --pieces x --seeds <= 64, --limit >= 0")
    if not (0 < sample_seconds <= 600 and 0 < prompt_seconds <= 120 and 0 < continue_seconds <= 600 and 0 <= gap <= 12):
        raise EspressivoError("need 0 < --sample-seconds <= 600, 0 < --prompt-seconds <= 120, "
                              "0 < --continue-seconds <= 600 and 0 <= --gap <= 12")  # fmt: skip
    if not 1 <= threads <= 256:
        raise EspressivoError("--threads must lie in 1..256")
    _refuse_overwriting_model(model, [json, markdown, plot, rolls])
    pretrained = load_pretrained(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = AsapDataset(Path(root) / "asap" if root else None, quiet=True).performances(split)
    real = [read_midi(item.performance_path) for item in items]
    scored = real[:limit] if limit else real
    report = {"model": str(pretrained.path), "split": split, "performances": len(scored),
              "sampling": {k: getattr(sampling, k) for k in ("temperature", "top_k", "top_p", "min_p", "seed")},
              }  # fmt: skip
    report |= likelihood(pretrained, scored, pretrained.context or 512)
    played = protocol(pretrained, items, real, sampling, samples=samples, seconds=sample_seconds, pieces=pieces,
                      seeds=seeds, prompt_seconds=prompt_seconds, continue_seconds=continue_seconds, gap=gap,
                      num_threads=threads)  # fmt: skip
    examples = played.pop("_continued", [])
    played.pop("_improvised", None)
    report |= played
    text = lm_markdown(report)
    print(text)
    if json is not None:
        atomic_write_bytes(json, json_module.dumps(report, indent=1, default=float).encode())
    if markdown is not None:
        atomic_write_bytes(markdown, text.encode())
    if plot is not None and any(k in report for k in ("improvisation", "continuation")):
        from espressivo.viz.generation import plot_statistics

        plot_statistics(report, plot)
    if rolls is not None and examples:
        from espressivo.viz.generation import plot_continuations

        titles = [(f"{item.composer} {item.title}", perf, out) for item, perf, out in examples[:2]]
        plot_continuations(titles, prompt_seconds, prompt_seconds + continue_seconds, rolls)


def _refuse_overwriting_model(model: str, outputs: list[Path | None]) -> None:
    """A report is never written into a checkpoint folder (it would replace the model's own files)."""
    folder = Path(model)
    for out in outputs:
        if out is None:
            continue
        if folder.is_dir() and out.resolve().parent == folder.resolve():
            raise EspressivoError(f"{out}: that is inside the model's checkpoint folder; write reports elsewhere")
        if out.exists() and out.is_dir():
            raise EspressivoError(f"{out}: is a directory")
    for out, suffixes in zip(outputs, ((".json",), (".md",), (".png",), (".png",)), strict=True):
        if out is not None and out.suffix.lower() not in suffixes:
            raise EspressivoError(f"{out}: the output must be a {' or '.join(suffixes)} file")


@app.command("evaluate render")
def evaluate_render(
    model: str = DEFAULT_RENDERER,
    split: Literal["train", "validation", "test"] = "test",
    pairs: Path = Path("data/pairs"),
    root: Path | None = None,
    stride: int = 400,
    primed: bool = True,
    max_pieces: int = 0,
    sampling: Sampling = Sampling(),
    timing: Timing = Timing(),
    shaping: Shaping = Shaping(),
    score_source: Literal["musicxml", "midi"] = "musicxml",
    json: Path | None = None,
    markdown: Path | None = None,
    plot: Path | None = None,
) -> None:
    """Evaluate renderers against human pianists on every piece of a split: distributions (velocity,
    duration, IOI, pedal), per-note Pearson r and MAE via the score alignment, the primed protocol and
    tempo curves; deadpan and human leave-one-out rows for scale.  The renderers are sampled and shaped with
    the options of `espressivo render` (its expert ones included: --top-p, --consensus, --tempo-drift, ...).

    Args:
        model: renderers to compare, joined by commas (shipped names or checkpoint folders)
        split: (n)ASAP split
        pairs: aligned pairs folder (built for the split if missing: espressivo data pairs)
        root: the shared data folder holding asap/
        stride: notes between starting points of the primed protocol
        primed: run the primed protocol (--no-primed skips it)
        max_pieces: only the first N pieces (0: all)
        score_source: what the renderers read: the MusicXML score, or the piece's midi_score.mid (no
            markings; then only distributions and shape figures, since its notes are not the aligned ones)
        json: write the full report here
        markdown: write the tables here
        plot: write a figure here (PNG); the histograms (-hist.png) and one piece's tempo curves (-tempo.png)
            go next to it
    """
    from tqdm import tqdm

    from espressivo.data.pairs import build_pairs
    from espressivo.evaluate.render import evaluate_renderers, load_pieces
    from espressivo.evaluate.reports import (
        RENDER_SETTINGS,
        markdown_table,
        plot_histograms,
        plot_report,
        plot_tempo_curves,
        write_report,
    )
    from espressivo.render import RenderOptions

    names = [m.strip() for m in model.split(",") if m.strip()]
    if not names:
        raise EspressivoError("give at least one renderer with --model")
    if stride < 1 or max_pieces < 0:
        raise EspressivoError("--stride must be >= 1 and --max-pieces >= 0")
    options = RenderOptions(sampling, timing, shaping)
    models = {name: _load_renderer(name) for name in names}
    from espressivo.families import family_of
    from espressivo.render.dispatch import check_controls

    for name, m in models.items():
        check_controls(family_of(m), options, name)
    index = pairs / "pairs.json"
    if not index.is_file() or not any(e["split"] == split for e in json_module.loads(index.read_text())["entries"]):
        print(f"building the {split} pairs in {pairs} ...", file=sys.stderr)
        build_pairs(pairs, root=root, split=split)
    pieces = load_pieces(pairs, split, root, max_pieces)
    with tqdm(total=len(pieces), desc="evaluate", unit="piece", disable=None) as bar:
        report, stats = evaluate_renderers(models, pieces, options, primed=primed, stride=stride,
                                           score_source=score_source, progress=lambda _: bar.update(1),
                                           pairs=pairs, split=split)  # fmt: skip
    report |= {"split": split, "score_source": score_source, "models": {n: str(m.path) for n, m in models.items()}}
    report |= {k: options.flat()[k] for k in RENDER_SETTINGS}
    write_report(report, json)
    table = markdown_table(report)
    if markdown:
        from espressivo.io.files import atomic_write_bytes

        atomic_write_bytes(markdown, table.encode())
    if plot:
        plot_report(report, plot)
        plot_histograms(stats, plot.with_name(plot.stem + "-hist.png"))
        plot_tempo_curves(report, plot.with_name(plot.stem + "-tempo.png"))
    print(table)
