"""``espressivo demo``: the main job on the bundled etude."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from espressivo.cli.app import app
from espressivo.cli.common import (
    _load_renderer,
    _print,
    _steering_dimension,
    performance_summary,
)
from espressivo.io import read_alignment, read_midi, read_score
from espressivo.render.dispatch import DEFAULT_RENDERER


@app.command("demo")
def demo(out: Path = Path("out")) -> None:
    """Run the main job on the bundled example: load the etude's score and a human-like performance of it
    (summary, WAV, piano roll with tempo and velocity curves), then render the score with the shipped
    renderer (MIDI, editable tempo-mapped MIDI, WAV, PNG); steer cvrnn-small; compare the performances'
    embeddings.

    Args:
        out: folder for the results
    """
    from espressivo.audio import synthesize, wav_stats
    from espressivo.viz import plot_pair

    examples = resources.files("espressivo") / "examples"
    with resources.as_file(examples) as folder:
        score = read_score(folder / "etude.musicxml")
        perf = read_midi(folder / "etude_performance.mid")
        alignment = read_alignment(folder / "etude_alignment.tsv.gz")
    print(f"score: {score.title} ({len(score)} notes, {len(score.measures)} measures)")
    _print(performance_summary(perf), False)
    print(f"alignment: {alignment}")
    out.mkdir(parents=True, exist_ok=True)
    wav = synthesize(perf, out / "etude_performance.wav")
    stats = wav_stats(wav)
    png = plot_pair(score, perf, alignment, out / "etude_performance.png")
    print(f"wrote {wav} ({stats['duration_sec']:.1f} s, RMS {stats['rms_dbfs']:.1f} dBFS) and {png}")
    # the main job: render the score with the shipped renderer, as MIDI, editable MIDI, audio and curves
    from espressivo.core import Alignment
    from espressivo.io import write_midi
    from espressivo.render import RenderOptions, render, write_tempo_mapped

    pretrained = _load_renderer(DEFAULT_RENDERER)
    rendered = render(pretrained, score, RenderOptions.of(seed=0))[0].performance
    write_midi(rendered, out / "etude_rendered.mid")
    write_tempo_mapped(score, rendered, out / "etude_rendered_editable.mid")
    wav = synthesize(rendered, out / "etude_rendered.wav")
    aligned = Alignment.from_pairs(score.notes["id"][rendered.notes["id"]], rendered.notes["id"])
    png = plot_pair(score, rendered, aligned, out / "etude_rendered.png", title=f"{DEFAULT_RENDERER}, seed 0")
    print(
        f"rendered the score with {DEFAULT_RENDERER}: {out / 'etude_rendered.mid'} ({len(rendered)} notes, "
        f"{rendered.end_sec:.1f} s), {out / 'etude_rendered_editable.mid'}, {wav}, {png}"
    )
    from espressivo.models.checkpoint import shipped_models

    performances = {"the human performance": perf, DEFAULT_RENDERER: rendered}
    if {"aria-small", "transformer-small"} & set(shipped_models()):  # the pianist's first 8 s, continued for 12 s
        from espressivo.generate import SamplingConfig, generate_performances
        from espressivo.models.checkpoint import default_model_name, load_pretrained
        from espressivo.viz import plot_performance

        name = default_model_name()
        head = perf.slice(0, 8.0, clip=False)
        continued = generate_performances(load_pretrained(name), SamplingConfig(temperature=1.0),
                                          prompt_performance=head, prompt_cut_sec=8.0, seconds=12.0)[0]  # fmt: skip
        write_midi(continued, out / "etude_continued.mid")
        wav = synthesize(continued, out / "etude_continued.wav")
        png = plot_performance(continued, out / "etude_continued.png", title=f"the pianist to 8 s, then {name}")
        print(f"continued the pianist's first 8 s for 12 s with {name}: {out / 'etude_continued.mid'} "
              f"({len(continued)} notes), {wav}, {png}")
    if "cvrnn-small" in shipped_models():  # the interpretation latent: its strongest dimension pushed both ways
        from espressivo.render.cvrnn import render_cvrnn

        cvrnn = _load_renderer("cvrnn-small", ("cvrnn",))
        dim = _steering_dimension(cvrnn)
        lines = []
        for label, value in (("minus2", -2.0), ("plus2", 2.0)):
            shift = np.zeros(cvrnn.model.config.z_dim)
            shift[dim] = value
            perf = render_cvrnn(cvrnn, score, RenderOptions.of(seed=0), shift=shift)[0].performance
            path = out / f"etude_cvrnn_z{dim + 1}_{label}.mid"
            write_midi(perf, path)
            wav = synthesize(perf, path.with_suffix(".wav"))
            velocity = perf.notes["velocity"].mean()
            lines.append(f"{path.name} + .wav ({perf.end_sec:.1f} s, mean velocity {velocity:.0f})")
            performances[f"cvrnn-small z{dim + 1} {value:+.0f}"] = perf
        print(f"rendered with cvrnn-small, z{dim + 1} at -2 and +2 prior sigmas: " + "; ".join(lines))
    if "embed-small" in shipped_models():  # performance embeddings: how alike the performances are
        from espressivo.embed.files import FileEmbedder

        vectors = FileEmbedder.load("embed-small").embed(list(performances.values()))
        cosines = vectors[1:] @ vectors[0]
        alike = ", ".join(f"{name} {cos:.3f}" for name, cos in zip(list(performances)[1:], cosines, strict=True))
        print(f"embed-small, cosine similarity to the human performance: {alike}")
