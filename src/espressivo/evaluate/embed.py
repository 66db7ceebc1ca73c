"""Evaluating file vectors on (n)ASAP: linear probes for composer and period (accuracy, macro-F1), a
few-label curve, and piece retrieval on the test split — for any representation, so the learned embeddings
stand beside the baselines (hand-made statistics; the network before contrastive training).

>>> vectors = {"embed-small": X1, "statistics": X2}                 # one row per item
>>> report = evaluate_representations(items, vectors, snippets={"embed-small": S1, "statistics": S2})
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from espressivo.core import Performance
from espressivo.data.performances import LABEL_TASKS, chunk_spans, composer_classes, labels_for, note_slice
from espressivo.embed.classify import LinearProbe, accuracy, macro_f1
from espressivo.embed.files import FileEmbedder
from espressivo.embed.stats import performance_statistics
from espressivo.errors import EspressivoError
from espressivo.families import family
from espressivo.io.files import atomic_write_bytes
from espressivo.models.checkpoint import load_pretrained

FEW_LABELS = (10, 25, 50, 100)
DRAWS = 5
RECALL_AT = 5


def probe_scores(
    vectors: np.ndarray, labels: list, train: np.ndarray, test: np.ndarray, weight_decay: float = 1e-2
) -> dict:
    """Fit a probe on the ``train`` rows, score it on the ``test`` rows (boolean masks)."""
    train_rows, test_rows = np.nonzero(train)[0], np.nonzero(test)[0]
    probe = LinearProbe.fit(vectors[train_rows], [labels[i] for i in train_rows], weight_decay)
    predicted, _ = probe.predict(vectors[test_rows])
    truth = [labels[i] for i in test_rows]
    return {"accuracy": accuracy(truth, predicted), "macro_f1": macro_f1(truth, predicted)}


def few_label_rows(labels: list, train: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """A mask of up to ``per_class`` random train rows of each class."""
    chosen = np.zeros(len(labels), bool)
    for c in sorted({labels[i] for i in np.nonzero(train)[0]}):
        rows = [i for i in np.nonzero(train)[0] if labels[i] == c]
        chosen[rng.choice(rows, size=min(per_class, len(rows)), replace=False)] = True
    return chosen


def retrieval(queries: np.ndarray, query_pieces: list, gallery: np.ndarray, gallery_pieces: list, own=None) -> dict:
    """Each query ranks the gallery by cosine similarity (its own file, ``own[q]``, left out); the gallery's
    other performances of the query's piece are the relevant items.  Mean average precision, and recall@5
    out of at most 5 (the share of the top 5 that could be relevant and is: 1.0 is reachable)."""

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    similarity = unit(queries) @ unit(gallery).T
    gallery_pieces = np.asarray(gallery_pieces)
    aps, recalls = [], []
    for q in range(len(queries)):
        keep = np.ones(len(gallery), bool)
        if own is not None:
            keep[own[q]] = False
        candidates = np.nonzero(keep)[0]
        ranked = candidates[np.argsort(-similarity[q, candidates], kind="stable")]
        relevant = gallery_pieces[ranked] == query_pieces[q]
        if not relevant.any():
            continue
        hits = np.cumsum(relevant)
        aps.append(float((hits[relevant] / (np.nonzero(relevant)[0] + 1)).mean()))
        recalls.append(float(relevant[:RECALL_AT].sum() / min(RECALL_AT, relevant.sum())))
    return {"map": float(np.mean(aps)), f"recall_at_{RECALL_AT}": float(np.mean(recalls)), "queries": len(aps)}


def evaluate_representations(
    items, representations: dict[str, np.ndarray], snippets: dict[str, np.ndarray] | None = None,
    standardise: tuple[str, ...] = (),
) -> dict:  # fmt: skip
    """Probes (all labels and the few-label curve) and retrieval for each representation.

    Retrieval: every test performance queries all the other performances of every split (other splits'
    pieces are distractors); with ``snippets`` (name -> one vector per test item, e.g. of one chunk from its
    middle) the snippet queries the same gallery.  Names in ``standardise`` are centred and scaled by their
    train-split statistics first (hand-made features live on unrelated scales); the others are compared as
    they are, as ``espressivo similar`` does."""
    split = np.array([i.split for i in items])
    train, test = split == "train", split == "test"
    composers = composer_classes(items)
    report: dict = {"tasks": {}, "retrieval": {}, "snippet_retrieval": {}, "representations": list(representations)}
    for task in LABEL_TASKS:
        labels = labels_for(items, task, composers)
        known = np.array([lab is not None for lab in labels])
        task_train, task_test = train & known, test & known
        entry = {
            "classes": sorted({labels[i] for i in np.nonzero(task_train)[0]}),
            "train_files": int(task_train.sum()),
            "test_files": int(task_test.sum()),
            "test_classes": sorted({labels[i] for i in np.nonzero(task_test)[0]}),
            "results": {},
        }
        for name, vectors in representations.items():
            result = {"all": probe_scores(vectors, labels, task_train, task_test)}
            for k in FEW_LABELS:
                rng = np.random.default_rng(k)
                draws = [probe_scores(vectors, labels, few_label_rows(labels, task_train, k, rng), task_test)
                         for _ in range(DRAWS)]  # fmt: skip
                result[str(k)] = {m: float(np.mean([d[m] for d in draws])) for m in ("accuracy", "macro_f1")} | {
                    f"{m}_sd": float(np.std([d[m] for d in draws])) for m in ("accuracy", "macro_f1")
                }
            entry["results"][name] = result
        report["tasks"][task] = entry
    pieces = [i.piece for i in items]
    test_rows = np.nonzero(test)[0]
    test_pieces = [pieces[i] for i in test_rows]
    for name, vectors in representations.items():
        shift, scale = (vectors[train].mean(0), vectors[train].std(0) + 1e-8) if name in standardise else (0, 1)
        gallery = (vectors - shift) / scale
        report["retrieval"][name] = retrieval(gallery[test_rows], test_pieces, gallery, pieces, own=test_rows)
        if snippets and name in snippets:
            queries = (snippets[name] - shift) / scale
            report["snippet_retrieval"][name] = retrieval(queries, test_pieces, gallery, pieces, own=test_rows)
    report["test_files"], report["test_pieces"] = int(test.sum()), len(set(test_pieces))
    report["gallery_files"] = len(items)
    return report


def markdown_report(report: dict) -> str:
    names = report["representations"]
    lines = [f"Test split: {report['test_files']} performances of {report['test_pieces']} pieces.", ""]
    for task, entry in report["tasks"].items():
        lines += [
            f"### {task} ({len(entry['classes'])} classes; {entry['train_files']} train / {entry['test_files']} "
            f"test files; test classes: {', '.join(entry['test_classes'])})",
            "",
            "| labelled files per class | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for k in (*map(str, FEW_LABELS), "all"):
            cells = []
            for name in names:
                r = entry["results"][name][k]
                cells.append(f"{r['accuracy']:.3f} / {r['macro_f1']:.3f}")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines += ["", "Cells: accuracy / macro-F1 (few-label rows: mean of 5 draws).", ""]
    for path, r in report.get("finetuned", {}).items():
        lines += [f"Fine-tuned ({path}, {r['task']}, {r['steps']} steps): accuracy {r['accuracy']:.3f}, "
                  f"macro-F1 {r['macro_f1']:.3f} on {r['test_files']} test files.", ""]  # fmt: skip
    lines += [
        f"### piece retrieval ({report['test_files']} test queries, gallery of all {report['gallery_files']} files)",
        "",
        "| representation | mAP (whole file) | recall@5 (whole file) | mAP (one-chunk snippet) | recall@5 (snippet) |",
        "|---|---|---|---|---|",
    ]
    key = f"recall_at_{RECALL_AT}"
    for name in names:
        r, q = report["retrieval"][name], report["snippet_retrieval"].get(name)
        tail = f"{q['map']:.3f} | {q[key]:.3f}" if q else "- | -"
        lines.append(f"| {name} | {r['map']:.3f} | {r[key]:.3f} | {tail} |")
    return "\n".join(lines) + "\n"


def evaluate_embedders(items, names: list[str], max_chunks: int, cache: Path | None, finetuned: dict) -> dict:
    """The report of ``espressivo evaluate embed``: each embedder in ``names`` (vectors cached in ``cache`` by
    weights, chunking and files) beside hand-made statistics, and the ``finetuned`` classifiers
    (:func:`load_finetuned`) on the test files of their task."""

    test_items = [item for item in items if item.split == "test"]
    representations, snippets, timing = {}, {}, {}
    chunk_notes = None
    for name in names:
        embedder = FileEmbedder.load(name, max_chunks=max_chunks)
        chunk_notes = chunk_notes or embedder.chunk_notes  # the statistics' snippets are the same excerpts
        label = name if embedder.kind == "projection" else f"{name} (mean state, before contrastive training)"
        stored = cache_path(cache, embedder, items) if cache else None
        if stored is not None and stored.is_file():
            try:
                with np.load(stored) as kept:
                    representations[label], snippets[label] = kept["files"], kept["snippets"]
                continue
            except (OSError, ValueError, KeyError, EOFError):  # damaged (written by an older, non-atomic version)
                stored.unlink(missing_ok=True)
        started = time.time()
        representations[label] = embed_items(embedder, items)
        timing[label] = round(time.time() - started, 1)
        snippets[label] = embedder.embed_chunks([snippet(item, embedder.chunk_notes) for item in test_items])
        if stored is not None:  # atomic: a killed run never leaves a truncated cache behind
            buffer = io.BytesIO()
            np.savez(buffer, files=representations[label], snippets=snippets[label])
            atomic_write_bytes(stored, buffer.getvalue())
    representations["statistics"] = np.stack([performance_statistics(i.notes) for i in items])
    snippets["statistics"] = np.stack([performance_statistics(snippet(i, chunk_notes).notes) for i in test_items])
    report = evaluate_representations(items, representations, snippets, standardise=("statistics",))
    report |= {"max_chunks": max_chunks, "embedding_seconds": timing, "files": len(items)}
    report["finetuned"] = {path: score_finetuned(*loaded, items) for path, loaded in finetuned.items()}
    return report


def embed_items(embedder, items, progress: bool = True):
    import numpy as np
    from tqdm import tqdm

    out = []
    import sys

    # without a terminal (a log file, a pipe) a progress line every 30 s instead of none
    quiet = 0.0 if sys.stderr.isatty() else 30.0  # first shown after this long, then every this long
    for start in tqdm(range(0, len(items), 8), desc="embedding", unit="batch", disable=not progress,
                      mininterval=quiet or 0.1, delay=quiet, file=sys.stderr):  # fmt: skip
        out.append(embedder.embed([Performance(i.notes) for i in items[start : start + 8]]))
    return np.concatenate(out)


def snippet(item, chunk_notes: int):
    """The chunk in the middle of a performance: a short excerpt to query with."""

    spans = chunk_spans(len(item), chunk_notes)
    return note_slice(item.notes, *spans[len(spans) // 2])


def load_finetuned(path: str, max_chunks: int):
    """A classifier fine-tuned on (n)ASAP composer or period, ready to embed with, and its task."""

    pretrained = load_pretrained(path)
    task = pretrained.training_config.get("label", "")
    if family(pretrained.model_type).kind != "embedder" or getattr(pretrained.model, "classifier", None) is None:
        raise EspressivoError(f"{path}: not a classifier from `classify train --method finetune`")
    if task not in ("composer", "period"):
        raise EspressivoError(f"{path}: fine-tuned on {task!r}, not on (n)ASAP composer or period")
    embedder = FileEmbedder(pretrained.model, pretrained.tokenizer, path, max_chunks=max_chunks)
    return embedder, task, pretrained.training_config.get("max_steps")


def score_finetuned(embedder, task: str, steps, items) -> dict:
    """Test accuracy and macro-F1 of a fine-tuned classifier on the task it was trained for."""
    labels = labels_for(items, task, composer_classes(items))
    rows = [i for i, item in enumerate(items) if item.split == "test" and labels[i] is not None]
    probabilities = embedder.class_probabilities([Performance(items[i].notes) for i in rows])
    classes = embedder.model.config.classes
    predicted = [classes[k] for k in probabilities.argmax(axis=1)]
    truth = [labels[i] for i in rows]
    return {"task": task, "accuracy": accuracy(truth, predicted), "macro_f1": macro_f1(truth, predicted),
            "test_files": len(rows), "steps": steps}  # fmt: skip


def cache_path(cache: Path, embedder, items) -> Path:
    """A file name that changes with the weights, the chunking and the files embedded."""
    import hashlib

    digest = hashlib.sha256(f"{embedder.chunk_notes}|{embedder.max_chunks}|{embedder.precision}".encode())
    for tensor in embedder.model.state_dict().values():
        digest.update(tensor.float().numpy().tobytes()[:4096])
    for item in items:
        digest.update(f"{item.path}|{len(item)}\n".encode())
    return Path(cache) / f"{Path(embedder.name).name}-{digest.hexdigest()[:16]}.npz"
