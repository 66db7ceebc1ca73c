"""Nothing of the user's is lost: outputs (numbered, derived) never alias inputs, a killed or interrupted command
leaves no writer and no partial file, and tiny inputs cannot ask for unbounded audio."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from espressivo import EspressivoError, Performance
from espressivo.cli import main
from tests.conftest import EXAMPLES


@pytest.fixture
def perf_files(tmp_path):
    for name in ("r-1.mid", "r-2.mid", "mine.mid", "a.mid", "b.mid"):
        (tmp_path / name).write_bytes((EXAMPLES / "etude_performance.mid").read_bytes())
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [["render", "{d}/r-1.mid", "-o", "{d}/r.mid", "--variations", "2"],
     ["render", "{d}/r-1.mid", "-o", "{d}/x.mid", "--tempo-mapped", "{d}/r.mid", "--variations", "2"],
     ["render", "{d}/mine.mid", "-o", "{d}/x.mid", "--tempo-mapped", "{d}/x.mid"],
     ["continue", "{d}/r-1.mid", "-o", "{d}/r.mid", "--variations", "2", "--seconds", "1"],
     ["embed", "{d}/mine.mid", "-o", "{d}/mine.mid"],
     ["embed", "{d}/a.mid", "{d}/b.mid", "-o", "{d}/b.mid"],
     ["synth", "{d}/mine.mid", "-o", "{d}/mine.wav", "--soundfont", "{d}/mine.wav"]],
)  # fmt: skip
def test_no_output_name_reaches_an_input(perf_files, capsys, argv):
    before = {p.name: p.read_bytes() for p in perf_files.iterdir()}
    assert main([a.format(d=perf_files) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in perf_files.iterdir() if p.name in before} == before


def test_a_report_is_never_written_over_a_model(tmp_path, capsys):
    import torch

    from espressivo.models import build_model
    from espressivo.models.checkpoint import save_checkpoint
    from espressivo.tokenizers import from_name

    torch.manual_seed(0)
    folder = save_checkpoint(
        tmp_path / "m", build_model("transformer", "tiny"), "transformer", from_name("performance-rnn")
    )
    config = (folder / "config.json").read_bytes()
    for flag in ("--json", "--markdown"):
        name = "config.json" if flag == "--json" else "notes.md"
        assert main(["evaluate", "lm", "--model", str(folder), flag, str(folder / name), "--samples", "0"]) == 2
        assert "checkpoint folder" in capsys.readouterr().err
    assert (folder / "config.json").read_bytes() == config


def test_the_input_guard_refuses_any_write_over_a_file_that_was_read(tmp_path):
    from espressivo.io import read_midi, write_midi
    from espressivo.io.files import atomic_write_bytes, guarding_inputs

    src = tmp_path / "in.mid"
    src.write_bytes((EXAMPLES / "etude_performance.mid").read_bytes())
    link = tmp_path / "link.mid"
    link.symlink_to(src)
    with guarding_inputs():  # as every command runs
        perf = read_midi(src)
        for target in (src, link):
            with pytest.raises(EspressivoError, match="that is an input"):
                write_midi(perf, target)
            with pytest.raises(EspressivoError, match="that is an input"):
                atomic_write_bytes(target, b"x")
    assert read_midi(src).notes.size == perf.notes.size
    write_midi(perf, tmp_path / "out.mid")  # after the command, the library writes where it is told
    write_midi(read_midi(tmp_path / "out.mid"), tmp_path / "out.mid")


def test_an_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import os as os_module

    from espressivo.io.files import atomic_write_bytes

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os_module, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "out.bin", b"data" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_audio_of_an_absurd_length_is_refused_before_any_work(tmp_path, capsys):
    from espressivo.io import write_midi

    far = Performance.from_arrays([0.0, 40_000.0], [0.5, 0.5], [60, 62], 64)
    write_midi(far, tmp_path / "far.mid")
    assert main(["synth", str(tmp_path / "far.mid"), "-o", str(tmp_path / "far.wav")]) == 2
    assert "at most 3600 s" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob(".*"))


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_killed_synth_leaves_no_writer_and_no_partial_file(tmp_path, how):
    from espressivo.io import write_midi

    n = 20_000  # about 40 minutes of music: fluidsynth writes for many seconds
    long = Performance.from_arrays(np.arange(n) * 0.12, np.full(n, 0.1), 40 + np.arange(n) % 48, 70)
    write_midi(long, tmp_path / "long.mid")
    # as from a terminal, where Ctrl-C reaches it: a test run started in the background inherits SIGINT ignored
    start = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from espressivo.cli import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip
    command = [sys.executable, "-c", start, "synth", str(tmp_path / "long.mid"), "-o", str(tmp_path / "o.wav")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".o.wav.*.tmp.wav")):
        time.sleep(0.1)
    assert list(tmp_path.glob(".o.wav.*.tmp.wav")), "fluidsynth never started writing"
    time.sleep(0.5)
    os.kill(process.pid, how)
    process.communicate(timeout=90)  # reading its stderr meanwhile (a full pipe must not stall it); a loaded machine
    time.sleep(1.0)
    partial = list(tmp_path.glob(".o.wav.*.tmp.wav"))
    sizes = [p.stat().st_size for p in partial]
    time.sleep(1.0)
    now = [p.stat().st_size for p in partial if p.exists()]
    assert now == [s for p, s in zip(partial, sizes, strict=True) if p.exists()]  # nothing writes on
    if how != signal.SIGKILL:  # Ctrl-C and SIGTERM clean up; after SIGKILL the next run does
        assert partial == [] and process.returncode in (130, 143)
    assert not (tmp_path / "o.wav").exists()
    if how == signal.SIGKILL and partial:
        short = Performance.from_arrays([0.0], [0.5], [60], 64)
        write_midi(short, tmp_path / "short.mid")
        assert main(["synth", str(tmp_path / "short.mid"), "-o", str(tmp_path / "o.wav")]) == 0
        assert not list(tmp_path.glob(".o.wav.*.tmp.wav"))


def test_a_rerun_of_prepare_removes_the_partial_shards_of_a_killed_one(tmp_path):
    from espressivo.data.prepare import Source, prepare
    from espressivo.tokenizers import from_name

    src = tmp_path / "p.mid"
    src.write_bytes((EXAMPLES / "etude_performance.mid").read_bytes())
    out = tmp_path / "corpus"
    (out / "shards").mkdir(parents=True)
    stale = out / "shards" / ".00000.bin.abc123.tmp"
    stale.write_bytes(b"half a shard")
    prepare([Source("folder", str(src), "p", "train")], from_name("aria"), out, workers=1, progress=False)
    assert not stale.exists() and (out / "index.json").is_file()


def test_sigterm_on_the_studio_removes_its_temporary_store(tmp_path):
    import json
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, TMPDIR=str(tmp_path), OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "espressivo", "studio", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        process.stdout.readline()  # the address: listening
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/examples/etude", method="POST",
                                         headers={"X-Espressivo-Studio": "1"})  # fmt: skip
        for _ in range(50):
            try:
                assert json.loads(urllib.request.urlopen(request, timeout=30).read())["id"]
                break
            except OSError:
                time.sleep(0.2)
        assert list(tmp_path.glob("espressivo-studio-*"))  # its store, while it runs with a score open
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert not list(tmp_path.glob("espressivo-studio-*"))
