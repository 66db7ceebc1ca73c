"""Commands on performance embeddings: ``embed``, ``similar``, ``classify train``, ``classify predict`` and
``evaluate embed``.  Registered on the main app by :func:`register`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Literal

from espressivo.cli.app import app
from espressivo.errors import EspressivoError

DEFAULT_EMBEDDER = "embed-small"


def _report_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} file(s); first: {skipped[0][0]}: {skipped[0][1]}", file=sys.stderr)


@app.command("embed", short_flags={"output": "-o"})
def embed_command(
    inputs: list[Path],
    output: Path = Path("embeddings.npz"),
    model: str = DEFAULT_EMBEDDER,
    chunk_notes: int = 0,
    max_chunks: int = 0,
    precision: Literal["bfloat16", "float32"] = "bfloat16",
) -> None:
    """Embed performance MIDI files (and every .mid/.midi under the folders given) into one vector per file,
    written with the file names to an .npz index for `espressivo similar`.

    Args:
        inputs: MIDI files and folders
        output: the embeddings file (.npz)
        model: an embedder (shipped name or checkpoint folder); a transformer LM gives mean-pooled states
        chunk_notes: notes per chunk (0: the model's own setting)
        max_chunks: embed at most this many chunks per file, spread over it (0: the whole file)
        precision: bfloat16 autocast (fast) or float32
    """
    from espressivo.embed.files import FileEmbedder, embed_paths

    if chunk_notes < 0 or max_chunks < 0:
        raise EspressivoError("--chunk-notes and --max-chunks must be >= 0")
    from espressivo.cli.common import _refuse_overwriting

    _refuse_overwriting([p for p in inputs if p.is_file()], [output], (".npz",))
    settings = {"max_chunks": max_chunks, "precision": precision} | (
        {"chunk_notes": chunk_notes} if chunk_notes else {}
    )
    embedder = FileEmbedder.load(model, **settings)
    started = time.time()
    index, skipped = embed_paths(embedder, inputs, progress=True)
    index.save(output)
    _report_skipped(skipped)
    seconds = time.time() - started
    print(f"{output}: {len(index.names)} files, {index.vectors.shape[1]} dimensions ({seconds:.1f} s, {embedder.name})")


@app.command("similar", short_flags={"k": "-k"})
def similar_command(query: Path, index: Path = Path("embeddings.npz"), k: int = 10, model: str = "") -> None:
    """List the performances of an embeddings index nearest to QUERY (a MIDI file), with cosine scores.

    Args:
        query: a performance MIDI file
        index: an embeddings file from `espressivo embed`
        k: how many to list
        model: embed the query with this model (default: the one that made the index)
    """
    import os

    from espressivo.embed.files import EmbeddingIndex, FileEmbedder
    from espressivo.io.midi import read_midi

    if k < 1:
        raise EspressivoError("-k must be 1 or more")
    table = EmbeddingIndex.load(index)
    performance = read_midi(query)
    if len(performance) == 0:
        raise EspressivoError(f"{query}: no notes to embed")
    embedder = FileEmbedder.load(model or table.model, chunk_notes=table.chunk_notes)
    vector = embedder.embed([performance])[0]
    same = {n for n in table.names if os.path.realpath(n) == os.path.realpath(query)}  # not itself
    for rank, (name, score) in enumerate(table.nearest(vector, k, exclude=same), start=1):
        print(f"{rank:3d}  {score:.4f}  {name}")


@app.command("classify train", short_flags={"out": "-o"})
def classify_train(
    out: Path = Path("classifier"),
    task: Literal["composer", "period"] | None = None,
    labels: Path | None = None,
    method: Literal["probe", "finetune"] = "probe",
    model: str = DEFAULT_EMBEDDER,
    max_chunks: int = 8,
    steps: int = 900,
    root: Path | None = None,
) -> None:
    """Train a classifier of performances: a linear probe on frozen embeddings, or full fine-tuning of the
    embedder with a class head (the shared training engine).  Labels come from (n)ASAP (--task composer or
    period; train split, validation files for checking) or from a CSV (--labels; columns file,label[,split]).

    Args:
        out: folder for the classifier (a probe folder, or a training run whose best/ is the classifier)
        task: label (n)ASAP performances by composer or by period
        labels: a labels CSV instead: file,label[,split] (files relative to the CSV)
        method: probe (seconds to minutes) or finetune (the whole network; slow on CPU)
        model: the embedder to start from
        max_chunks: probe: chunks embedded per file (0: all)
        steps: finetune: training steps (16 slices each; 900 took 26 min on 2 CPU cores)
        root: the shared data folder holding asap/
    """
    from espressivo.data.performances import labelled_items

    if (task is None) == (labels is None):
        raise EspressivoError("give one of --task (composer, period) or --labels CSV")
    label = task or str(labels)
    if method == "finetune":
        from espressivo.models.checkpoint import resolve
        from espressivo.train.engine import TrainConfig, train

        if steps < 1:
            raise EspressivoError("--steps must be 1 or more")
        try:  # the network it starts from, its head aside (the task sets vocabulary and classes)
            start = json.loads((resolve(model) / "config.json").read_text())["model"]
        except (OSError, ValueError, KeyError) as err:
            raise EspressivoError(f"{model}: cannot read the model to start from ({err})") from None
        body = {k: v for k, v in start.items() if k not in ("vocab_size", "pad_id", "classes")}
        overrides = {
            "model_type": "embedder", "task": "classify", "label": label, "data": "asap", "model_overrides": body,
            "init_from": model, "out": str(out), "max_steps": steps, "batch_size": 16,
            "seq_len": min(1024, int(start.get("max_seq_len", 1024))),
            "lr": 5e-5, "min_lr": 5e-6, "warmup_steps": min(30, steps // 10), "eval_every": max(1, steps // 5),
            "eval_windows": 64, "save_every": max(1, steps // 5), "autocast": "bf16",
        }  # fmt: skip
        if root is not None:
            import os

            os.environ["ESPRESSIVO_DATA"] = str(root)  # where the task's data loader looks for asap/
        body = overrides.pop("model_overrides")
        config = TrainConfig.from_file(None, [f"--{k}={v}" for k, v in overrides.items()])
        config.model_overrides = body
        result = train(config)
        print(json.dumps(result | {"classifier": str(out / "best")}))
        return
    from espressivo.embed.classify import LinearProbe, accuracy, macro_f1
    from espressivo.embed.files import FileEmbedder
    from espressivo.evaluate.embed import embed_items

    items, names, classes = labelled_items(label, "asap", root)
    embedder = FileEmbedder.load(model, max_chunks=max_chunks)
    train_rows = [i for i, item in enumerate(items) if item.split == "train"]
    vectors = embed_items(embedder, [items[i] for i in train_rows])
    probe = LinearProbe.fit(vectors, [names[i] for i in train_rows])
    probe.save(out, embedder=model, chunk_notes=embedder.chunk_notes, max_chunks=max_chunks, task=label,
               train_files=len(train_rows))  # fmt: skip
    summary = {"classifier": str(out), "classes": classes, "train_files": len(train_rows)}
    held = [i for i, item in enumerate(items) if item.split == "validation"]
    if held:
        predicted, _ = probe.predict(embed_items(embedder, [items[i] for i in held]))
        truth = [names[i] for i in held]
        summary |= {"validation_files": len(held), "validation_accuracy": round(accuracy(truth, predicted), 4),
                    "validation_macro_f1": round(macro_f1(truth, predicted), 4)}  # fmt: skip
    print(json.dumps(summary))


@app.command("classify predict")
def classify_predict(inputs: list[Path], classifier: Path = Path("classifier"), json: bool = False) -> None:
    """Classify performance MIDI files (and those under folders) with a classifier from `classify train`:
    one line per file with the predicted class and its probability.

    Args:
        inputs: MIDI files and folders
        classifier: a probe folder, or a fine-tuned embedder checkpoint (a run's best/)
        json: print JSON (every class's probability) instead of lines
    """
    import numpy as np

    from espressivo.embed.classify import LinearProbe, is_probe
    from espressivo.embed.files import FileEmbedder, collect_midi
    from espressivo.io.midi import read_midi

    files = collect_midi(inputs)
    performances, names, skipped = [], [], []
    for path in files:
        try:
            perf = read_midi(path)
        except EspressivoError as err:
            skipped.append((str(path), str(err)))
            continue
        if len(perf) == 0:
            skipped.append((str(path), "no notes"))
            continue
        performances.append(perf)
        names.append(str(path))
    _report_skipped(skipped)
    if not performances:
        raise EspressivoError("no file to classify")
    if is_probe(classifier):
        probe = LinearProbe.load(classifier)
        meta = probe.meta or {}
        embedder = FileEmbedder.load(meta.get("embedder", DEFAULT_EMBEDDER), chunk_notes=meta.get("chunk_notes", 160),
                                     max_chunks=meta.get("max_chunks", 0))  # fmt: skip
        classes, probabilities = probe.classes, probe.probabilities(embedder.embed(performances))
    else:
        embedder = FileEmbedder.load(str(classifier))
        classes = list(embedder.model.config.classes)
        probabilities = embedder.class_probabilities(performances)
    best = np.argmax(probabilities, axis=1)
    if json:
        import json as json_module

        rows = [{"file": n, "label": classes[b], "probabilities": dict(zip(classes, map(float, p), strict=True))}
                for n, b, p in zip(names, best, probabilities, strict=True)]  # fmt: skip
        print(json_module.dumps(rows, indent=2))
        return
    for name, b, p in zip(names, best, probabilities, strict=True):
        print(f"{classes[b]}\t{p[b]:.3f}\t{name}")


@app.command("evaluate embed")
def evaluate_embed(
    model: str = DEFAULT_EMBEDDER,
    baseline: str = "transformer-small",
    max_chunks: int = 8,
    json: Path | None = None,
    markdown: Path | None = None,
    cache: Path | None = None,
    finetuned: list[str] | None = None,
    root: Path | None = None,
) -> None:
    """Evaluate embeddings on the (n)ASAP test split: linear-probe accuracy and macro-F1 for composer and
    period (all labels and 10/25/50/100 per class), and piece retrieval (mAP, recall@5), beside two baselines:
    hand-made statistics, and the network before contrastive training (mean-pooled states).

    Args:
        model: the embedder to evaluate
        baseline: the network before contrastive training ("" to leave it out)
        max_chunks: chunks embedded per file, spread over it (0: all; slow)
        json: write the report here
        markdown: write the tables here
        cache: keep each network's vectors in this folder and reuse them (same model, files and chunking)
        finetuned: fine-tuned classifiers (runs' best/ folders from `classify train --method finetune`) to
            score on the test files of the task each was trained for
        root: the shared data folder holding asap/
    """
    import json as json_module

    from espressivo.data.performances import load_items
    from espressivo.evaluate.embed import evaluate_embedders, load_finetuned, markdown_report
    from espressivo.io.files import atomic_write_bytes

    classifiers = {str(path): load_finetuned(path, max_chunks) for path in finetuned or []}  # fail early
    items, failed = load_items("asap", root)
    _report_skipped(failed)
    report = evaluate_embedders(items, [model, baseline] if baseline else [model], max_chunks, cache, classifiers)
    text = markdown_report(report)
    if json:
        atomic_write_bytes(json, json_module.dumps(report, indent=2).encode())
    if markdown:
        atomic_write_bytes(markdown, text.encode())
    print(text)
