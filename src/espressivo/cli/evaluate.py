"""``espressivo evaluate lm``, ``evaluate render``."""

from __future__ import annotations

import json as json_module
import sys
from pathlib import Path
from typing import Literal

from espressivo.cli.app import app
from espressivo.cli.common import (
    _load_renderer,
    _print,
)
from espressivo.errors import EspressivoError
from espressivo.io import read_midi
from espressivo.io.files import atomic_write_bytes
from espressivo.render.base import Sampling, Shaping, Timing
from espressivo.render.families import DEFAULT_RENDERER


@app.command("evaluate lm")
def evaluate_lm(
    model: str = "default",
    split: Literal["train", "validation", "test"] = "test",
    window: int = 512,
    samples: int = 4,
    sample_seconds: float = 20.0,
    limit: int = 0,
    seed: int = 0,
    json: Path | None = None,
    plot: Path | None = None,
    root: Path | None = None,
) -> None:
    """Evaluate a language model on (n)ASAP: NLL (nats per token) and bits per second of music over the split,
    grammar-error rate of samples, and generated-vs-real feature analyses (pitch-velocity fits, melody lead,
    density and velocity histograms).

    Args:
        model: shipped model name or checkpoint folder
        split: (n)ASAP split to score
        window: tokens per scoring window (each starts without context)
        samples: performances to generate for the grammar and feature analyses
        sample_seconds: length of each sample
        limit: only the first N performances of the split (0: all)
        seed: sampling seed
        json: write the full report here
        plot: write the feature figure (PNG) here
        root: the shared data folder holding asap/
    """
    import warnings

    import torch

    from espressivo.data import AsapDataset
    from espressivo.evaluate import feature_report, window_nll
    from espressivo.evaluate.lm import plot_report
    from espressivo.generate import SamplingConfig, generate_ids
    from espressivo.models.checkpoint import load_pretrained

    if window < 2 or samples < 0 or limit < 0 or not 0 < sample_seconds <= 600:
        raise EspressivoError("need --window >= 2, --samples >= 0, --limit >= 0 and 0 < --sample-seconds <= 600")
    pretrained = load_pretrained(model)
    model_window = getattr(pretrained.model.config, "max_seq_len", window)
    window = min(window, model_window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = AsapDataset(Path(root) / "asap" if root else None, quiet=True).performances(split)
    if limit:
        items = items[:limit]
    real = [read_midi(item.performance_path) for item in items]
    with torch.no_grad():
        report = {"model": str(pretrained.path), "split": split, "performances": len(real)}
        report |= window_nll(pretrained.model, pretrained.tokenizer, real, window=window)
        generated, dropped, produced = [], 0, 0
        if samples:
            config = SamplingConfig(temperature=1.0, top_p=0.95, seed=seed)
            for ids in generate_ids(
                pretrained.model, pretrained.tokenizer, config, seconds=sample_seconds, variations=samples
            ):
                perf, bad = pretrained.tokenizer.decode_checked(ids)
                generated.append(perf)
                dropped, produced = dropped + bad, produced + len(ids)
            report["grammar_error_rate"] = round(dropped / max(produced, 1), 5)
            report["samples"] = {"count": samples, "seconds": sample_seconds, "tokens": produced}
            report |= feature_report(real, generated)
    summary = {k: report[k] for k in ("performances", "tokens_scored", "seconds_of_music")}
    summary |= {k: round(report[k], 4) for k in ("nll_nats_per_token", "bits_per_second")}
    if samples:
        summary["grammar_error_rate"] = report["grammar_error_rate"]
        summary["melody_lead_real"] = report["melody_lead"]["real"]["upper_first_share"]
        summary["melody_lead_generated"] = report["melody_lead"]["generated"]["upper_first_share"]
        summary["js_velocity"] = report["js_distance"]["velocity"]
        summary["js_density"] = report["js_distance"]["density"]
    _print(summary, False)
    if json is not None:
        atomic_write_bytes(json, json_module.dumps(report, indent=1).encode())
    if plot is not None and samples:
        plot_report(report, real, generated, plot)


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
    from espressivo.evaluate.render import (
        RENDER_SETTINGS,
        evaluate_renderers,
        load_pieces,
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
    from espressivo.render.families import check_controls, family_of

    for name, m in models.items():
        check_controls(family_of(m), options, name)
    index = pairs / "pairs.json"
    if not index.is_file() or not any(e["split"] == split for e in json_module.loads(index.read_text())["entries"]):
        print(f"building the {split} pairs in {pairs} ...", file=sys.stderr)
        build_pairs(pairs, root=root, split=split)
    pieces = load_pieces(pairs, split, root, max_pieces)
    with tqdm(total=len(pieces), desc="evaluate", unit="piece", disable=None) as bar:
        report, stats = evaluate_renderers(models, pieces, options, primed=primed, stride=stride,
                                           score_source=score_source, progress=lambda _: bar.update(1))  # fmt: skip
    report |= {"split": split, "score_source": score_source, "models": {n: str(m.path) for n, m in models.items()}}
    report |= {k: options.flat()[k] for k in RENDER_SETTINGS}
    cvrnns = {n: m for n, m in models.items() if m.model_type == "cvrnn"}
    if cvrnns:  # which z dimensions carry information, on this split's windows
        from espressivo.data.cvrnn import CVRNNPairs
        from espressivo.evaluate.cvrnn import kl_per_dimension

        report["kl_per_dimension"] = {}
        for name, m in cvrnns.items():
            windows = list(CVRNNPairs(pairs, split, m.model.config, notes=120).windows())
            report["kl_per_dimension"][name] = kl_per_dimension(m, windows[:: max(1, len(windows) // 200)])
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
