"""Regression figures: what each shipped model gives on a small fixed set, recorded in its card when it ships and
checked by the tests, so a broken feature order, sampler or tokenizer cannot pass unnoticed.

The set: the bundled etude (score, performance, alignment) and three (n)ASAP validation performances (a Bach
prelude and fugue, a Rachmaninoff prelude; :data:`VALIDATION`).  Per family kind:

* a renderer renders each score at seed 0 (its defaults otherwise): velocity r and tempo-curve r with the pianist;
* a language model: nats per id on each performance (windows of its context);
* an embedder: the cosine similarity of each validation performance's embedding with the etude's.

>>> figures = regression_figures(load_pretrained("phrase-small"), asap_root)   # {piece: {figure: value}}
>>> problems = compare_figures(pretrained.config["regression"], figures)        # [] when they agree
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from espressivo.data.asap import AsapDataset
from espressivo.embed.files import FileEmbedder
from espressivo.evaluate.generation import likelihood
from espressivo.evaluate.metrics import compare, note_view, rendered_view
from espressivo.families import family_of
from espressivo.features import encode_expression
from espressivo.io import read_midi
from espressivo.io.aligned import read_aligned
from espressivo.render import RenderOptions, render

VALIDATION = (
    ("Bach/Prelude/bwv_857", "Bult-ItoS02M"),
    ("Bach/Fugue/bwv_876", "SirajA01M"),
    ("Rachmaninoff/Preludes_op_23/4", "ChenGuang12M"),
)
TOLERANCE = {"velocity_r": 0.03, "tempo_curve_r": 0.03, "nll": 0.01, "cosine": 0.01}  # absolute


def regression_pieces(asap_root: Path | None) -> dict[str, tuple[Path, Path, Path]]:
    """{name: (score, performance, alignment)}: the etude, and the validation pieces where (n)ASAP is found."""
    examples = Path(str(resources.files("espressivo") / "examples"))
    pieces = {"etude": (examples / "etude.musicxml", examples / "etude_performance.mid",
                        examples / "etude_alignment.tsv.gz")}  # fmt: skip
    if asap_root is not None and (Path(asap_root) / "metadata.csv").is_file():
        wanted = {(folder, performer) for folder, performer in VALIDATION}
        for item in AsapDataset(Path(asap_root), quiet=True).performances("validation"):
            if (item.folder, item.performance_path.stem) in wanted:
                pieces[f"{item.folder}/{item.performance_path.stem}"] = (
                    item.score_path, item.performance_path, item.alignment_path,
                )  # fmt: skip
    return pieces


def regression_figures(pretrained, asap_root: Path | None = None, pieces: dict | None = None) -> dict:
    """{piece: {figure: value}} for ``pretrained`` on the regression set (see the module docstring)."""
    pieces = regression_pieces(asap_root) if pieces is None else pieces
    kind = family_of(pretrained).kind
    if kind == "renderer":
        return {name: _renderer(pretrained, *files) for name, files in pieces.items()}

    performances = {name: read_midi(files[1]) for name, files in pieces.items()}
    if kind == "language":
        context = pretrained.context or 1024
        return {name: {"nll": round(float(likelihood(pretrained, [perf], context)["nll_nats_per_token"]), 4)}
                for name, perf in performances.items()}  # fmt: skip

    embedder = FileEmbedder(pretrained.model, pretrained.tokenizer, str(pretrained.path), precision="float32")
    names = list(performances)
    vectors = embedder.embed([performances[name] for name in names])  # unit rows
    return {name: {"cosine": round(float(vectors[k] @ vectors[0]), 4)} for k, name in enumerate(names) if k}


def _renderer(pretrained, score_path: Path, performance_path: Path, alignment_path: Path) -> dict:
    score, performance, alignment = read_aligned(score_path, performance_path, alignment_path)
    human = note_view(score, encode_expression(score, performance, alignment).features)
    rendered = render(pretrained, score, RenderOptions.of(seed=0))[0].performance
    figures = compare(rendered_view(score, rendered), human)
    return {"velocity_r": round(figures["velocity"]["r"], 4), "tempo_curve_r": round(figures["tempo_curve_r"], 4)}


def compare_figures(recorded: dict, measured: dict) -> list[str]:
    """One line per figure that moved beyond its tolerance (pieces measured on one side only are skipped)."""
    problems = []
    for piece, figures in recorded.items():
        for name, value in figures.items():
            now = measured.get(piece, {}).get(name)
            if now is not None and not abs(now - value) <= TOLERANCE[name]:
                problems.append(f"{piece}: {name} {value} when shipped, {now} now")
    return problems
