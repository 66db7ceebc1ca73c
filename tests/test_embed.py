"""Performance embeddings: NT-Xent, slicing and packing, file vectors, probes, the CLI and its bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from espressivo.cli import main
from espressivo.core import Performance
from espressivo.data.performances import Item, SliceSampler, chunk_spans, note_slice, pack
from espressivo.embed.classify import LinearProbe, accuracy, macro_f1
from espressivo.embed.files import EmbeddingIndex, FileEmbedder
from espressivo.embed.stats import STATISTICS, performance_statistics
from espressivo.evaluate.embed import retrieval
from espressivo.io.midi import write_midi
from espressivo.models import build_model
from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.models.embedder import nt_xent
from espressivo.tokenizers import from_name


def scale(low: int, notes: int = 40, step: float = 0.25, velocity: int = 60) -> Performance:
    """A rising and falling line from ``low``: ``notes`` notes ``step`` seconds apart."""
    pitch = low + np.abs((np.arange(notes) % 16) - 8)
    onset = np.arange(notes) * step
    return Performance.from_arrays(onset, np.full(notes, step * 0.9), pitch, velocity)


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    torch.manual_seed(0)
    tok = from_name("performance-rnn")
    model = build_model("embedder", "tiny", vocab_size=len(tok.vocab), pad_id=tok.pad_id, embed_dim=16).eval()
    return save_checkpoint(tmp_path_factory.mktemp("embedder"), model, "embedder", tok)


# ---------------------------------------------------------------- NT-Xent
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_nt_xent_by_hand(temperature):
    # two pairs of orthogonal unit vectors: each row sees its positive at cosine 1 and two negatives at 0
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    loss = nt_xent(z, torch.tensor([2, 3, 0, 1]), temperature)
    expected = math.log(2 + math.exp(1 / temperature)) - 1 / temperature
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_nt_xent_counts_a_hard_negative():
    # row 0's negative (row 1) sits at cosine 0.6: -log(e^1 / (e^1 + e^0.6)) for rows 0 and 2 alike
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0], [0.6, 0.8]])
    loss = nt_xent(z, torch.tensor([2, 3, 0, 1]), 1.0)
    row0 = -math.log(math.e / (math.e + 2 * math.exp(0.6)))  # negatives: rows 1 and 3, both at 0.6
    assert float(loss) == pytest.approx(row0, rel=1e-6)  # every row is in the same position


# ---------------------------------------------------------------- slicing and packing
def test_chunk_spans_exact():
    assert chunk_spans(10, 4) == [(0, 3), (3, 4), (7, 3)]
    assert chunk_spans(10, 4, max_chunks=2) == [(0, 3), (7, 3)]
    assert chunk_spans(3, 160) == [(0, 3)]
    assert chunk_spans(0, 160) == []


def test_note_slice_rebases():
    perf = scale(60, notes=10)
    part = note_slice(perf.notes, 4, 3)
    assert len(part) == 3
    np.testing.assert_allclose(part.notes["onset_sec"], [0.0, 0.25, 0.5])
    np.testing.assert_array_equal(part.notes["pitch"], perf.notes["pitch"][4:7])


def test_pack_ends_each_row_with_eos():
    tok = from_name("performance-rnn")
    one = Performance.from_arrays([0.0], [0.5], [60], 64)
    two = Performance.from_arrays([0.0, 0.5], [0.5, 0.5], [60, 62], 64)
    idx, last = pack(tok, [one, two], max_tokens=64)
    vel = tok.vocab["VELOCITY"].start + 15  # velocity 64 -> bin 16 of 32 (id offset 15)
    assert tok.vocab.tokens(idx[0, : last[0] + 1]) == [
        "VELOCITY_16",
        "NOTE_ON_60",
        "TIME_SHIFT_62",
        "NOTE_OFF_60",
        "EOS",
    ]
    assert idx[0, 0] == vel and last.tolist() == [4, 7]
    assert (idx[0, last[0] + 1 :] == tok.pad_id).all() and idx[1, 7] == tok.eos_id
    idx, last = pack(tok, [two], max_tokens=4)  # cut to 3 tokens + EOS
    assert last.tolist() == [3] and idx[0, 3] == tok.eos_id


def test_pairs_are_two_views_of_one_performance_of_distinct_pieces():
    # four performances, pitches 30/50/70/90 apart: each view's pitches tell whose it is
    items = [Item(f"f{i}", f"f{i}.mid", "train", "", f"piece{i % 3}", scale(30 + 20 * i, 60).notes) for i in range(4)]
    sampler = SliceSampler(items, 8, 20)
    views = sampler.pairs(np.random.default_rng(0), batch=8)
    n = len(views) // 2
    assert n == 3  # pieces 0, 1, 2: f0 and f3 share piece0, never both in one batch
    owner = [int((v.notes["pitch"].min() - 30) // 20) for v in views]
    assert owner[:n] == owner[n:] and len({i % 3 for i in owner[:n]}) == n
    assert all(8 <= len(v) <= 20 for v in views)


# ---------------------------------------------------------------- file vectors
def test_embedding_does_not_depend_on_the_batch(tiny_embedder):
    embedder = FileEmbedder.load(str(tiny_embedder), chunk_notes=16, precision="float32")
    a, b, c = scale(40, 50), scale(60, 7, velocity=90), scale(70, 33, 0.1)
    alone = embedder.embed([a])
    mixed = embedder.embed([b, a, c])
    np.testing.assert_allclose(mixed[1], alone[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(mixed, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(mixed[0], mixed[1], atol=1e-3)


def test_embedder_save_load_is_exact(tiny_embedder, tmp_path):
    pretrained = load_pretrained(tiny_embedder)
    again = save_checkpoint(tmp_path / "again", pretrained.model, "embedder", pretrained.tokenizer)
    reloaded = load_pretrained(again)
    for (name, p), (_, q) in zip(
        pretrained.model.state_dict().items(), reloaded.model.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), name
    perf = [scale(50, 30)]
    one = FileEmbedder(pretrained.model, pretrained.tokenizer, "a", precision="float32").embed(perf)
    two = FileEmbedder(reloaded.model, reloaded.tokenizer, "b", precision="float32").embed(perf)
    np.testing.assert_array_equal(one, two)


def test_index_round_trip_and_nearest(tmp_path):
    vectors = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)
    EmbeddingIndex(["a.mid", "b.mid", "c.mid"], vectors, "m", 160).save(tmp_path / "i.npz")
    index = EmbeddingIndex.load(tmp_path / "i.npz")
    assert index.names == ["a.mid", "b.mid", "c.mid"] and index.model == "m" and index.chunk_notes == 160
    ranked = index.nearest(np.array([1.0, 0.0], np.float32), k=2)
    assert [n for n, _ in ranked] == ["a.mid", "b.mid"]
    assert ranked[1][1] == pytest.approx(0.6)
    assert [n for n, _ in index.nearest(np.array([1.0, 0.0]), k=1, exclude={"a.mid"})] == ["b.mid"]


# ---------------------------------------------------------------- statistics, probes, metrics
def test_statistics_by_hand():
    # a C major triad (one onset group) then a single E half a second later
    perf = Performance.from_arrays([0.0, 0.0, 0.01, 0.5], [0.5, 0.5, 0.5, 0.5], [60, 64, 67, 64], [40, 60, 80, 60])
    f = dict(zip(STATISTICS, performance_statistics(perf.notes), strict=True))
    assert f["pitch_class_0"] == 0.25 and f["pitch_class_4"] == 0.5 and f["pitch_class_7"] == 0.25
    assert f["velocity_mean"] == 60 and f["notes_per_chord"] == 2.0
    assert f["log_ioi_mean"] == pytest.approx(math.log(0.5)) and f["log_ioi_std"] == 0
    assert f["notes_per_sec"] == pytest.approx(4 / 1.0)


def test_metrics_by_hand():
    truth, predicted = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert accuracy(truth, predicted) == 0.75
    assert macro_f1(truth, predicted) == pytest.approx((2 / 3 + 0.8) / 2)  # a: 2/(2+0+1); b: 4/(4+1+0)
    # two pieces of two performances each (A: rows 0, 1; B: rows 2, 3), on the unit circle:
    # query 0 ranks 1 first (AP 1); query 1 ranks 2, then 0 (AP 1/2); query 2 ranks 1, then 3 (AP 1/2);
    # query 3 ranks 2 first (AP 1)
    vectors = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]], np.float32)
    pieces = ["A", "A", "B", "B"]
    r = retrieval(vectors, pieces, vectors, pieces, own=np.arange(4))
    assert r["queries"] == 4 and r["recall_at_5"] == 1.0
    assert r["map"] == pytest.approx(0.75)
    # a query from outside the gallery at (0.6, 0.8), piece A: ranks B, A, B, A (AP (1/2 + 2/4) / 2)
    r = retrieval(np.array([[0.6, 0.8]]), ["A"], vectors[[3, 1, 2, 0]], ["B", "A", "B", "A"])
    assert r["map"] == pytest.approx(0.5)


def test_probe_separates_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (20, 3)), rng.normal(2, 1, (20, 3))])
    labels = ["low"] * 20 + ["high"] * 20
    probe = LinearProbe.fit(x, labels)
    assert probe.predict(x)[0] == labels
    probe.save(tmp_path / "p", embedder="m")
    again = LinearProbe.load(tmp_path / "p")
    np.testing.assert_allclose(again.probabilities(x), probe.probabilities(x), atol=1e-5)
    assert again.meta["embedder"] == "m" and again.classes == ["high", "low"]


# ---------------------------------------------------------------- CLI round trips
@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """Six low, slow lines and six high, fast ones, with a labels CSV (two files of each held out)."""
    folder = tmp_path_factory.mktemp("labelled")
    rows = ["file,label,split"]
    for i in range(6):
        for label, low, step in (("low", 30 + i, 0.4), ("high", 80 + i, 0.1)):
            name = f"{label}{i}.mid"
            write_midi(scale(low, 60 + 5 * i, step, velocity=50 + 5 * i), folder / name)
            rows.append(f"{name},{label},{'validation' if i >= 4 else 'train'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_embed_and_similar(tiny_embedder, labelled_folder, tmp_path, capsys):
    index = tmp_path / "e.npz"
    assert main(["embed", str(labelled_folder), "-o", str(index), "--model", str(tiny_embedder)]) == 0
    table = EmbeddingIndex.load(index)
    assert len(table.names) == 12 and table.vectors.shape == (12, 16)
    capsys.readouterr()
    assert main(["similar", str(labelled_folder / "low0.mid"), "--index", str(index), "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("low0.mid" not in line for line in lines)  # the query itself is left out
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def test_classify_probe_train_predict(tiny_embedder, labelled_folder, tmp_path, capsys):
    probe = tmp_path / "probe"
    argv = ["classify", "train", "--labels", str(labelled_folder / "labels.csv"), "-o", str(probe)]
    assert main([*argv, "--model", str(tiny_embedder)]) == 0
    assert '"validation_files": 4' in capsys.readouterr().out
    files = [str(labelled_folder / f"{label}{i}.mid") for label in ("low", "high") for i in range(4)]
    assert main(["classify", "predict", *files, "--classifier", str(probe)]) == 0
    predicted = [line.split("\t")[0] for line in capsys.readouterr().out.strip().splitlines()]
    assert predicted == ["low"] * 4 + ["high"] * 4  # the training files, linearly separable


def test_classify_finetune_train_predict(tiny_embedder, labelled_folder, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["classify", "train", "--labels", str(labelled_folder / "labels.csv"), "-o", str(run)]
    assert main([*argv, "--method", "finetune", "--steps", "2", "--model", str(tiny_embedder)]) == 0
    capsys.readouterr()
    assert load_pretrained(run / "best").model.config.classes == ("high", "low")
    assert main(["classify", "predict", str(labelled_folder), "--classifier", str(run / "best"), "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 12 and all(sum(r["probabilities"].values()) == pytest.approx(1) for r in rows)


def test_contrastive_training_steps(tiny_embedder, labelled_folder, tmp_path):
    from espressivo.train.engine import TrainConfig, train

    config = TrainConfig(data=str(labelled_folder), out=str(tmp_path / "run"), model_type="embedder",
                         model="tiny", model_overrides={"embed_dim": 16}, init_from=str(tiny_embedder),
                         seq_len=256, batch_size=4, min_notes=16, max_notes=32, max_steps=3, eval_every=3,
                         eval_windows=8, warmup_steps=1, lr=1e-3)  # fmt: skip
    result = train(config)
    assert result["step"] == 3 and math.isfinite(result["best_val_loss"])
    assert load_pretrained(tmp_path / "run" / "best").model_type == "embedder"


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "argv",
    [
        ["embed", "{bad}"],
        ["embed", "{missing}"],
        ["similar", "{bad}", "--index", "{bad}"],
        ["similar", "{good}", "--index", "{bad}"],
        ["classify", "predict", "{good}", "--classifier", "{tmp}"],
        ["classify", "train", "--labels", "{bad}"],
        ["classify", "train"],
        ["embed", "{good}", "--max-chunks", "-1"],
        ["evaluate", "embed", "--max-chunks", "-1"],
        ["evaluate", "embed", "--finetuned", "{embedder}"],  # not a classifier: refused before any work
        ["evaluate", "embed", "--model", "{missing}"],
    ],
)
def test_bad_input_is_one_line_exit_2(argv, tiny_embedder, labelled_folder, tmp_path, capsys):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd not really a midi file")
    values = {"bad": bad, "missing": tmp_path / "nope.mid", "good": labelled_folder / "low0.mid", "tmp": tmp_path,
              "embedder": tiny_embedder}  # fmt: skip
    argv = [a.format(**values) for a in argv]
    if argv[0] == "embed":
        argv += ["--model", str(tiny_embedder), "-o", str(tmp_path / "e.npz")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err


def test_bad_files_in_a_folder_are_skipped(tiny_embedder, labelled_folder, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.mid").write_bytes(b"\x00" * 100)
    write_midi(scale(50), folder / "fine.mid")
    assert main(["embed", str(folder), "--model", str(tiny_embedder), "-o", str(tmp_path / "e.npz")]) == 0
    assert "skipped 1 file(s)" in capsys.readouterr().err
    assert EmbeddingIndex.load(tmp_path / "e.npz").names == [str(folder / "fine.mid")]


# ---------------------------------------------------------------- real data
def test_asap_labels_follow_the_piece_split(asap_root):
    from espressivo.data.performances import composer_classes, labels_for, load_items

    items, failed = load_items("asap", asap_root.parent)
    assert not failed and len(items) > 1000
    assert composer_classes(items) == [
        "Bach", "Beethoven", "Chopin", "Haydn", "Liszt", "Mozart", "Rachmaninoff", "Ravel", "Schubert", "Schumann"
    ]  # fmt: skip
    pieces = {split: {i.piece for i in items if i.split == split} for split in ("train", "validation", "test")}
    assert not pieces["train"] & pieces["test"] and not pieces["train"] & pieces["validation"]
    periods = labels_for(items, "period")
    assert None not in periods
    assert {p for p, i in zip(periods, items, strict=True) if i.composer == "Bach"} == {"Baroque"}


def test_evaluation_report_on_a_synthetic_corpus():
    from espressivo.evaluate.embed import evaluate_representations, markdown_report

    rng = np.random.default_rng(0)
    notes = scale(60, 10).notes
    items, signal = [], []
    for c, composer in enumerate(["Bach", "Chopin", "Mozart"]):
        for piece in range(5):
            split = "test" if piece == 4 else "train"
            for perf in range(3):
                items.append(Item(f"{composer}{piece}-{perf}", "x.mid", split, composer, f"{composer}/{piece}", notes))
                signal.append(np.eye(3)[c] * 3)  # the composer, plus noise below
    signal = np.array(signal) + rng.normal(0, 0.5, (len(items), 3))
    noise = rng.normal(0, 1, (len(items), 3))
    test_rows = [i for i, item in enumerate(items) if item.split == "test"]
    report = evaluate_representations(items, {"signal": signal, "noise": noise}, snippets={"signal": signal[test_rows]})
    composer = report["tasks"]["composer"]
    assert composer["classes"] == ["Bach", "Chopin", "Mozart"] and composer["test_files"] == 9
    assert composer["results"]["signal"]["all"]["accuracy"] == 1.0
    assert composer["results"]["signal"]["10"]["accuracy"] > composer["results"]["noise"]["10"]["accuracy"]
    assert report["tasks"]["period"]["classes"] == ["Baroque", "Classical", "Romantic"]
    assert report["retrieval"]["signal"]["queries"] == 9 and report["test_pieces"] == 3
    assert report["snippet_retrieval"]["signal"]["queries"] == 9 and "noise" not in report["snippet_retrieval"]
    assert "| all | 1.000 / 1.000 |" in markdown_report(report)
