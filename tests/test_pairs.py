"""Aligned pairs for renderers: `espressivo data pairs` on a few (n)ASAP performances."""

import json

import numpy as np
import pytest

from espressivo.cli import main
from espressivo.data.pairs import PairWindows
from espressivo.features import EXPRESSION_DTYPE, SCORE_FEATURE_DTYPE


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory, asap_root):
    out = tmp_path_factory.mktemp("pairs")
    code = main(["data", "pairs", "--out", str(out), "--root", str(asap_root.parent), "--split", "test", "--limit", "6",
                 "--workers", "1", "--json"])  # fmt: skip
    assert code == 0
    return out


def test_pairs_are_written_and_reported(pairs_dir):
    summary = json.loads((pairs_dir / "pairs.json").read_text())
    assert summary["performances"] == 6 and summary["kept"] + summary["dropped"] == 6 and summary["kept"] >= 5
    entry = summary["entries"][0]
    with np.load(pairs_dir / f"{entry['key']}.npz") as data:
        assert data["score_features"].dtype == SCORE_FEATURE_DTYPE and data["expression"].dtype == EXPRESSION_DTYPE
        assert len(data["score_features"]) == len(data["expression"]) == entry["notes"]
        assert data["expression"]["matched"].sum() == entry["matched"]


def test_rerun_reuses(pairs_dir, asap_root, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in pairs_dir.glob("*.npz")}
    assert main(["data", "pairs", "--out", str(pairs_dir), "--root", str(asap_root.parent), "--split", "test",
                 "--limit", "6", "--workers", "1"]) == 0  # fmt: skip
    assert {p.name: p.stat().st_mtime_ns for p in pairs_dir.glob("*.npz")} == before


def test_windows_cover_each_performance(pairs_dir):
    windows = PairWindows(pairs_dir, "test", notes=200, hop=100)
    first = windows.entries[0]
    total = first["notes"]
    mine = [w for w in windows if w["name"] == first["name"]]
    assert all(len(w["score_ids"]) == min(200, total) for w in mine)
    covered = np.unique(np.concatenate([w["score_ids"] for w in mine]))
    assert len(covered) == len(np.unique(windows.load(first)["score_ids"]))
