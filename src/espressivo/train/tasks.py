"""What the training loop trains on: a task turns a data folder into batches for one kind of model.

=========  ========================================  ================================================
``lm``     a token corpus (``data prepare``)          next-token prediction (transformer, perfrnn)
``events`` MIDI sources (``asap,supra``)             next-token prediction on ``aria`` windows encoded on
                                                      the fly (Aria's augmentation; ``fill_rate`` of them
                                                      fill-in-the-middle examples)
``denoise``  a ``note``-token corpus                  masked denoising of performances (renderer
                                                      pretraining: each slot masked with ``mask_prob``)
``render`` aligned pairs (``data pairs``)             score -> performance (renderer fine-tuning)
``cvrnn``  aligned pairs (``data pairs``)             the CVRNN's ELBO (score + performance windows)
``phrase`` aligned pairs (``data pairs``)             beat curves + note deviations (phrase renderer)
``contrastive``  MIDI sources (``asap,supra``)        NT-Xent on two slices per performance (embedder)
``classify``  sources + ``label`` (composer, period,   cross-entropy on one slice per labelled file,
           or a labels CSV)                          classes sampled evenly (embedder with a head)
=========  ========================================  ================================================

Every task gives ``batch(rng)`` (keyword arguments of the model's ``forward``), ``validation()`` (fixed
batches with their weights: the number of targets the loss counts) and the settings the model needs from
the data (vocabulary or slot sizes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from espressivo.data.cvrnn import CVRNNAugmentation, CVRNNPairs
from espressivo.data.pairs import RenderPairs
from espressivo.data.performances import SliceSampler, labelled_items, load_items, pack
from espressivo.data.phrase import PhrasePairs
from espressivo.data.tokens import RandomWindows, TokenCorpus
from espressivo.data.windows import EventWindows, load_tracks
from espressivo.errors import EspressivoError
from espressivo.families import family
from espressivo.features.phrase import PHRASE_FEATURES
from espressivo.features.slots import SCORE_FEATURES, render_tokenizer, slot_sizes
from espressivo.models.checkpoint import resolve
from espressivo.models.cvrnn import CVRNNConfig
from espressivo.registry import Registry
from espressivo.tokenizers import from_dict, from_name
from espressivo.tokenizers.note import NoteTokenizer

TASKS: Registry[type] = Registry("task")


def spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over the list (all of them if fewer)."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def _has(data: str, name: str) -> bool:
    return bool(data) and (Path(data) / name).is_file()


def default_task(model_type: str, data: str, label: str = "") -> str:
    """The first of the family's tasks whose data fits (``fits``), else its first."""
    tasks = family(model_type).tasks
    return next((t for t in tasks if TASKS[t].fits(data, label)), tasks[0])


@TASKS.register("lm")
class LMTask:
    @staticmethod
    def fits(data: str, label: str) -> bool:  # a token corpus from `espressivo data prepare`
        return _has(data, "index.json")

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        self.torch, self.c, self.device = torch, c, device
        self.corpus = TokenCorpus(c.data)
        self.tokenizer = self.corpus.tokenizer
        self.pad = self.tokenizer.vocab["PAD"].start
        self.sampler = RandomWindows(self.corpus, "train", c.seq_len + 1, augmentation)
        self.val_windows = [
            w[: c.seq_len + 1]
            for _, w in zip(range(c.eval_windows), self.corpus.windows("validation", c.seq_len + 1), strict=False)
        ]

    def model_settings(self) -> dict:
        return {"vocab_size": len(self.tokenizer.vocab), "pad_id": self.pad}

    def _pack(self, windows: list[np.ndarray]) -> dict:
        data = self.torch.from_numpy(np.stack(windows)).to(self.device)
        return {"idx": data[:, :-1], "targets": data[:, 1:]}

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self.sampler.sample(rng) for _ in range(self.c.batch_size)])

    def validation(self) -> Iterator[tuple[dict, int]]:
        for start in range(0, len(self.val_windows), self.c.batch_size):
            windows = self.val_windows[start : start + self.c.batch_size]
            batch = self._pack(windows)
            yield batch, int((batch["targets"] != self.pad).sum())


@TASKS.register("events")
class EventLMTask(LMTask):
    """Next-token prediction on windows of ``aria`` events drawn from whole performances (train files of the
    sources in ``data``), validated on fixed plain windows of the (n)ASAP validation files."""

    @staticmethod
    def fits(data: str, label: str) -> bool:  # MIDI sources, encoded on the fly
        return True

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        self.torch, self.c, self.device = torch, c, device
        self.tokenizer = from_name("aria")
        self.pad = self.tokenizer.pad_id
        tracks, _ = load_tracks(c.data)
        train = [t for t in tracks if t.split == "train"]
        held = [t for t in tracks if t.split == "validation"] or train
        self.sampler = EventWindows(train, self.tokenizer, c.seq_len + 1, augmentation, c.fill_rate)
        validation = EventWindows(held, self.tokenizer, c.seq_len + 1)
        rng = np.random.default_rng(0)  # the same windows at every validation
        self.val_windows = [validation.sample(rng) for _ in range(c.eval_windows)]


class _NoteTask:
    """Shared by the renderer's tasks: stacking window dicts into tensors."""

    @staticmethod
    def fits(data: str, label: str) -> bool:
        return True

    def _pack(self, windows: list[dict]) -> dict:
        torch = self.torch
        out = {}
        for key in windows[0]:
            out[key] = torch.from_numpy(np.stack([w[key] for w in windows])).to(self.device)
        return out

    def model_settings(self) -> dict:
        return {"slot_sizes": slot_sizes(self.tokenizer), "time_step_ms": self.tokenizer.config.time_step_ms}

    weight_key = "loss_mask"  # the validation batches' weight: how many targets the loss counts

    def validation(self) -> Iterator[tuple[dict, int]]:
        for start in range(0, len(self.val_windows), self.c.batch_size):
            batch = self._pack(self.val_windows[start : start + self.c.batch_size])
            yield batch, int(batch[self.weight_key].sum())


@TASKS.register("denoise")
class DenoiseTask(_NoteTask):
    """Masked denoising on unaligned performances in the ``note`` representation (Pianist Transformer's
    pretraining): every slot of every note is replaced by MASK with probability ``mask_prob``; the encoder
    sees the corrupted notes, the decoder is teacher-forced on the originals, the loss counts the masked slots."""

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        self.torch, self.c, self.device = torch, c, device
        self.corpus = TokenCorpus(c.data)
        self.tokenizer = self.corpus.tokenizer
        if not isinstance(self.tokenizer, NoteTokenizer):
            raise EspressivoError(f"{c.data}: renderer pretraining needs a corpus of `note` tokens")
        self.block = self.tokenizer.block
        self.starts = np.array([start for start, _ in self.tokenizer.slot_ranges])
        self.sizes = np.array([stop - start for start, stop in self.tokenizer.slot_ranges])
        self.sampler = RandomWindows(self.corpus, "train", c.seq_len * self.block, augmentation)
        rng = np.random.default_rng(0)  # the same masks at every validation
        windows = spread(list(self.corpus.windows("validation", c.seq_len * self.block)), c.eval_windows)
        self.val_windows = [self._corrupt(w, rng) for w in windows]

    def _corrupt(self, ids: np.ndarray, rng: np.random.Generator) -> dict:
        notes = ids.reshape(-1, self.block) - self.starts
        keep = ((notes >= 0) & (notes < self.sizes)).all(axis=1)  # PAD blocks at the end of a short file
        tgt = np.where(keep[:, None], notes, 0)
        masked = (rng.random(tgt.shape) < self.c.mask_prob) & keep[:, None]
        src = np.where(masked, self.sizes, tgt)
        return {"src": src, "tgt": tgt, "loss_mask": masked, "keep": keep}

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self._corrupt(self.sampler.sample(rng), rng) for _ in range(self.c.batch_size)])


@TASKS.register("render")
class RenderTask(_NoteTask):
    """Score -> performance on aligned pairs: the loss counts the expressive slots of matched notes."""

    @staticmethod
    def fits(data: str, label: str) -> bool:  # aligned pairs from `espressivo data pairs`
        return _has(data, "pairs.json")

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        self.torch, self.c, self.device = torch, c, device
        self.tokenizer = render_tokenizer()
        self.sampler = RenderPairs(c.data, "train", self.tokenizer, c.seq_len, augmentation, c.score_tempo)
        validation = RenderPairs(c.data, "validation", self.tokenizer, c.seq_len, score_tempo=c.score_tempo)
        self.val_windows = spread(list(validation.windows()), c.eval_windows)

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self.sampler.sample(rng) for _ in range(self.c.batch_size)])


@TASKS.register("cvrnn")
class CVRNNTask(_NoteTask):
    """The CVRNN on aligned pairs: windows of ``seq_len`` notes; augmentation by transposition
    (``augment_transpose``) and tempo-curve noise (``augment_tempo_noise``)."""

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        self.torch, self.c, self.device = torch, c, device
        self.tokenizer = render_tokenizer()  # not used by the model; keeps checkpoints self-describing
        config = CVRNNConfig.from_name(c.model, **c.model_overrides)
        aug = CVRNNAugmentation(c.augment_transpose, c.augment_tempo_noise)
        self.sampler = CVRNNPairs(c.data, "train", config, c.seq_len, aug)
        validation = CVRNNPairs(c.data, "validation", config, c.seq_len)
        self.val_windows = spread(list(validation.windows()), c.eval_windows)

    def model_settings(self) -> dict:
        return {}

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self.sampler.sample(rng) for _ in range(self.c.batch_size)])

    def validation(self) -> Iterator[tuple[dict, int]]:
        for start in range(0, len(self.val_windows), self.c.batch_size):
            batch = self._pack(self.val_windows[start : start + self.c.batch_size])
            yield batch, int(batch["keep"].sum())


@TASKS.register("phrase")
class PhraseTask(_NoteTask):
    """The phrase renderer on aligned pairs: windows of ``seq_len`` notes and up to ``max_beats`` beats; the
    loss counts the curves of measured beats and the deviations of matched notes."""

    def __init__(self, c, augmentation, device, rank: int):
        import torch

        self.torch, self.c, self.device = torch, c, device
        self.tokenizer = render_tokenizer()
        self.sampler = PhrasePairs(c.data, "train", self.tokenizer, c.seq_len, c.max_beats, augmentation, c.drop_marks)
        validation = PhrasePairs(c.data, "validation", self.tokenizer, c.seq_len, c.max_beats)
        self.val_windows = spread(list(validation.windows()), c.eval_windows)

    def model_settings(self) -> dict:
        return super().model_settings() | {
            "n_features": len(SCORE_FEATURES),
            "n_phrase_features": len(PHRASE_FEATURES) - len(SCORE_FEATURES),
        }

    weight_key = "keep"

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pack([self.sampler.sample(rng) for _ in range(self.c.batch_size)])


class _SliceTask:
    """Shared by the embedder's tasks: the tokenizer of the model it starts from, slices packed into rows."""

    @staticmethod
    def fits(data: str, label: str) -> bool:
        return True

    def __init__(self, c, device):
        import torch

        self.torch, self.c, self.device = torch, c, device
        self.tokenizer = self._start_tokenizer(c.init_from)

    @staticmethod
    def _start_tokenizer(init_from: str):
        import json

        if not init_from:
            return from_name("performance-rnn")
        try:
            return from_dict(json.loads((resolve(init_from) / "config.json").read_text())["tokenizer"])
        except (OSError, ValueError, KeyError) as err:
            raise EspressivoError(
                f"{init_from}: cannot read the tokenizer of the model to start from ({err})"
            ) from None

    def model_settings(self) -> dict:
        return {"vocab_size": len(self.tokenizer.vocab), "pad_id": self.tokenizer.pad_id}

    def _rows(self, views, **extra) -> dict:
        idx, last = pack(self.tokenizer, views, self.c.seq_len)
        arrays = {"idx": idx, "last": last} | extra
        return {k: self.torch.from_numpy(np.asarray(v)).to(self.device) for k, v in arrays.items()}

    def validation(self) -> Iterator[tuple[dict, int]]:
        for batch in self.val_batches:
            yield batch, len(batch["last"])


@TASKS.register("contrastive")
class ContrastiveTask(_SliceTask):
    """SimCLR on performances: the two views of one performance are positives, the rest of the batch
    (``batch_size`` performances of distinct pieces) negatives; train files of the sources in ``data``."""

    def __init__(self, c, augmentation, device, rank: int):
        super().__init__(c, device)
        items, _ = load_items(c.data, splits=("train", "validation"))
        train = [i for i in items if i.split == "train"]
        self.sampler = SliceSampler(train, c.min_notes, c.max_notes, augmentation)
        held = [i for i in items if i.split == "validation" and len(i) >= c.min_notes]
        validation = SliceSampler(held if len(held) >= 2 else train, c.min_notes, c.max_notes)  # else: train
        rng = np.random.default_rng(0)  # the same validation pairs at every evaluation
        count = max(1, c.eval_windows // (2 * c.batch_size))
        self.val_batches = [self._pairs(validation.pairs(rng, c.batch_size)) for _ in range(count)]

    def _pairs(self, views) -> dict:
        n = len(views) // 2
        return self._rows(views, positive=np.concatenate([np.arange(n, 2 * n), np.arange(n)]))

    def batch(self, rng: np.random.Generator) -> dict:
        return self._pairs(self.sampler.pairs(rng, self.c.batch_size))


@TASKS.register("classify")
class ClassifyTask(_SliceTask):
    """Fine-tuning with a class head: one slice per labelled train file, classes drawn evenly."""

    @staticmethod
    def fits(data: str, label: str) -> bool:
        return bool(label)

    def __init__(self, c, augmentation, device, rank: int):
        super().__init__(c, device)
        if not c.label:
            raise EspressivoError("task classify needs `label`: composer, period or a labels CSV")
        items, labels, self.classes = labelled_items(c.label, c.data)
        code = {name: i for i, name in enumerate(self.classes)}
        self.samplers, self.codes = {}, {}
        for split in ("train", "validation"):
            chosen = [i for i, item in enumerate(items) if item.split == split and len(item) >= c.min_notes]
            if not chosen:
                continue
            per_class = {lab: sum(len(items[i]) for i in chosen if labels[i] == lab) for lab in self.classes}
            weights = [len(items[i]) / per_class[labels[i]] for i in chosen]  # every class equally often
            self.samplers[split] = SliceSampler([items[i] for i in chosen], c.min_notes, c.max_notes,
                                                augmentation if split == "train" else None, weights)  # fmt: skip
            self.codes[split] = np.array([code[labels[i]] for i in chosen])
        if "train" not in self.samplers:
            raise EspressivoError(f"{c.label}: no labelled training file has {c.min_notes} notes or more")
        split = "validation" if "validation" in self.samplers else "train"  # no held-out files: train slices
        rng = np.random.default_rng(0)
        count = max(1, c.eval_windows // c.batch_size)
        self.val_batches = [self._labelled(split, rng) for _ in range(count)]

    def model_settings(self) -> dict:
        return super().model_settings() | {"classes": tuple(self.classes)}

    def _labelled(self, split: str, rng: np.random.Generator) -> dict:
        views, chosen = self.samplers[split].singles(rng, self.c.batch_size)
        return self._rows(views, labels=self.codes[split][chosen])

    def batch(self, rng: np.random.Generator) -> dict:
        return self._labelled("train", rng)


def make_task(c, augmentation, device, rank: int = 0):
    """The task that trains ``c.model_type`` (``task: auto``: the family's first task whose data fits)."""
    entry = family(c.model_type)
    name = c.task if c.task != "auto" else default_task(c.model_type, c.data, c.label)
    if name not in entry.tasks:
        raise EspressivoError(f"a {entry.name} model trains with task {' or '.join(entry.tasks)}, not {name}")
    return TASKS[name](c, augmentation, device, rank)
