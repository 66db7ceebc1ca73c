"""Evaluating file vectors on (n)ASAP: linear probes for composer and period (accuracy, macro-F1), a
few-label curve, and piece retrieval on the test split — for any representation, so the learned embeddings
stand beside the baselines (hand-made statistics; the network before contrastive training).

>>> vectors = {"embed-small": X1, "statistics": X2}                 # one row per item
>>> report = evaluate_representations(items, vectors)
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


def retrieval(vectors: np.ndarray, pieces: list[str]) -> dict:
    """Each performance queries the others by cosine similarity; the other performances of its piece are
    the relevant items.  Mean average precision and recall@5 over the queries that have a relevant item."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    pieces = np.asarray(pieces)
    aps, recalls = [], []
    for q in range(len(unit)):
        others = np.delete(np.arange(len(unit)), q)
        ranked = others[np.argsort(-similarity[q, others], kind="stable")]
        relevant = pieces[ranked] == pieces[q]
        if not relevant.any():
            continue
        hits = np.cumsum(relevant)
        aps.append(float((hits[relevant] / (np.nonzero(relevant)[0] + 1)).mean()))
        recalls.append(float(relevant[:RECALL_AT].sum() / relevant.sum()))
    return {"map": float(np.mean(aps)), f"recall_at_{RECALL_AT}": float(np.mean(recalls)), "queries": len(aps)}


def evaluate_representations(items, representations: dict[str, np.ndarray], standardise: tuple[str, ...] = ()) -> dict:
    """Probes (all labels and the few-label curve) and test retrieval for each representation.  Names in
    ``standardise`` are centred and scaled by their train-split statistics before retrieval (hand-made
    features live on unrelated scales); the others are compared as they are, as ``espressivo similar`` does."""
    split = np.array([i.split for i in items])
    train, test = split == "train", split == "test"
    composers = composer_classes(items)
    report: dict = {"tasks": {}, "retrieval": {}, "representations": list(representations)}
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
    for name, vectors in representations.items():
        x = vectors
        if name in standardise:
            x = (vectors - vectors[train].mean(0)) / (vectors[train].std(0) + 1e-8)
        report["retrieval"][name] = retrieval(x[test_rows], [pieces[i] for i in test_rows])
    report["test_files"], report["test_pieces"] = int(test.sum()), len({pieces[i] for i in test_rows})
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
    lines += ["### piece retrieval (test)", "", "| representation | mAP | recall@5 |", "|---|---|---|"]
    for name in names:
        r = report["retrieval"][name]
        lines.append(f"| {name} | {r['map']:.3f} | {r[f'recall_at_{RECALL_AT}']:.3f} |")
    return "\n".join(lines) + "\n"
