"""Evaluating file vectors on (n)ASAP: linear probes for composer and period (accuracy, macro-F1), a
few-label curve, and piece retrieval on the test split — for any representation, so the learned embeddings
stand beside the baselines (hand-made statistics; the network before contrastive training).

>>> vectors = {"embed-small": X1, "statistics": X2}                 # one row per item
>>> report = evaluate_representations(items, vectors, snippets={"embed-small": S1, "statistics": S2})
"""

from __future__ import annotations

import numpy as np

from espressivo.data.performances import LABEL_TASKS, composer_classes, labels_for
from espressivo.embed.classify import LinearProbe, accuracy, macro_f1

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
