"""Shared fixtures.  The (n)ASAP and SUPRA data are read from ../shared/data (never copied here)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from espressivo.core.score import MEASURE_DTYPE, TIME_SIGNATURE_DTYPE, Score, score_note_dtype

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
    model = build_model("notewise", "tiny", slot_sizes=slot_sizes(tok)).eval()
    return save_checkpoint(tmp_path_factory.mktemp("renderer"), model, "notewise", tok)


def small_pairs(out: Path, asap_root: Path, limit: int) -> Path:
    """Aligned pairs of the first ``limit`` test-split performances: the first is the validation split, the
    rest train (tiny training runs)."""
    import json

    from espressivo.cli import main

    assert main(["data", "pairs", "--out", str(out), "--root", str(asap_root.parent), "--split", "test",
                 "--limit", str(limit), "--workers", "1"]) == 0  # fmt: skip
    index = json.loads((out / "pairs.json").read_text())
    for i, entry in enumerate(index["entries"]):
        entry["split"] = "validation" if i == 0 else "train"
    (out / "pairs.json").write_text(json.dumps(index))
    return out


def tiny_score(onsets, durations, pitches):
    notes = np.zeros(len(onsets), score_note_dtype())
    notes["id"] = [f"n{i}" for i in range(len(onsets))]
    notes["onset_beat"] = notes["onset_quarter"] = onsets
    notes["duration_beat"] = notes["duration_quarter"] = durations
    notes["pitch"] = pitches
    ts = np.array([(0.0, 0.0, 4, 4)], TIME_SIGNATURE_DTYPE)
    measures = np.array([(0.0, 1), (4.0, 2)], MEASURE_DTYPE)
    return Score(notes, time_signatures=ts, measures=measures)
