"""Event models (``aria`` tokens): training windows as prompts are encoded, generation that never looks beyond
the trained context, continuation that keeps the prompt, filling a gap that keeps everything outside it."""

import numpy as np
import pytest
import torch

from espressivo import EspressivoError, Performance
from espressivo.core import SOFT, SUSTAIN
from espressivo.data.windows import EventWindows, Track
from espressivo.generate import SamplingConfig
from espressivo.models import build_model
from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.tokenizers import from_name

TOK = from_name("aria")


def scale(n=60, step=0.25, pedal=True):
    onset = np.arange(n) * step
    controls = [(t, SUSTAIN, 127 if k % 2 == 0 else 0) for k, t in enumerate(np.arange(0, n * step, 1.0) + 0.1)]
    return Performance.from_arrays(onset, np.full(n, 0.2), 48 + np.arange(n) % 24, 40 + np.arange(n) % 60,
                                   controls=controls if pedal else ())  # fmt: skip


@pytest.fixture(scope="module")
def event_checkpoint(tmp_path_factory):
    """A tiny untrained event model, trained (it says) on windows of 96 ids."""
    torch.manual_seed(0)
    model = build_model("transformer", "tiny", vocab_size=len(TOK.vocab), pad_id=TOK.pad_id, max_seq_len=512)
    path = tmp_path_factory.mktemp("events") / "tiny"
    return save_checkpoint(path, model.eval(), "transformer", TOK, extra={"train": {"seq_len": 96}})


def test_a_plain_window_is_the_music_from_a_note_with_the_pedal_stated():
    perf = scale()
    track = Track("t", "train", perf.notes, perf.controls)
    windows = EventWindows([track], TOK, 97)
    rng = np.random.default_rng(3)
    for _ in range(5):
        ids = windows.sample(rng)
        assert len(ids) == 97 and ids[0] == TOK.special("BOS")
        back = TOK.decode(ids[1:])
        # pitches repeat every 24 notes (6 s, three pedal cycles): any match is the same music from there
        k = int(np.nonzero(perf.notes["pitch"] == back.notes["pitch"][0])[0][0])
        start = float(perf.notes["onset_sec"][k])
        # the same notes, rebased to the window's first onset (0), on the 10-ms grid
        n = len(back) - 1  # the last note may be cut by the window's end
        ref = perf.slice(start, clip=False)
        assert np.array_equal(back.notes["pitch"][:n], ref.notes["pitch"][:n])
        assert np.allclose(back.notes["onset_sec"][:n], ref.notes["onset_sec"][:n], atol=0.005)
        # the pedal as it is at the window's start: down there, the window states it at 0
        down = perf.pedal_value_at([start])[0] >= 64
        assert (back.pedal_value_at([0.0])[0] >= 64) == down


def test_fill_in_the_middle_windows_put_the_music_after_the_gap_first():
    perf = scale(200, 0.1)
    track = Track("t", "train", perf.notes, perf.controls)
    windows = EventWindows([track], TOK, 257, fill_rate=1.0)
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(20):
        ids = windows.sample(rng)
        if ids[1] != TOK.special("SUFFIX"):
            continue
        seen += 1
        gap = int(np.nonzero(ids == TOK.special("GAP"))[0][0])
        suffix, head = ids[2:gap], ids[gap + 1 :]
        head = head[head != TOK.pad_id]
        after, before = TOK.decode(suffix), TOK.decode(head)
        assert len(after) and len(before)
        assert after.notes["onset_sec"].min() > before.notes["onset_sec"].max()  # the gap's end is after the head
        assert TOK.decode_checked(suffix)[1] == 0 and TOK.decode_checked(head)[1] == 0  # whole events only
    assert seen >= 10


def test_masked_rows_of_different_lengths_match_their_own_runs():
    from espressivo.models.transformer import Transformer, TransformerConfig

    torch.manual_seed(0)
    model = Transformer(TransformerConfig.from_name("tiny", vocab_size=50, pad_id=0)).eval()
    a, b = torch.randint(1, 50, (1, 10)), torch.randint(1, 50, (1, 7))
    cache = model.new_cache(2, 64)
    cache["valid"] = torch.ones(2, 64, dtype=torch.bool)
    cache["valid"][1, :3] = False
    with torch.no_grad():
        logits, cache = model.step(torch.cat([a, torch.cat([torch.zeros(1, 3, dtype=torch.long), b], 1)]), cache)
        assert torch.allclose(logits[1, 3:], model.step(b)[0][0], atol=1e-5)
        nxt = torch.tensor([[5], [6]])
        step, _ = model.step(nxt, cache)
        alone, _ = model.step(torch.cat([b, nxt[1:]], 1))
        assert torch.allclose(step[1, -1], alone[0, -1], atol=1e-5)


def test_generation_never_attends_beyond_the_trained_context(event_checkpoint, monkeypatch):
    from espressivo.generate.sampling import generate_performances
    from espressivo.models.transformer import Decoder

    pretrained = load_pretrained(event_checkpoint)
    seen = []
    original = Decoder.step

    def step(self, ids, cache=None):
        out = original(self, ids, cache)
        seen.append(out[1]["pos"])
        return out

    monkeypatch.setattr(Decoder, "step", step)
    perfs = generate_performances(pretrained, SamplingConfig(seed=1), seconds=8, variations=3)
    assert max(seen) <= 96 and len(seen) > 96  # it ran past one context and re-encoded
    for perf in perfs:
        assert len(perf) and perf.notes["onset_sec"].max() < 8.0 and perf.notes["duration_sec"].max() <= 5.0
    again = generate_performances(pretrained, SamplingConfig(seed=1), seconds=8, variations=3)
    assert all(np.array_equal(x.notes, y.notes) for x, y in zip(perfs, again, strict=True))


def test_continuation_keeps_the_prompt_and_starts_at_the_cut(event_checkpoint):
    from espressivo.generate.sampling import generate_performances

    prompt = scale(40)
    soft = Performance(prompt.notes, np.sort(np.concatenate([prompt.controls, np.array(
        [(1.0, SOFT, 127)], prompt.controls.dtype)]), order="time_sec"))  # fmt: skip
    cut = 10.5
    perfs = generate_performances(load_pretrained(event_checkpoint), SamplingConfig(seed=2), prompt_performance=soft,
                                  prompt_cut_sec=cut, seconds=3, variations=2)  # fmt: skip
    for perf in perfs:
        kept = perf.notes[perf.notes["onset_sec"] < cut]
        assert np.array_equal(kept[["onset_sec", "duration_sec", "pitch", "velocity"]],
                              soft.notes[["onset_sec", "duration_sec", "pitch", "velocity"]])  # fmt: skip
        new = perf.notes[perf.notes["onset_sec"] >= cut]
        assert len(new) and new["onset_sec"].max() < cut + 3
        soft_pedal = perf.controls[perf.controls["controller"] == SOFT]
        assert soft_pedal["value"].tolist() == [127, 0] and soft_pedal["time_sec"][-1] == cut  # lifted at the cut


def test_infill_keeps_everything_outside_the_gap(event_checkpoint):
    from espressivo.generate.infill import infill

    perf = scale(80)
    takes = infill(load_pretrained(event_checkpoint), SamplingConfig(seed=4), perf, 5.0, 9.0, variations=2)
    fields = ["onset_sec", "duration_sec", "pitch", "velocity"]
    outside = perf.notes[(perf.notes["onset_sec"] < 5.0) | (perf.notes["onset_sec"] >= 9.0)]
    for take in takes:
        on = take.notes["onset_sec"]
        kept = take.notes[(on < 5.0) | (on >= 9.0)]
        assert np.array_equal(kept[fields], outside[fields])
        for t in (4.99, 9.0, 12.0):  # the pedal outside the gap, and at its end, as it was
            assert (take.pedal_value_at([t])[0] >= 64) == (perf.pedal_value_at([t])[0] >= 64)
    assert not np.array_equal(takes[0].notes[fields], takes[1].notes[fields])


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [(9.0, 5.0, "0 <= --from < --to"), (5.0, 30.0, "longer than the model fills"), (500.0, 505.0, "after the"),
     (-1.0, 3.0, "give the gap")],
)  # fmt: skip
def test_infill_refuses_bad_gaps(event_checkpoint, tmp_path, capsys, start, end, message):
    from espressivo.cli import main
    from espressivo.io import write_midi

    write_midi(scale(80), tmp_path / "p.mid")
    argv = ["infill", str(tmp_path / "p.mid"), "--from", str(start), "--to", str(end), "-o", str(tmp_path / "o.mid")]
    assert main([*argv, "--model", str(event_checkpoint)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.mid").exists()


def test_numbered_outputs_never_overwrite_an_input(event_checkpoint, tmp_path, capsys):
    from espressivo.cli import main
    from espressivo.io import write_midi

    write_midi(scale(80), tmp_path / "r-1.mid")
    before = (tmp_path / "r-1.mid").read_bytes()
    for command in (["continue", str(tmp_path / "r-1.mid")],
                    ["infill", str(tmp_path / "r-1.mid"), "--from", "2", "--to", "4"]):  # fmt: skip
        argv = [*command, "-o", str(tmp_path / "r.mid"), "--variations", "2", "--model", str(event_checkpoint)]
        assert main(argv) == 2
        assert "that is an input" in capsys.readouterr().err
    assert (tmp_path / "r-1.mid").read_bytes() == before


def test_an_empty_or_pedal_only_prompt_is_refused(event_checkpoint, tmp_path, capsys):
    from espressivo.cli import main
    from espressivo.io import write_midi

    pedal_only = Performance(np.zeros(0, scale().notes.dtype), scale().controls)
    write_midi(pedal_only, tmp_path / "p.mid")
    argv = ["continue", str(tmp_path / "p.mid"), "-o", str(tmp_path / "o.mid"), "--model", str(event_checkpoint)]
    assert main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(EspressivoError):
        from espressivo.generate.infill import check_gap

        check_gap(pedal_only, 1.0, 2.0)


def test_the_sampling_decoder_steps_as_the_model_does():
    """float16 weights and no module calls for single ids: the same logits to float16's precision, masks and all."""
    from espressivo.models.transformer import Transformer, TransformerConfig

    torch.manual_seed(1)
    model = Transformer(TransformerConfig.from_name("tiny", vocab_size=60, pad_id=0, n_kv_head=2)).eval()
    decoder = model.for_sampling()
    prompt = torch.randint(1, 60, (2, 12))
    caches = [model.new_cache(2, 64), model.new_cache(2, 64)]
    for cache in caches:
        cache["valid"] = torch.ones(2, 64, dtype=torch.bool)
        cache["valid"][1, :4] = False
    with torch.no_grad():
        model.step(prompt, caches[0])
        decoder.step(prompt, caches[1])
        for _ in range(6):
            ids = torch.randint(1, 60, (2, 1))
            a, _ = model.step(ids, caches[0])
            b, _ = decoder.step(ids, caches[1])
            assert torch.allclose(a, b, atol=2e-2) and caches[0]["pos"] == caches[1]["pos"]
    assert torch.allclose(caches[0]["layers"][0][0], caches[1]["layers"][0][0], atol=2e-2)


def test_a_prompt_longer_than_the_context_keeps_its_newest_part(event_checkpoint, monkeypatch):
    from espressivo.generate import events
    from espressivo.generate.sampling import generate_performances

    prompt = scale(240, 0.25)  # 60 s: far more ids than the 96 the model was trained on
    origins = []
    original = events.EventGenerator._prefill

    def prefill(self, rows, keep):
        out = original(self, rows, keep)
        origins.append((list(self.origin), max(len(i) for i in self.ids)))
        return out

    monkeypatch.setattr(events.EventGenerator, "_prefill", prefill)
    out = generate_performances(load_pretrained(event_checkpoint), SamplingConfig(seed=3), prompt_performance=prompt,
                                prompt_cut_sec=60.0, seconds=2.0)[0]  # fmt: skip
    first_origin, width = origins[0]
    assert 50.0 < first_origin[0] < 60.0 and width <= 96  # the newest seconds of the prompt, within the context
    assert np.array_equal(out.notes["pitch"][: len(prompt)], prompt.notes["pitch"])  # the whole prompt is kept
    assert out.notes["onset_sec"][len(prompt):].min() >= 60.0


def test_the_shipped_event_model_plays_with_notes_that_end_and_a_pedal(tmp_path):
    """aria-small loads offline (fp16, within 25 MB, its card from the test split), improvises 10 s in which no
    note runs past 5 s and the pedal is its own, and fills a gap from the CLI with everything outside it kept."""
    from espressivo.cli import main
    from espressivo.generate.sampling import generate_performances
    from espressivo.io import read_midi
    from tests.conftest import EXAMPLES

    pretrained = load_pretrained("aria-small")
    assert pretrained.config["dtype"] == "float16" and pretrained.context == 1024
    assert pretrained.config["evaluation"]["split"] == "test"
    assert (pretrained.path / "model.safetensors").stat().st_size <= 25 * 2**20
    perfs = generate_performances(pretrained, SamplingConfig(seed=0), seconds=10, variations=2)
    for perf in perfs:
        assert len(perf) > 20 and perf.notes["onset_sec"].max() < 10 and perf.notes["duration_sec"].max() <= 5.0
    assert any(len(p.controls) for p in perfs)  # the model presses the pedal itself
    source = EXAMPLES / "etude_performance.mid"
    assert main(["infill", str(source), "--from", "6", "--to", "10", "-o", str(tmp_path / "f.mid")]) == 0
    filled, original = read_midi(tmp_path / "f.mid"), read_midi(source)
    outside = original.notes[(original.notes["onset_sec"] < 6) | (original.notes["onset_sec"] >= 10)]
    kept = filled.notes[(filled.notes["onset_sec"] < 6) | (filled.notes["onset_sec"] >= 10)]
    assert np.array_equal(kept["pitch"], outside["pitch"])
    assert np.allclose(kept["onset_sec"], outside["onset_sec"], atol=2e-3)
