"""Tiny models: shapes, learning, checkpoints, KV cache, exact resume after SIGKILL, DDP on 2 CPU processes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from espressivo import EspressivoError
from espressivo.models import build_model
from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.tokenizers import from_name

KINDS = ["perfrnn", "transformer"]


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_loss(kind):
    torch.manual_seed(0)
    model = build_model(kind, "tiny")
    x = torch.randint(0, 413, (3, 17))
    logits, loss = model(x, x)
    assert logits.shape == (3, 17, 416) and loss.ndim == 0
    assert model(x)[1] is None
    padded = x.clone()
    padded[:, 10:] = 413  # PAD targets are ignored
    _, partial = model(x, padded)
    assert torch.isfinite(partial)


@pytest.mark.parametrize("kind", KINDS)
def test_overfits_one_batch(kind):
    torch.manual_seed(0)
    model = build_model(kind, "tiny", dropout=0.0)
    x = torch.randint(0, 413, (4, 32))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        _, loss = model(x[:, :-1], x[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.2 * first


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_gives_identical_logits(kind, tmp_path):
    torch.manual_seed(1)
    model = build_model(kind, "tiny").eval()
    save_checkpoint(tmp_path / "ckpt", model, kind, from_name("performance-rnn"))
    loaded = load_pretrained(tmp_path / "ckpt")
    x = torch.randint(0, 413, (2, 20))
    assert torch.equal(model(x)[0], loaded.model(x)[0])
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == kind and config["tokenizer"]["tokenizer"] == "performance-rnn"


def test_bad_checkpoints_are_refused(tmp_path):
    with pytest.raises(EspressivoError):
        load_pretrained(tmp_path / "missing")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text("{}")
    with pytest.raises(EspressivoError):
        load_pretrained(tmp_path / "c")
    model = build_model("perfrnn", "tiny")
    save_checkpoint(tmp_path / "d", model, "perfrnn", from_name("performance-rnn"))
    (tmp_path / "d" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(EspressivoError):
        load_pretrained(tmp_path / "d")


@pytest.mark.parametrize("kv_heads", [None, 1])  # the preset's heads, and grouped-query attention
def test_kv_cache_matches_full_forward(kv_heads):
    from dataclasses import replace

    from espressivo.models.transformer import Transformer

    torch.manual_seed(2)
    model = build_model("transformer", "tiny").eval()
    if kv_heads:
        model = Transformer(replace(model.config, n_kv_head=kv_heads)).eval()
        assert model.config.n_head > kv_heads
    x = torch.randint(0, 413, (2, 40))
    full, _ = model(x)
    cache = model.new_cache(2, 64)
    parts = [model.step(x[:, :23], cache)[0]]
    for i in range(23, 40):
        parts.append(model.step(x[:, i : i + 1], cache)[0])
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


# ------------------------------------------------------------------ the training engine
@pytest.fixture(scope="module")
def corpus(tmp_path_factory, asap_root):
    from espressivo.data.prepare import list_sources, prepare

    sources = list_sources("asap", asap_root.parent)
    picked = [s for s in sources if s.split == "validation"][:2] + [s for s in sources if s.split == "train"][:6]
    out = tmp_path_factory.mktemp("corpus")
    prepare(picked, from_name("performance-rnn"), out, workers=1, progress=False)
    return out


def write_config(path, corpus, out, **extra):
    settings = {"data": str(corpus), "out": str(out), "model_type": "transformer", "model": "tiny", "seq_len": 64,
                "batch_size": 4, "max_steps": 30, "warmup_steps": 5, "eval_every": 10, "eval_windows": 4,
                "save_every": 5, "log_every": 1, "threads": 1} | extra  # fmt: skip
    path.write_text("\n".join(f"{k}: {v}" for k, v in settings.items()))
    return path


def run_train(config, *extra, env=None):
    return subprocess.run([sys.executable, "-m", "espressivo", "train", str(config), *extra],
                          capture_output=True, text=True, timeout=600, env=env, check=False)  # fmt: skip


def losses(out):
    rows = (out / "log.csv").read_text().splitlines()[1:]
    return [(int(r.split(",")[0]), r.split(",")[2]) for r in rows]


def test_resume_after_sigkill_reproduces_the_loss_curve(corpus, tmp_path):
    straight = write_config(tmp_path / "a.yaml", corpus, tmp_path / "a")
    assert run_train(straight).returncode == 0
    reference = losses(tmp_path / "a")
    assert len(reference) == 30
    killed = write_config(tmp_path / "b.yaml", corpus, tmp_path / "b")
    process = subprocess.Popen([sys.executable, "-m", "espressivo", "train", str(killed)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    log = tmp_path / "b" / "log.csv"
    deadline = time.time() + 300
    while time.time() < deadline:
        if (
            (tmp_path / "b" / "last" / "state.json").exists()
            and log.exists()
            and len(log.read_text().splitlines()) > 13
        ):
            break
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert len(log.read_text().splitlines()) - 1 < 30, "the run finished before it could be killed"
    result = run_train(killed, "--resume")
    assert result.returncode == 0, result.stderr
    assert losses(tmp_path / "b") == reference


def test_a_kill_between_the_checkpoint_renames_is_recovered(tmp_path):
    """Killed after `last` became `last.old` and before `.last.tmp` became `last`: the newer one comes back."""
    from espressivo.train.engine import recover_dir

    needs = ("model.safetensors", "config.json", "state.json", "optimizer.pt")
    for name, step in ((".last.tmp", "2"), ("last.old", "1")):
        (tmp_path / name).mkdir()
        for file in needs:
            (tmp_path / name / file).write_text(step)
    assert recover_dir(tmp_path / "last", needs)
    assert (tmp_path / "last" / "state.json").read_text() == "2" and (tmp_path / "last.old").exists()
    (tmp_path / "last").rename(tmp_path / "gone")  # only the old one left, and a half-written tmp
    (tmp_path / ".last.tmp").mkdir()
    (tmp_path / ".last.tmp" / "model.safetensors").write_text("partial")
    assert recover_dir(tmp_path / "last", needs)
    assert (tmp_path / "last" / "state.json").read_text() == "1"
    assert not recover_dir(tmp_path / "nothing", needs)


def test_ddp_two_cpu_processes_stay_in_sync(corpus, tmp_path):
    config = write_config(tmp_path / "d.yaml", corpus, tmp_path / "d", max_steps=4, eval_every=4, save_every=4)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "espressivo",
         "train", str(config)], capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert report["world_size"] == 2 and report["ranks_in_sync"] and report["step"] == 4


def test_init_from_a_checkpoint(corpus, tmp_path):
    first = write_config(tmp_path / "a.yaml", corpus, tmp_path / "a", max_steps=10, eval_every=10)
    assert run_train(first).returncode == 0
    second = write_config(
        tmp_path / "b.yaml", corpus, tmp_path / "b", max_steps=2, init_from=str(tmp_path / "a" / "best")
    )
    assert run_train(second).returncode == 0
    scratch = write_config(tmp_path / "c.yaml", corpus, tmp_path / "c", max_steps=2)
    assert run_train(scratch).returncode == 0
    assert float(losses(tmp_path / "b")[0][1]) < float(losses(tmp_path / "c")[0][1])
    broken = write_config(tmp_path / "d.yaml", corpus, tmp_path / "d", init_from=str(tmp_path / "nowhere"))
    result = run_train(broken)
    assert result.returncode == 2 and "no model" in result.stderr and "nowhere" in result.stderr


def test_bad_training_configs(tmp_path, capsys):
    from espressivo.cli import main

    (tmp_path / "c.yaml").write_text("lr: [1, 2]\n")
    assert main(["train", str(tmp_path / "c.yaml")]) == 2
    (tmp_path / "d.yaml").write_text("data: x\nbogus: 1\n")
    assert main(["train", str(tmp_path / "d.yaml")]) == 2
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    (tmp_path / "e.yaml").write_text("data: x\n")
    assert main(["train", str(tmp_path / "e.yaml"), "--max-steps"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4


@pytest.mark.parametrize(
    "line, message",
    [("score_tempo: fast", "score_tempo must be written or performed"),
     ("chord_timing: signed", "unknown training settings: chord_timing")],
)  # fmt: skip
def test_bad_render_settings_are_refused(tmp_path, capsys, line, message):
    from espressivo.cli import main

    (tmp_path / "f.yaml").write_text(f"data: x\ntask: render\nmodel_type: renderer\n{line}\n")
    assert main(["train", str(tmp_path / "f.yaml")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ generation
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(path, build_model("transformer", "tiny").eval(), "transformer", from_name("performance-rnn"))
    return path


def test_generation_is_seeded_and_valid(tiny_checkpoint, tmp_path):
    from espressivo import read_midi
    from espressivo.cli import main
    from espressivo.generate import SamplingConfig, generate_ids

    pretrained = load_pretrained(tiny_checkpoint)
    a = generate_ids(
        pretrained.model, pretrained.tokenizer, SamplingConfig(seed=5, top_k=50), max_tokens=40, variations=2
    )
    b = generate_ids(
        pretrained.model, pretrained.tokenizer, SamplingConfig(seed=5, top_k=50), max_tokens=40, variations=2
    )
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)) and len(a) == 2
    other = generate_ids(
        pretrained.model, pretrained.tokenizer, SamplingConfig(seed=6, top_k=50), max_tokens=40, variations=2
    )
    assert not np.array_equal(a[0], other[0]) and not np.array_equal(a[0], a[1])  # seeds and variations differ
    beam = generate_ids(pretrained.model, pretrained.tokenizer, SamplingConfig(beam_size=3), max_tokens=20)
    assert len(beam) == 1 and len(beam[0]) == 20
    long = generate_ids(pretrained.model, pretrained.tokenizer, SamplingConfig(seed=1), max_tokens=700)  # > context
    assert len(long[0]) == 700
    out = tmp_path / "g.mid"
    assert main(["generate", "--model", str(tiny_checkpoint), "--seconds", "3", "-o", str(out), "--seed", "2"]) == 0
    read_midi(out, allow_empty=True)
    prompt = tmp_path / "p.mid"
    from tests.conftest import EXAMPLES

    prompt.write_bytes((EXAMPLES / "etude_performance.mid").read_bytes())
    assert main(["continue", str(prompt), "--prompt-seconds", "4", "--seconds", "2", "--model", str(tiny_checkpoint),
                 "-o", str(tmp_path / "c.mid")]) == 0  # fmt: skip
    continued = read_midi(tmp_path / "c.mid")
    assert continued.end_sec >= 4.0


def test_sampling_filters():
    from espressivo.generate.draw import SamplingConfig, filter_logits

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, SamplingConfig(top_k=2))[0, 2:]).all()
    kept = torch.isfinite(filter_logits(logits, SamplingConfig(top_p=0.7))[0]).tolist()
    assert kept == [True, True, False, False]
    kept = torch.isfinite(filter_logits(logits, SamplingConfig(min_p=0.2))[0]).tolist()
    assert kept == [True, True, True, False]
    with pytest.raises(EspressivoError):
        SamplingConfig(temperature=0)


def test_evaluate_lm_report(tiny_checkpoint, tmp_path, asap_root):
    from espressivo.cli import main

    report_path = tmp_path / "r.json"
    argv = ["evaluate", "lm", "--model", str(tiny_checkpoint), "--limit", "2", "--samples", "2", "--pieces", "1"]
    argv += ["--seeds", "1", "--continue-seconds", "2", "--sample-seconds", "3", "--json", str(report_path)]
    argv += ["--plot", str(tmp_path / "r.png"), "--rolls", str(tmp_path / "rolls.png"), "--root", str(asap_root.parent)]
    argv += ["--markdown", str(tmp_path / "r.md")]
    assert main(argv) == 0
    report = json.loads(report_path.read_text())
    assert report["nll_nats_per_token"] > 0 and report["bits_per_second"] > 0 and report["context"] == 512
    assert list(report["nll_by_position"])[:2] == ["0-64", "64-128"]
    for part in ("improvisation", "continuation"):
        assert report[part]["generated"]["count"] >= 1 and report[part]["real"]["count"] >= 1
        assert 0 <= report[part]["ioi_js"] <= 1
    assert "infill" not in report  # a 413-event model cannot fill gaps
    assert "pitch-class r with the prompt" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "r.png").stat().st_size > 10_000 and (tmp_path / "rolls.png").stat().st_size > 10_000


def test_melody_lead_on_hand_built_groups():
    from espressivo import Performance
    from espressivo.evaluate import melody_lead

    # two groups spanning C4: melody first by 15 ms in one, bass first in the other; one group above C4 only
    perf = Performance.from_arrays([0.0, 0.015, 1.015, 1.0, 2.0, 2.01], [0.5] * 6, [72, 48, 72, 48, 72, 76], [64] * 6)
    assert melody_lead([perf]) == {"groups": 2, "upper_first_share": 0.5}


def test_shipped_models_load_offline_and_generate(tmp_path):
    from espressivo.cli import main
    from espressivo.models.checkpoint import default_model_name, shipped_models

    assert {"transformer-small", "perfrnn-small"} <= set(shipped_models())
    assert default_model_name() == "transformer-small"  # the lower test NLL on its card
    for name in ("transformer-small", "perfrnn-small"):
        pretrained = load_pretrained(name)
        card = pretrained.config
        assert card["evaluation"]["split"] == "test" and card["dtype"] == "float16"
        size = (pretrained.path / "model.safetensors").stat().st_size
        assert size <= 25 * 2**20
    out = tmp_path / "g.mid"
    assert main(["generate", "--seconds", "4", "-o", str(out), "--seed", "3"]) == 0
    from espressivo import read_midi

    perf = read_midi(out)
    assert len(perf) > 5 and 3.0 <= perf.end_sec <= 8.5 and perf.notes["duration_sec"].max() <= 4.0 + 1e-3


def test_draw_keeps_to_the_filters_and_is_seeded():
    from espressivo.generate.draw import draw

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    counts = lambda **kw: torch.bincount(draw(logits, torch.Generator().manual_seed(1), **kw), minlength=4)  # noqa: E731
    assert counts(top_k=2)[2:].sum() == 0 and counts(top_p=0.7)[2:].sum() == 0 and counts(min_p=0.2)[3] == 0
    free = counts() / 4000.0
    assert torch.allclose(free, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.03)  # Gumbel-max: the softmax
    assert counts(temperature=0.05)[0] == 4000
    a, b = (draw(logits[:50], torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a, b)


def test_beam_search_samples_its_branches_instead_of_collapsing():
    """An argmax beam over a model that prefers one event repeats it for ever; the stochastic beam keeps the
    likeliest of sampled continuations."""
    from espressivo.generate.sampling import SamplingConfig, generate_ids

    class Loop(torch.nn.Module):  # a model whose likeliest next token is always token 5
        config = type("C", (), {"max_seq_len": 10_000})()

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def new_cache(self, batch, length):
            return {"pos": 0, "layers": []}

        def step(self, ids, cache):
            logits = torch.zeros(ids.size(0), ids.size(1), 8)
            logits[..., 5] = 1.0
            return logits, {"pos": cache["pos"] + ids.size(1), "layers": []}

        @staticmethod
        def reorder_state(cache, index):
            return cache

    tok = type("T", (), {"start_ids": lambda self: np.array([0]), "time_advance": lambda self, t: np.zeros(len(t))})()
    out = generate_ids(Loop(), tok, SamplingConfig(beam_size=3, seed=2), max_tokens=40)
    assert len(out) == 1 and len(out[0]) == 40
    assert 0.2 < np.mean(out[0] == 5) < 0.6  # e / (e + 7): sampled, not 40 fives
    again = generate_ids(Loop(), tok, SamplingConfig(beam_size=3, seed=2), max_tokens=40)
    assert np.array_equal(out[0], again[0])


def test_continue_keeps_the_prompt_as_played_with_its_pedal(tmp_path):
    """Performance RNN's vocabulary has no pedal: the prompt must still come back with its pedal and notes, and a
    pedal held at the prompt's end is lifted there."""
    from espressivo.cli import main
    from espressivo.core import SUSTAIN
    from espressivo.io import read_midi
    from tests.conftest import EXAMPLES

    prompt = read_midi(EXAMPLES / "etude_performance.mid").slice(0, 6)
    assert (prompt.controls["controller"] == SUSTAIN).sum() >= 2
    out = tmp_path / "c.mid"
    assert main(["continue", str(EXAMPLES / "etude_performance.mid"), "--prompt-seconds", "6", "--seconds", "3",
                 "--model", "perfrnn-small", "-o", str(out)]) == 0  # fmt: skip
    played = read_midi(out)
    early = played.notes[played.notes["onset_sec"] < 5.0]
    expected = prompt.notes[prompt.notes["onset_sec"] < 5.0]
    assert np.array_equal(early["pitch"], expected["pitch"])
    assert np.allclose(early["onset_sec"], expected["onset_sec"], atol=2e-3)
    pedal = played.controls[played.controls["controller"] == SUSTAIN]
    before = pedal[pedal["time_sec"] < 5.0]
    assert len(before) == (prompt.controls["time_sec"][prompt.controls["controller"] == SUSTAIN] < 5.0).sum()
    assert pedal["value"][-1] < 64  # not left down for the continuation


@pytest.mark.parametrize("step", [-5, 10**30, 2.5, "7", True])
def test_a_resume_state_with_an_impossible_step_is_refused(corpus, tmp_path, capsys, step):
    from espressivo.cli import main

    out = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", corpus, out, max_steps=2, eval_every=100, save_every=1, seq_len=16)
    argv = ["train", str(config)]
    assert main(argv) == 0
    state = json.loads((out / "last" / "state.json").read_text())
    state["step"] = step
    (out / "last" / "state.json").write_text(json.dumps(state))
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot resume" in err
