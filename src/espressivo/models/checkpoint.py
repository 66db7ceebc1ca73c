"""Self-contained checkpoint folders: ``model.safetensors`` + ``config.json`` (model type and config,
tokenizer, espressivo version).  Weights are only ever read with safetensors: nothing is unpickled.

>>> save_checkpoint("ckpt/", model, "transformer", tokenizer, dtype="float16")
>>> pretrained = load_pretrained("transformer-small")   # a shipped model, or a folder path
>>> pretrained.model, pretrained.tokenizer
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from espressivo import __version__
from espressivo.errors import EspressivoError
from espressivo.families import FAMILIES, canonical, family
from espressivo.io.files import atomic_write_bytes
from espressivo.io.safety import read_bytes
from espressivo.models import build_model
from espressivo.tokenizers import from_dict

DTYPES = ("float32", "float16", "bfloat16")
MAX_CONFIG_BYTES = 2**20


@dataclass
class Pretrained:
    model: object
    tokenizer: object
    model_type: str
    path: Path
    config: dict

    @property
    def context(self) -> int:
        """How many ids a language model may attend to: the windows it was trained on (never more than its
        maximum); 0 for a model without a window (an LSTM)."""
        limit = getattr(self.model.config, "max_seq_len", 0)
        trained = int(self.training_config.get("seq_len", 0) or 0)
        return min(trained, limit) if trained and limit else limit

    @property
    def training_config(self) -> dict:
        """The training settings (a run's ``train``, a shipped model's ``training.config``; {} if unknown)."""
        return self.config.get("train") or self.config.get("training", {}).get("config", {}) or {}


def save_checkpoint(
    path, model, model_type: str, tokenizer, *, dtype: str = "float32", extra: dict | None = None
) -> Path:
    import torch
    from safetensors.torch import save

    if dtype not in DTYPES:
        raise EspressivoError(f"dtype must be one of {', '.join(DTYPES)}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    target = getattr(torch, dtype)
    state = {}
    seen = set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:  # tied weights are stored once
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor.detach().to("cpu", target if tensor.is_floating_point() else tensor.dtype).contiguous()
    atomic_write_bytes(path / "model.safetensors", save(state))  # a crash never leaves half a file
    entry = family(model_type)
    config = (
        {
            "model_type": entry.name,
            "model": asdict(model.config),
            "tokenizer": tokenizer.to_dict(),
            "dtype": dtype,
            "espressivo_version": __version__,
        }
        | ({"features": list(entry.feature_names)} if entry.feature_names else {})
        | (extra or {})
    )
    atomic_write_bytes(path / "config.json", json.dumps(config, indent=2).encode())
    return path


def shipped_models() -> list[str]:
    root = resources.files("espressivo") / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def resolve(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.is_dir():
        return path
    root = resources.files("espressivo") / "checkpoints" / str(name_or_path)
    if (root / "config.json").is_file():
        return Path(str(root))
    available = ", ".join(shipped_models()) or "none"
    raise EspressivoError(f"no model {str(name_or_path)!r}: not a checkpoint folder nor a shipped model ({available})")


def load_pretrained(name_or_path: str | os.PathLike = "default", device: str = "cpu") -> Pretrained:
    """A shipped model by name (``default`` = the best shipped one), or a checkpoint folder."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if str(name_or_path) == "default":
        name_or_path = default_model_name()
    path = resolve(name_or_path)

    try:
        config = json.loads(read_bytes(path / "config.json", MAX_CONFIG_BYTES))
        model_type, model_config = config["model_type"], config["model"]
    except (ValueError, KeyError, TypeError) as err:
        raise EspressivoError(f"{path}/config.json: not an espressivo checkpoint config ({err})") from None
    except RecursionError:
        raise EspressivoError(f"{path}/config.json: nested too deeply to be a checkpoint config") from None
    if not isinstance(model_config, dict):
        raise EspressivoError(f"{path}/config.json: 'model' must be a mapping of settings")
    tokenizer = from_dict(config.get("tokenizer"))
    model_type = canonical(model_type)
    check_features(path, config, family(model_type))
    model = build_model(model_type, model_config)
    try:
        state = load_file(str(path / "model.safetensors"), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise EspressivoError(f"{path}/model.safetensors: cannot read the weights ({err})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that do not match the config's sizes
        detail = str(err).split("\n\t")[1] if "\n\t" in str(err) else str(err)
        raise EspressivoError(f"{path}: weights do not fit the config ({detail.strip()[:160]})") from None
    if set(missing) - set(getattr(model, "tied_weights", ())) or unexpected:
        raise EspressivoError(
            f"{path}: weights do not fit the config (missing {sorted(missing)[:3]}, unexpected {unexpected[:3]})"
        )
    model.to(torch.device(device)).eval()
    return Pretrained(model, tokenizer, model_type, path, config)


def check_features(path: Path, config: dict, entry) -> None:
    """Refuse, in one line, a checkpoint trained on score features other than the ones this espressivo computes
    (a checkpoint without a list predates it: its sizes are checked when its weights are loaded)."""
    stored = config.get("features")
    if stored is None or not entry.feature_names:
        return
    ours = list(entry.feature_names)
    if stored != ours:
        k = next((i for i, (a, b) in enumerate(zip(stored, ours, strict=False)) if a != b), min(len(stored), len(ours)))
        theirs = stored[k] if k < len(stored) else "nothing"
        mine = ours[k] if k < len(ours) else "nothing"
        raise EspressivoError(
            f"{path}: trained on other score features than this espressivo computes (column {k}: "
            f"{str(theirs)[:40]!r} there, {mine!r} here); use the espressivo it was trained with"
        )


def default_model_name() -> str:
    """The shipped language model ``espressivo generate`` uses: a card that says ``"default": true``, else the one
    whose card reports the fewest test bits per second of music (comparable across vocabularies, where nats per
    id are not)."""
    best, best_key = None, (float("inf"), float("inf"))
    for name in shipped_models():
        config = json.loads(
            (Path(str(resources.files("espressivo") / "checkpoints" / name)) / "config.json").read_text()
        )
        entry = FAMILIES.get(canonical(config.get("model_type")))
        if entry is None or entry.kind != "language":
            continue  # renderers are not language models
        evaluation = config.get("evaluation", {})
        if evaluation.get("default"):
            return name
        key = (evaluation.get("bits_per_second", float("inf")), evaluation.get("test_nll_nats_per_token", float("inf")))
        if key < best_key or best is None:
            best, best_key = name, key
    if best is None:
        raise EspressivoError("no shipped model in this installation")
    return best
