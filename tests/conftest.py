"""Shared fixtures.  The (n)ASAP and SUPRA data are read from ../shared/data (never copied here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ESPRESSIVO_DATA", ROOT.parent / "shared" / "data"))
EXAMPLES = ROOT / "src" / "espressivo" / "examples"


@pytest.fixture(scope="session")
def asap_root() -> Path:
    root = DATA / "asap"
    if not (root / "metadata.csv").is_file():
        pytest.skip(f"(n)ASAP not found at {root}")
    return root


@pytest.fixture(scope="session")
def supra_root() -> Path:
    root = DATA / "supra"
    if not root.is_dir():
        pytest.skip(f"SUPRA not found at {root}")
    return root


@pytest.fixture(scope="session")
def asap(asap_root):
    from espressivo.data import AsapDataset

    return AsapDataset(asap_root, quiet=True)


@pytest.fixture(scope="session")
def asap_midi_files(asap_root) -> list[Path]:
    return sorted(asap_root.rglob("*.mid"))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny, untrained renderer saved as a checkpoint folder (seed 0)."""
    import torch

    from espressivo.features.slots import render_tokenizer, slot_sizes
    from espressivo.models import build_model
    from espressivo.models.checkpoint import save_checkpoint

    tok = render_tokenizer()
    torch.manual_seed(0)
    model = build_model("renderer", "tiny", slot_sizes=slot_sizes(tok)).eval()
    return save_checkpoint(tmp_path_factory.mktemp("renderer"), model, "renderer", tok)
