"""`espressivo data prepare`, token shards, random and deterministic windows."""

import json

import numpy as np
import pytest

from espressivo.cli import main
from espressivo.data.augment import Augmentation
from espressivo.data.prepare import list_sources, prepare
from espressivo.data.tokens import RandomWindows, TokenCorpus
from espressivo.tokenizers import from_name


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, asap_root):
    sources = list_sources("asap", asap_root.parent)
    picked = [s for s in sources if s.split != "train"][:6] + [s for s in sources if s.split == "train"][:10]
    out = tmp_path_factory.mktemp("prep")
    index = prepare(picked, from_name("performance-rnn"), out, workers=2, files_per_shard=4, progress=False)
    return out, index, picked


def test_index_and_shards(small_corpus):
    out, index, picked = small_corpus
    assert index["files"] == len(picked) and index["shards"] == 4 and index["shards_reused"] == 0
    tok = from_name("performance-rnn")
    corpus = TokenCorpus(out)
    entry = corpus.entries[0]
    assert {"composer", "performer", "split", "duration_sec", "offset", "length"} <= set(entry)
    from espressivo import read_midi

    assert np.array_equal(corpus.tokens(entry), tok.encode(read_midi(entry["path"])))


def test_rerun_skips_finished_shards_and_is_deterministic(small_corpus):
    out, index, picked = small_corpus
    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    again = prepare(picked, from_name("performance-rnn"), out, workers=1, files_per_shard=4, progress=False)
    assert again["shards_reused"] == 4 and again["tokens"] == index["tokens"]
    (out / "shards" / "00002.json").unlink()  # an interrupted run: that shard is redone, identically
    third = prepare(picked, from_name("performance-rnn"), out, workers=1, files_per_shard=4, progress=False)
    assert third["shards_reused"] == 3
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == before
    # other settings: nothing is reused
    other = prepare(
        picked, from_name("performance-rnn", sustain=True), out, workers=1, files_per_shard=4, progress=False
    )
    assert other["shards_reused"] == 0


def test_random_windows_are_seeded_and_augmented(small_corpus):
    out, _, _ = small_corpus
    corpus = TokenCorpus(out)
    plain = RandomWindows(corpus, "train", 256)
    a, b = plain.sample(np.random.default_rng(4)), plain.sample(np.random.default_rng(4))
    assert len(a) == 256 and np.array_equal(a, b)
    augmented = RandomWindows(corpus, "train", 256, Augmentation(transpose=4, stretch=0.1))
    c = augmented.sample(np.random.default_rng(4))
    assert len(c) == 256 and c.max() < len(corpus.tokenizer.vocab)
    dataset = augmented.torch_dataset(seed=1)
    batch = [x for _, x in zip(range(3), dataset, strict=False)]
    assert all(x.shape == (256,) for x in batch)


def test_validation_windows_cover_every_token(small_corpus):
    out, _, _ = small_corpus
    corpus = TokenCorpus(out)
    windows = list(corpus.windows("validation", 500))
    total = sum(e["length"] for e in corpus.split("validation"))
    pad = corpus.tokenizer.pad_id
    assert sum(int(np.count_nonzero(w != pad)) for w in windows) == total
    assert all(len(w) == 500 for w in windows)


def test_cli_prepare_folder(tmp_path, capsys):
    from tests.conftest import EXAMPLES

    (tmp_path / "midi").mkdir()
    (tmp_path / "midi" / "a.mid").write_bytes((EXAMPLES / "etude_performance.mid").read_bytes())
    (tmp_path / "midi" / "broken.mid").write_bytes(b"nope")
    argv = ["data", "prepare", "--source", str(tmp_path / "midi"), "--tokenizer", "note", "--out", str(tmp_path / "o")]
    assert main([*argv, "--tokenizer-config", "time_step_ms=10,velocity_bins=12", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == 1 and summary["failed"] == 1 and summary["notes"] == 84
    assert main([*argv, "--tokenizer-config", "nonsense"]) == 2


def test_bad_output_and_corpus_folders(tmp_path, capsys):
    from espressivo import EspressivoError

    (tmp_path / "file").write_text("x")
    assert main(["data", "prepare", "--source", str(tmp_path), "--out", str(tmp_path / "file")]) == 2
    assert main(["data", "pairs", "--out", str(tmp_path / "file")]) == 2
    assert main(["data", "prepare", "--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert main(["data", "prepare", "--tokenizer", "nope", "--out", str(tmp_path / "o")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("espressivo: error:") for line in errors)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "index.json").write_text("{broken")
    with pytest.raises(EspressivoError):
        TokenCorpus(tmp_path / "corpus")


def test_pool_workers_die_with_their_parent(tmp_path):
    """A killed `data prepare` leaves no worker running on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, time\n"
        "from espressivo.data.workers import pool\n"
        "def pid(_):\n"
        "    time.sleep(0.2)\n"
        "    return os.getpid()\n"
        "if __name__ == '__main__':\n"
        "    p = pool(2)\n"
        "    print(' '.join(str(x) for x in sorted(set(p.map(pid, range(6))))), flush=True)\n"
        "    p.submit(time.sleep, 60)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(x) for x in parent.stdout.readline().split()]
    assert workers
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    alive = workers
    while alive and time.time() < deadline:
        alive = [w for w in workers if os.path.exists(f"/proc/{w}") and "Z" not in _state(w)]
        time.sleep(0.1)
    assert not alive, f"workers {alive} outlived their parent"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0]
    except OSError:
        return "Z"
