"""The ``espressivo`` command: ``info``, ``synth``, ``plot``, ``data scan``, ``demo``."""

from __future__ import annotations

import json
import json as json_module
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from espressivo.cli.app import App
from espressivo.cli.embed import register as register_embedding_commands
from espressivo.core import SOFT, SOSTENUTO, SUSTAIN, Performance, Score
from espressivo.errors import EspressivoError
from espressivo.io import SCORE_SUFFIXES, read_alignment, read_midi, read_score
from espressivo.render.dynamics import DEFAULT_DYNAMICS_DRIFT
from espressivo.render.rolls import ROLL_STEP_BEATS
from espressivo.render.timing import DEFAULT_TEMPO_DRIFT, DEFAULT_TEMPO_GUARD, DEFAULT_TEMPO_SMOOTHING

app = App(
    "espressivo", "Expressive piano performance: look at, listen to, render, generate, embed and classify performances."
)
NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
KEYS = ["Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#"]


def note_name(pitch: int) -> str:
    return f"{NAMES[int(pitch) % 12]}{int(pitch) // 12 - 1}"


def _is_score(path: Path, as_score: bool) -> bool:
    suffix = path.suffix.lower()
    if suffix not in SCORE_SUFFIXES:
        raise EspressivoError(f"{path}: unknown file type {suffix!r} (MIDI, MusicXML, .mxl, MEI or kern expected)")
    return as_score or suffix not in (".mid", ".midi")


def load_input(path: Path, as_score: bool = False, qpm: float | None = None) -> tuple[Performance, Score | None]:
    """A performance to play or draw: the file itself, or a score played deadpan at its written tempo
    (or at ``qpm`` quarter notes per minute)."""
    if _is_score(path, as_score):
        score = read_score(path)
        return score.to_performance(qpm=qpm), score
    return read_midi(path), None


def performance_summary(perf: Performance) -> dict:
    notes = perf.notes
    summary: dict = {"notes": len(perf), "duration_sec": round(perf.end_sec, 3)}
    if len(perf):
        summary["pitch_range"] = f"{note_name(notes['pitch'].min())}..{note_name(notes['pitch'].max())}"
        summary["mean_velocity"] = round(float(notes["velocity"].mean()), 1)
        summary["velocity_range"] = [int(notes["velocity"].min()), int(notes["velocity"].max())]
        summary["tracks"] = int(np.unique(notes["track"]).size)
    pedals = {}
    for controller, label in ((SUSTAIN, "sustain"), (SOSTENUTO, "sostenuto"), (SOFT, "soft")):
        down, up = perf.pedal_intervals(controller)
        if len(down):
            held = float(np.sum(up - down))
            pedals[label] = {"presses": len(down), "held_percent": round(100 * held / max(perf.end_sec, 1e-9), 1)}
    summary["pedals"] = pedals
    return summary


def score_summary(score: Score) -> dict:
    n = score.notes
    summary: dict = {
        "title": score.title,
        "notes": len(score),
        "measures": len(score.measures),
        "time_signatures": [
            f"{ts['beats']}/{ts['beat_type']} @q{ts['onset_quarter']:g}" for ts in score.time_signatures
        ],
        "key_signatures": [
            f"{KEYS[int(ks['fifths']) + 7] if -7 <= ks['fifths'] <= 7 else ks['fifths']} {ks['mode']}".strip()
            + f" @q{ks['onset_quarter']:g}"
            for ks in score.key_signatures
        ],
        "tempo_markings": [
            (f"q={m['qpm']:g}" if np.isfinite(m["qpm"]) else m["text"]) + f" @q{m['onset_quarter']:g}"
            for m in score.tempo_markings
        ],
        "dynamics": [f"{d['text']} @q{d['onset_quarter']:g}" for d in score.dynamics],
    }
    if len(n):
        summary["pitch_range"] = f"{note_name(n['pitch'].min())}..{note_name(n['pitch'].max())}"
        summary["length_quarters"] = float((n["onset_quarter"] + n["duration_quarter"]).max())
        summary["duration_at_written_tempo_sec"] = round(score.to_performance().end_sec, 2)
        summary["grace_notes"] = int(n["is_grace"].sum())
    return summary


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    for key, value in summary.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) if value else "-"
        elif isinstance(value, dict):
            value = "; ".join(f"{k}: {v}" for k, v in value.items()) if value else "-"
        print(f"{key.replace('_', ' '):>30}: {value}")


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


@app.command("data scan")
def data_scan(
    source: str = "asap",
    root: Path | None = None,
    split: Literal["train", "validation", "test"] | None = None,
    json: bool = False,
) -> None:
    """Read every performance of a corpus (with a progress bar) and report files, notes, hours and problems.

    Args:
        source: asap, supra, or a folder of MIDI files
        root: dataset folder (default: $ESPRESSIVO_DATA/<source> or ../shared/data/<source>)
        split: only this (n)ASAP split
        json: print JSON
    """
    import warnings

    from tqdm import tqdm

    from espressivo.data import AsapDataset, MidiFolder, supra

    if source == "asap":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = AsapDataset(root)
        items, skipped = dataset.performances(split), [f"{row}: {why}" for row, why in dataset.skipped]
        repaired = len(dataset.repaired)
    else:
        if split is not None:
            raise EspressivoError("--split applies to --source asap only")
        folder = supra(root) if source == "supra" else MidiFolder(root or Path(source))
        items, skipped, repaired = folder.items, [], 0
    notes, seconds, failed = 0, 0.0, []
    for item in tqdm(items, desc=f"scanning {source}", unit="file", file=sys.stderr, disable=None):
        try:
            perf = item.load_performance()
        except EspressivoError as err:
            failed.append(str(err))
            continue
        notes += len(perf)
        seconds += perf.end_sec
    summary = {
        "source": source,
        "files": len(items) - len(failed),
        "notes": notes,
        "hours": round(seconds / 3600, 2),
        "skipped_rows": skipped,
        "repaired_rows": repaired,
        "unreadable": failed,
    }
    _print(summary, json)


@app.command("data prepare")
def data_prepare(
    source: str = "asap",
    tokenizer: str = "performance-rnn",
    out: Path | None = None,
    root: Path | None = None,
    workers: int = 2,
    tokenizer_config: str = "",
    json: bool = False,
) -> None:
    """Tokenise a corpus into sharded token files plus an index (split, composer, performer, duration per file),
    in parallel; a re-run skips the finished shards.

    Args:
        source: asap, supra, a folder of MIDI files, or several joined by commas (asap,supra)
        tokenizer: tokenizer name (performance-rnn, note)
        out: output folder (required)
        root: the shared data folder holding asap/ and supra/ (default: $ESPRESSIVO_DATA or ../shared/data)
        workers: processes
        tokenizer_config: tokenizer settings as key=value pairs joined by commas (e.g. sustain=true)
        json: print the summary as JSON
    """
    from espressivo.data.prepare import list_sources, prepare
    from espressivo.tokenizers import from_name

    if out is None:
        raise EspressivoError("give the output folder with --out DIR")
    if not 1 <= workers <= 64:
        raise EspressivoError("--workers must lie in 1..64")
    tok = from_name(tokenizer, **_parse_settings(tokenizer_config))
    index = prepare(list_sources(source, root), tok, out, workers=workers)
    summary = {k: index[k] for k in ("files", "notes", "tokens", "shards", "shards_reused")}
    summary["failed"] = len(index["failed"])
    summary["splits"] = {s: sum(e["split"] == s for e in index["entries"]) for s in ("train", "validation", "test")}
    _print(summary, json)


@app.command("data pairs")
def data_pairs(
    out: Path | None = None,
    root: Path | None = None,
    split: Literal["train", "validation", "test"] | None = None,
    workers: int = 2,
    limit: int = 0,
    json: bool = False,
) -> None:
    """Build aligned score/performance pairs from (n)ASAP for renderers: per score note, score features and
    expression targets (tempo, timing, articulation, velocity, pedal), one file per performance.

    Args:
        out: output folder (required)
        root: the shared data folder holding asap/
        split: only this split
        workers: processes
        limit: only the first N performances (0: all)
        json: print the summary as JSON
    """
    from espressivo.data.pairs import build_pairs

    if out is None:
        raise EspressivoError("give the output folder with --out DIR")
    if not 1 <= workers <= 64 or limit < 0:
        raise EspressivoError("--workers must lie in 1..64 and --limit be >= 0")
    summary = build_pairs(out, root=root, split=split, workers=workers, limit=limit)
    reasons: dict[str, int] = {}
    for entry in summary["dropped_entries"]:
        reason = entry["reason"].split(" 0.")[0] if entry["reason"].startswith("pitch") else entry["reason"]
        reasons[reason] = reasons.get(reason, 0) + 1
    result = {k: summary[k] for k in ("performances", "kept", "dropped")}
    result["notes"] = sum(e.get("notes", 0) for e in summary["entries"])
    result["matched_notes"] = sum(e.get("matched", 0) for e in summary["entries"])
    result["drop_reasons"] = reasons
    _print(result, json)


def _parse_settings(text: str) -> dict:
    settings = {}
    for item in [t for t in text.split(",") if t.strip()]:
        key, sep, value = item.partition("=")
        if not sep:
            raise EspressivoError(f"tokenizer setting {item!r} is not key=value")
        value = value.strip()
        if value.lower() in ("true", "false"):
            settings[key.strip()] = value.lower() == "true"
        else:
            try:
                settings[key.strip()] = int(value)
            except ValueError:
                try:
                    settings[key.strip()] = float(value)
                except ValueError:
                    raise EspressivoError(f"tokenizer setting {key.strip()} needs a number or true/false") from None
    return settings


@app.command("train")
def train_command(config: Path, resume: bool = False, overrides: list[str] | None = None) -> None:
    """Train a model with the shared engine: CONFIG.yaml holds the settings (see espressivo/train/engine.py),
    any --key value after it overrides one (e.g. --max-steps 500 --lr 3e-4); --resume continues OUT/last.

    Args:
        config: YAML file of training settings
        resume: continue the run in its output folder exactly where its last checkpoint left it
    """
    from espressivo.train import TrainConfig, train

    settings = TrainConfig.from_file(config, overrides)
    result = train(settings, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json_module.dumps(result))


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


MAX_TOKENS = 200_000  # about an hour of dense piano at the tokenizers' rates


def _refuse_overwriting(inputs: list[Path | None], outputs: list[Path | None], suffixes: tuple[str, ...]) -> None:
    """An output that is one of the inputs, or with another suffix than the format written, is refused."""
    sources = {p.resolve() for p in inputs if p is not None}
    for out in outputs:
        if out is None:
            continue
        if out.resolve() in sources:
            raise EspressivoError(f"{out}: that is an input; write the result to another file")
        if out.suffix.lower() not in suffixes:
            raise EspressivoError(f"{out}: the output must be a {' or '.join(suffixes)} file")


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
        pretrained, config, seconds=0 if tokens else seconds, max_tokens=tokens, variations=variations
    )
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
    perfs = generate_performances(pretrained, config, prompt_performance=head, seconds=seconds, variations=variations)
    _write_generated(perfs, output, wav, plot)


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
    from espressivo.io.files import atomic_write_bytes
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
    model: str = "renderer-small",
    split: Literal["train", "validation", "test"] = "test",
    pairs: Path = Path("data/pairs"),
    root: Path | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    top_p: float = 0.95,
    stride: int = 400,
    primed: bool = True,
    max_pieces: int = 0,
    tempo_smoothing: float = DEFAULT_TEMPO_SMOOTHING,
    tempo_drift: float = DEFAULT_TEMPO_DRIFT,
    dynamics_drift: float = DEFAULT_DYNAMICS_DRIFT,
    chord_spread: float = 1.0,
    consensus: int = 1,
    tempo_guard: float = DEFAULT_TEMPO_GUARD,
    roll_step: float = ROLL_STEP_BEATS,
    estimate_tempo: bool = True,
    expressiveness: float = 1.0,
    score_source: Literal["musicxml", "midi"] = "musicxml",
    json: Path | None = None,
    markdown: Path | None = None,
    plot: Path | None = None,
) -> None:
    """Evaluate renderers against human pianists on every piece of a split: distributions (velocity,
    duration, IOI, pedal), per-note Pearson r and MAE via the score alignment, the primed protocol and
    tempo curves; deadpan and human leave-one-out rows for scale.

    Args:
        model: renderers to compare, joined by commas (shipped names or checkpoint folders)
        split: (n)ASAP split
        pairs: aligned pairs folder (built for the split if missing: espressivo data pairs)
        root: the shared data folder holding asap/
        seed: sampling seed
        temperature: sampling temperature of the renderers (as espressivo render)
        top_p: nucleus mass of the renderers' sampling
        stride: notes between starting points of the primed protocol
        primed: run the primed protocol (--no-primed skips it)
        max_pieces: only the first N pieces (0: all)
        tempo_smoothing: smooth the renderers' local tempo over this many beats, as `render` does
        tempo_drift: take out the renderers' departures from the written tempo slower than this many beats
        dynamics_drift: hold the renderers' loudness level to the marked dynamics over this many beats, as `render`
        chord_spread: scale the renderers' chord spreads, as `render --chord-spread`
        consensus: each rendering the note-by-note consensus of this many samples, as `render --consensus`
        tempo_guard: the renderers' pull towards the score's tempo while sampling, as `render --tempo-guard`
        roll_step: beats between the notes of rolled chords, as `render --roll-step` (0: chords as sampled)
        estimate_tempo: scores without a metronome mark rendered at the estimated tempo, as `render` (deadpan
            stays at the written tempo)
        expressiveness: the phrase renderer's expressiveness, as `render --expressiveness`
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
    options = RenderOptions(temperature, top_p, seed, tempo_smoothing=tempo_smoothing, tempo_drift=tempo_drift,
                            dynamics_drift=dynamics_drift, chord_spread=chord_spread, consensus=consensus,
                            tempo_guard=tempo_guard, roll_step=roll_step, estimate_tempo=estimate_tempo,
                            expressiveness=expressiveness)  # fmt: skip
    models = {name: _load_renderer(name) for name in names}
    if consensus > 1 and any(m.model_type == "cvrnn" for m in models.values()):
        raise EspressivoError("--consensus applies to transformer renderers, not to a CVRNN")
    index = pairs / "pairs.json"
    if not index.is_file() or not any(e["split"] == split for e in json_module.loads(index.read_text())["entries"]):
        print(f"building the {split} pairs in {pairs} ...", file=sys.stderr)
        build_pairs(pairs, root=root, split=split)
    pieces = load_pieces(pairs, split, root, max_pieces)
    with tqdm(total=len(pieces), desc="evaluate", unit="piece", disable=None) as bar:
        report, stats = evaluate_renderers(models, pieces, options, primed=primed, stride=stride,
                                           score_source=score_source, progress=lambda _: bar.update(1))  # fmt: skip
    report |= {"split": split, "score_source": score_source, "models": {n: str(m.path) for n, m in models.items()}}
    report |= {k: getattr(options, k) for k in RENDER_SETTINGS}
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


def _numbered(path: Path, number: int, count: int) -> Path:
    return path if count == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")


def _load_renderer(model: str, kinds: tuple[str, ...] = ()):
    """A renderer of any family (or of ``kinds`` only), else a one-line refusal."""
    from espressivo.models.checkpoint import load_pretrained
    from espressivo.render.families import family_of

    pretrained = load_pretrained(model)
    family = family_of(pretrained)
    if kinds and family.model_type not in kinds:
        raise EspressivoError(f"{model} is a {pretrained.model_type} model, not a {' or '.join(kinds)}")
    return pretrained


def _steering_dimension(pretrained) -> int:
    """The z dimension whose +-2 sigma shift changed the tempo most, and most consistently, in the model's test
    evaluation (``latent_dimensions`` in its config); 0 when the config does not say."""
    dims = pretrained.config.get("evaluation", {}).get("latent_dimensions") or {}
    scores = {}
    for name, row in dims.items():
        tempo = row.get("tempo_percent", {})
        scores[int(name[1:]) - 1] = abs(tempo.get("mean_change_plus2_vs_minus2", 0.0)) * tempo.get("same_sign_share", 0)
    return max(scores, key=scores.get) if scores else 0


MIN_ALIGNED_SHARE = 0.5  # of the performance's notes, or of the score's, that must align


def _read_alignment_for(score_path: Path, perf_path: Path, alignment: Path | None):
    """Score, performance and their alignment (parangonar's when no file is given)."""
    from espressivo.core.alignment import align

    for path in (score_path, perf_path, alignment):
        if path is not None and not path.is_file():
            raise EspressivoError(f"{path}: no such file")
    the_score = read_score(score_path, unfold=True)
    perf = read_midi(perf_path)
    if len(perf) == 0:
        raise EspressivoError(f"{perf_path}: the performance has no notes")
    if alignment is None:
        found = align(the_score, perf)
    else:  # (n)ASAP aligns to the unfolded score, other tools to the score as written: take what fits
        found = read_alignment(alignment)
        as_written = read_score(score_path, unfold=False)
        if len(found.indices(as_written, perf)[0]) > len(found.indices(the_score, perf)[0]):
            the_score = as_written
    matched = len(found.indices(the_score, perf)[0])
    if matched < 2:
        raise EspressivoError(f"{perf_path}: fewer than two notes align with {score_path.name}")
    if max(matched / len(perf), matched / len(the_score)) < MIN_ALIGNED_SHARE:  # a snippet or an excerpt is fine
        raise EspressivoError(
            f"{perf_path}: only {matched} of its {len(perf)} notes align with the {len(the_score)} notes of "
            f"{score_path.name}; is it a performance of that score?"
        )
    return the_score, perf, found


@app.command(
    "render",
    short_flags={"output": "-o"},
    groups={
        "performance": ("model", "seed", "temperature", "expressiveness", "variations"),
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
    model: str = "renderer-small",
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
            ref_score, ref_perf, ref_alignment = _read_alignment_for(reference_score, reference, reference_alignment)
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
    from espressivo.io.files import atomic_write_bytes
    from espressivo.render.cvrnn import interpret

    if score is None or output is None:
        raise EspressivoError("give the score with --score and the .npy to write with -o")
    if output.suffix.lower() != ".npy":
        raise EspressivoError(f"{output}: the output must be a .npy file")
    if plot is not None and plot.suffix.lower() != ".png":
        raise EspressivoError(f"{plot}: the plot must be a .png file")
    pretrained = _load_renderer(model, ("cvrnn",))
    the_score, perf, found = _read_alignment_for(score, performance, alignment)
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

    pretrained = _load_renderer("renderer-small")
    rendered = render(pretrained, score, RenderOptions(seed=0))[0].performance
    write_midi(rendered, out / "etude_rendered.mid")
    write_tempo_mapped(score, rendered, out / "etude_rendered_editable.mid")
    wav = synthesize(rendered, out / "etude_rendered.wav")
    aligned = Alignment.from_pairs(score.notes["id"][rendered.notes["id"]], rendered.notes["id"])
    png = plot_pair(score, rendered, aligned, out / "etude_rendered.png", title="renderer-small, seed 0")
    print(
        f"rendered the score with renderer-small: {out / 'etude_rendered.mid'} ({len(rendered)} notes, "
        f"{rendered.end_sec:.1f} s), {out / 'etude_rendered_editable.mid'}, {wav}, {png}"
    )
    from espressivo.models.checkpoint import shipped_models

    performances = {"the human performance": perf, "renderer-small": rendered}
    if "cvrnn-small" in shipped_models():  # the interpretation latent: its strongest dimension pushed both ways
        from espressivo.render.cvrnn import render_cvrnn

        cvrnn = _load_renderer("cvrnn-small", ("cvrnn",))
        dim = _steering_dimension(cvrnn)
        lines = []
        for label, value in (("minus2", -2.0), ("plus2", 2.0)):
            shift = np.zeros(cvrnn.model.config.z_dim)
            shift[dim] = value
            perf = render_cvrnn(cvrnn, score, RenderOptions(seed=0), shift=shift)[0].performance
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


register_embedding_commands(app)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
