"""Classifying performances from frozen file vectors: a linear probe (multinomial logistic regression on
standardised vectors, classes weighted evenly), its folder on disk, and the metrics.

>>> probe = LinearProbe.fit(train_vectors, train_labels)          # labels: class names
>>> names, probabilities = probe.predict(test_vectors)
>>> probe.save("probe/", embedder="embed-small", chunk_notes=160); LinearProbe.load("probe/")
>>> accuracy(truth, names), macro_f1(truth, names)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes
from espressivo.io.safety import read_bytes

PROBE_KIND = "linear-probe"


@dataclass
class LinearProbe:
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray
    meta: dict | None = None  # what the vectors came from (embedder, chunking, task)

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: list[str], weight_decay: float = 1e-2) -> LinearProbe:
        """Full-batch L-BFGS on the cross-entropy, each class weighted by the inverse of its frequency, plus
        ``weight_decay`` times the squared weights; deterministic."""
        import torch

        vectors = np.asarray(vectors, np.float64)
        classes = sorted(set(labels))
        if len(classes) < 2 or len(vectors) != len(labels) or vectors.ndim != 2:
            raise EspressivoError("a probe needs vectors and labels of two or more classes, one label per vector")
        mean, std = vectors.mean(0), vectors.std(0) + 1e-8
        x = torch.from_numpy((vectors - mean) / std)
        code = {c: i for i, c in enumerate(classes)}
        y = torch.tensor([code[lab] for lab in labels])
        counts = torch.bincount(y, minlength=len(classes)).double()
        class_weight = len(y) / (len(classes) * counts)
        linear = torch.nn.Linear(x.shape[1], len(classes)).double()
        torch.nn.init.zeros_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=500, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(linear(x), y, weight=class_weight)
            loss = loss + weight_decay * linear.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        weight, bias = linear.weight.detach().numpy(), linear.bias.detach().numpy()
        return cls(classes, mean, std, weight, bias)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, np.float64)
        if vectors.ndim != 2 or vectors.shape[1] != self.weight.shape[1]:
            raise EspressivoError(f"the probe reads {self.weight.shape[1]}-dimensional vectors")
        logits = ((vectors - self.mean) / self.std) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
        p = self.probabilities(vectors)
        return [self.classes[i] for i in p.argmax(axis=1)], p

    def save(self, folder: str | os.PathLike, **meta) -> Path:
        from safetensors.numpy import save

        folder = Path(folder)
        arrays = {"mean": self.mean, "std": self.std, "weight": self.weight, "bias": self.bias}
        weights = save({k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()})
        atomic_write_bytes(folder / "probe.safetensors", weights)
        config = {"kind": PROBE_KIND, "classes": self.classes} | (self.meta or {}) | meta
        atomic_write_bytes(folder / "classifier.json", json.dumps(config, indent=2).encode())
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> LinearProbe:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(folder)
        try:
            config = json.loads(read_bytes(folder / "classifier.json", 2**20))
            classes = [str(c) for c in config["classes"]]
            arrays = load_file(str(folder / "probe.safetensors"))
            probe = cls(classes, *(arrays[k].astype(np.float64) for k in ("mean", "std", "weight", "bias")))
        except (ValueError, KeyError, TypeError, OSError, SafetensorError) as err:
            raise EspressivoError(f"{folder}: not a probe folder from `espressivo classify train` ({err})") from None
        dim = probe.weight.shape[1] if probe.weight.ndim == 2 else -1
        if (
            probe.weight.shape != (len(classes), dim)
            or probe.bias.shape != (len(classes),)
            or probe.mean.shape != (dim,)
        ):
            raise EspressivoError(f"{folder}: the probe's arrays do not fit together")
        probe.meta = {k: v for k, v in config.items() if k not in ("kind", "classes")}
        return probe


def is_probe(folder: str | os.PathLike) -> bool:
    return (Path(folder) / "classifier.json").is_file()


def accuracy(truth: list[str], predicted: list[str]) -> float:
    return float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)])) if truth else float("nan")


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    """The mean F1 over every class that occurs in the truth or the predictions."""
    scores = []
    for c in sorted(set(truth) | set(predicted)):
        tp = sum(t == c and p == c for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != c and p == c for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == c and p != c for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else float("nan")
