"""One training loop for every model: ``espressivo train CONFIG.yaml [--key value ...] [--resume]``.

A run reads a prepared token corpus (``espressivo data prepare``), trains with AdamW (linear warm-up, cosine
decay to ``min_lr``), gradient clipping and accumulation, autocast (bf16 on GPU; opt-in on CPU), validates every
``eval_every`` steps on fixed validation windows, logs to ``OUT/log.csv`` and writes

    OUT/last/   training state: model.safetensors, optimizer.pt (tensors only), state.json (step, RNG and data
                position), config.json — replaced atomically, so a run killed at any moment resumes from it
    OUT/best/   the inference checkpoint (``load_pretrained``) with the lowest validation loss so far

``--resume`` continues exactly: model, optimiser, scheduler, torch RNG and the data sampler's position, so the
loss curve of a killed and resumed run is the curve of an uninterrupted one.  Under ``torchrun`` it trains with
DistributedDataParallel (gloo on CPU, NCCL on GPU); each rank draws its own windows, rank 0 logs and saves.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from espressivo.data.augment import Augmentation
from espressivo.errors import EspressivoError
from espressivo.models import build_model
from espressivo.models.checkpoint import resolve, save_checkpoint
from espressivo.train.tasks import TASKS, make_task


@dataclass
class TrainConfig:
    data: str = ""  # a prepared token corpus, or aligned pairs (renderer fine-tuning)
    out: str = "runs/run"
    task: str = "auto"  # lm, denoise, render, cvrnn, contrastive, classify (auto: from model type and data)
    fill_rate: float = 0.0  # events: share of fill-in-the-middle windows
    mask_prob: float = 0.3  # denoise: share of slots masked
    score_tempo: str = "written"  # render: the score at its written tempo, or "performed" (see RenderPairs)
    max_beats: int = 512  # phrase: score beats per training window at most
    drop_marks: float = 0.25  # phrase: share of windows trained without markings (as a MIDI score)
    model_type: str = "transformer"
    model: str = "small"  # preset name
    model_overrides: dict = field(default_factory=dict)
    seq_len: int = 256
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 200
    max_steps: int = 2000
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_windows: int = 64
    save_every: int = 100
    log_every: int = 10
    seed: int = 1337
    autocast: str = "auto"  # auto: bf16 on GPU, none on CPU; or bf16 / none
    threads: int = 0  # torch CPU threads (0: torch's default)
    max_minutes: float = 0.0  # stop (and save) after this much wall time; 0: no limit
    augment_transpose: int = 3
    augment_stretch: float = 0.05
    augment_velocity: int = 4
    augment_tempo_noise: float = 0.05  # cvrnn: sd of the zero-reverting tempo-curve noise (fraction)
    init_from: str = ""  # start from this checkpoint's weights (a folder or a shipped model's name)
    min_notes: int = 48  # contrastive / classify: slices of min_notes..max_notes notes, seq_len tokens at most
    max_notes: int = 160
    label: str = ""  # classify: composer, period, or a labels CSV (file,label[,split])

    @classmethod
    def from_file(cls, path: str | os.PathLike | None, overrides: list[str] | None = None) -> TrainConfig:
        values: dict = {}
        if path is not None:
            import yaml

            try:
                loaded = yaml.safe_load(Path(path).read_text())
            except (OSError, yaml.YAMLError) as err:
                raise EspressivoError(f"{path}: cannot read the training config ({err})") from None
            if not isinstance(loaded, dict):
                raise EspressivoError(f"{path}: the training config must be a mapping of settings")
            values.update(loaded)
        values.update(parse_overrides(overrides or []))
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise EspressivoError(f"unknown training settings: {', '.join(sorted(unknown))}")
        config = cls()
        for key, value in values.items():
            default = getattr(config, key)
            try:
                if isinstance(default, (bool, dict, str)):
                    converted = value
                elif isinstance(default, int):
                    converted = int(value)
                else:
                    converted = float(value)
            except (TypeError, ValueError):
                raise EspressivoError(f"setting {key} needs a number, got {value!r}") from None
            setattr(config, key, converted)
        config.validate()
        return config

    def validate(self) -> None:
        if not self.data:
            raise EspressivoError("set `data:` to a corpus made by `espressivo data prepare`")
        checks = [
            (self.seq_len >= 2, "seq_len must be >= 2"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be >= 1"),
            (self.max_steps >= 1 and self.warmup_steps >= 0, "max_steps must be >= 1, warmup_steps >= 0"),
            (self.lr > 0 and 0 <= self.min_lr <= self.lr, "need 0 <= min_lr <= lr and lr > 0"),
            (
                self.eval_every >= 1 and self.save_every >= 1 and self.log_every >= 1,
                "eval/save/log intervals must be >= 1",
            ),
            (self.autocast in ("auto", "bf16", "none"), "autocast must be auto, bf16 or none"),
            (isinstance(self.model_overrides, dict), "model_overrides must be a mapping of model settings"),
            (self.task in ("auto", *TASKS), f"task must be auto or one of {', '.join(TASKS)}"),
            (1 <= self.min_notes <= self.max_notes, "need 1 <= min_notes <= max_notes"),
            (0 <= self.augment_tempo_noise <= 0.3, "augment_tempo_noise must lie in 0..0.3"),
            (0 < self.mask_prob < 1, "mask_prob must lie in (0, 1)"),
            (0 <= self.fill_rate <= 1, "fill_rate must lie in 0..1"),
            (self.score_tempo in ("written", "performed"), "score_tempo must be written or performed"),
        ]
        for ok, message in checks:
            if not ok:
                raise EspressivoError(message)


MAX_STEP = 10**9


def parse_overrides(items: list[str]) -> dict:
    """``["--lr", "3e-4", "--max-steps=100"]`` -> ``{"lr": "3e-4", "max_steps": "100"}``."""
    values, i = {}, 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--"):
            raise EspressivoError(f"unexpected argument {item!r} (settings are --key value)")
        key, eq, value = item[2:].partition("=")
        if not eq:
            if i + 1 >= len(items):
                raise EspressivoError(f"setting --{key} needs a value")
            value, i = items[i + 1], i + 1
        values[key.replace("-", "_")] = value
        i += 1
    return values


def lr_at(step: int, c: TrainConfig) -> float:
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    progress = min(1.0, (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps))
    return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress))


def _replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written folder into place; at every moment one complete version exists."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def recover_dir(final: Path, needs: tuple[str, ...] = ("model.safetensors", "config.json")) -> bool:
    """After a kill between the two renames of :func:`_replace_dir` (``final`` gone, ``final.old`` and a complete
    ``.final.tmp`` left), put the newest complete version back in place; whether ``final`` exists now."""
    if final.exists():
        return True
    for candidate in (final.with_name(f".{final.name}.tmp"), final.with_name(final.name + ".old")):
        if candidate.is_dir() and all((candidate / name).is_file() for name in needs):
            os.replace(candidate, final)
            return True
    return False


class Trainer:
    def __init__(self, config: TrainConfig):
        import torch

        self.c = c = config
        self.torch = torch
        self.rank, self.world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        self.device = torch.device(
            f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
        )
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if c.threads:
            torch.set_num_threads(c.threads)
        torch.manual_seed(c.seed)
        augmentation = Augmentation(c.augment_transpose, c.augment_stretch, c.augment_velocity)
        self.task = make_task(c, augmentation, self.device, self.rank)
        self.tokenizer = self.task.tokenizer
        self.rng = np.random.default_rng([c.seed, self.rank])
        self.model = build_model(c.model_type, c.model, **self.task.model_settings(), **c.model_overrides)
        if c.init_from:
            self._load_weights(resolve(c.init_from))
        self.model.to(self.device)
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=c.lr, betas=(0.9, 0.95), fused=False,
        )  # fmt: skip
        self.ddp = self.model
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model)
        use_bf16 = c.autocast == "bf16" or (c.autocast == "auto" and self.device.type == "cuda")
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16)
        self.step, self.best = 0, float("inf")
        self.out = Path(c.out)

    def _load_weights(self, folder: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(folder / "model.safetensors"))
        except (SafetensorError, OSError) as err:
            raise EspressivoError(f"{folder}: cannot read model.safetensors to start from ({err})") from None
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        adapt = getattr(self.model, "adapt_pretrained", None)  # another family's weights it can start from
        if adapt is not None:
            state = adapt(state)
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        fresh = getattr(self.model, "fresh_weights", ())  # new parts on a pretrained body (heads)
        missing = {m for m in missing if not m.startswith(fresh)} if fresh else set(missing)
        if missing - set(getattr(self.model, "tied_weights", ())) or unexpected:
            raise EspressivoError(f"{folder}: its weights do not fit the configured model")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "best": self.best,
            "rng": self.rng.bit_generator.state,
            "torch_rng": self.torch.get_rng_state().tolist(),
        }

    def save(self, kind: str = "last") -> None:
        if self.rank != 0:
            return

        tmp = self.out / f".{kind}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        save_checkpoint(
            tmp,
            self.model,
            self.c.model_type,
            self.tokenizer,
            dtype="float32",
            extra={"train": dataclasses.asdict(self.c)},
        )
        if kind == "last":
            self.torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            (tmp / "state.json").write_text(json.dumps(self.state_dict()))
        _replace_dir(tmp, self.out / kind)

    def resume(self) -> None:
        from safetensors.torch import load_file

        last = self.out / "last"
        recover_dir(self.out / "best")
        recover_dir(last, ("model.safetensors", "config.json", "state.json", "optimizer.pt"))
        if not (last / "state.json").is_file():
            raise EspressivoError(f"{last}: nothing to resume from")
        try:
            self.model.load_state_dict(load_file(last / "model.safetensors"), strict=False)
            self.optimizer.load_state_dict(self.torch.load(last / "optimizer.pt", weights_only=True))
            state = json.loads((last / "state.json").read_text())
            _ = state["step"], state["best"], state["rng"], state["torch_rng"]  # all there, or KeyError
            step, best = state["step"], state["best"]
            if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
                raise ValueError(f"step {str(step)[:20]} is not a step count in 0..{MAX_STEP}")
            if isinstance(best, bool) or not isinstance(best, (int, float)) or best != best:
                raise ValueError(f"best {str(best)[:20]} is not a loss")
        except Exception as err:  # a damaged or foreign checkpoint: unpickling, shape and key errors alike
            message = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
            raise EspressivoError(f"{last}: cannot resume from it ({type(err).__name__}: {message})") from None
        self.step, self.best = state["step"], state["best"]
        self.rng.bit_generator.state = state["rng"]
        self.torch.set_rng_state(self.torch.tensor(state["torch_rng"], dtype=self.torch.uint8))

    # ------------------------------------------------------------------ loop
    def evaluate(self) -> float:
        """Mean validation loss over the task's fixed batches, weighted by the targets each counts."""
        self.model.eval()
        total, count = 0.0, 0
        with self.torch.no_grad(), self.autocast:
            for batch, weight in self.task.validation():
                _, loss = self.model(**batch)
                total += float(loss) * weight
                count += weight
        self.model.train()
        return total / max(count, 1)

    def train(self) -> dict:
        from tqdm import tqdm

        torch, c = self.torch, self.c
        self.out.mkdir(parents=True, exist_ok=True)
        log_path = self.out / "log.csv"
        if self.rank == 0 and (self.step == 0 or not log_path.exists()):
            log_path.write_text("step,lr,train_loss,val_loss,tokens,seconds\n")
        elif self.rank == 0:  # resumed: drop log rows written after the checkpoint
            rows = log_path.read_text().splitlines()
            kept = [rows[0]] + [r for r in rows[1:] if int(r.split(",")[0]) <= self.step]
            log_path.write_text("\n".join(kept) + "\n")
        self.model.train()
        started, tokens = time.time(), 0
        bar = tqdm(total=c.max_steps, initial=self.step, desc="training", disable=self.rank != 0 or None)
        running = None
        while self.step < c.max_steps:
            lr = lr_at(self.step, c)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            for micro in range(c.grad_accum):
                batch = self.task.batch(self.rng)
                sync = micro == c.grad_accum - 1 or self.world == 1
                context = self.ddp.no_sync() if not sync and self.world > 1 else contextlib.nullcontext()
                with context, self.autocast:
                    _, loss = self.ddp(**batch)
                    (loss / c.grad_accum).backward()
                loss_sum += loss.item() / c.grad_accum
                tokens += next(iter(batch.values())).shape[:2].numel() * self.world
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            bar.update(1)
            running = loss_sum if running is None else 0.9 * running + 0.1 * loss_sum
            val = None
            if self.step % c.eval_every == 0 or self.step == c.max_steps:
                val = self.evaluate()
                if val < self.best:
                    self.best = val
                    self.save("best")
            if self.rank == 0 and (self.step % c.log_every == 0 or val is not None):
                with log_path.open("a", newline="") as handle:
                    csv.writer(handle).writerow(
                        [
                            self.step,
                            f"{lr:.3e}",
                            f"{loss_sum:.4f}",
                            "" if val is None else f"{val:.4f}",
                            tokens,
                            f"{time.time() - started:.1f}",
                        ]
                    )
                bar.set_postfix(loss=f"{running:.3f}", val="" if val is None else f"{val:.3f}")
            out_of_time = c.max_minutes and time.time() - started > c.max_minutes * 60
            if self.step % c.save_every == 0 or self.step == c.max_steps or out_of_time:
                self.save("last")
            if out_of_time:
                break
        bar.close()
        return {
            "step": self.step,
            "best_val_loss": self.best,
            "seconds": round(time.time() - started, 1),
            "tokens": tokens,
        }


def train(config: TrainConfig, resume: bool = False) -> dict:
    trainer = Trainer(config)
    if resume:
        trainer.resume()
    result = trainer.train()
    if trainer.world > 1:
        torch = trainer.torch
        # every rank must hold the same weights: gather one checksum per rank and compare
        checksum = torch.stack([p.detach().double().sum() for p in trainer.model.parameters()]).sum().reshape(1)
        gathered = [torch.zeros_like(checksum) for _ in range(trainer.world)]
        torch.distributed.all_gather(gathered, checksum)
        result["world_size"] = trainer.world
        result["ranks_in_sync"] = bool(all(torch.equal(g, gathered[0]) for g in gathered))
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result
