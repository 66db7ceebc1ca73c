"""The README's Python lines run as written (file names pointed at the bundled example, the data loop cut to one
performance, a 30 s generation cut to 2 s)."""

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch, asap_root):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 5
    shutil.copy(EXAMPLES / "etude_performance.mid", tmp_path / "performance.mid")
    shutil.copy(EXAMPLES / "etude_alignment.tsv.gz", tmp_path / "note_alignment.tsv.gz")
    shutil.copy(EXAMPLES / "etude.musicxml", tmp_path / "score.musicxml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ESPRESSIVO_DATA", str(asap_root.parent))
    namespace: dict = {}
    for block in blocks:
        # the bundled alignment is to the written score ((n)ASAP's are to the unfolded one, ids "n5-1")
        code = block.replace('"score.mxl", unfold=True', '"score.musicxml", unfold=False')
        code = code.replace("seconds=30)", "seconds=2)")
        code = code.replace('asap.performances(split="test", robust_only=True):',
                            'list(asap.performances(split="test", robust_only=True))[:1]:')  # fmt: skip
        saved = {k: namespace[k] for k in ("perf", "score", "alignment") if k in namespace}
        try:
            exec(compile(code, "README.md", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message names the failing block
            pytest.fail(f"README block failed: {type(err).__name__}: {err}\n{block}")
        if "AsapDataset" in block:  # the data block rebinds perf/score/alignment to an (n)ASAP piece
            namespace |= saved
    assert (tmp_path / "excerpt.mid").is_file() and (tmp_path / "editable.mid").is_file()
