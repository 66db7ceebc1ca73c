"""The command line on real files: every command, with --help."""

import json
import shutil
import subprocess
import sys

import pytest

from espressivo.cli import main
from tests.conftest import EXAMPLES

PERF = str(EXAMPLES / "etude_performance.mid")
SCORE = str(EXAMPLES / "etude.musicxml")
ALIGN = str(EXAMPLES / "etude_alignment.tsv.gz")


def _commands() -> list[list[str]]:
    from espressivo.cli.main import app

    return [[]] + [name.split() for name in sorted(app.commands)]


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c) or "espressivo")
def test_help(command, capsys):  # every command: a help text with "%" in it once crashed argparse
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: espressivo" in capsys.readouterr().out


def test_help_imports_no_heavy_library():
    """`espressivo --help` starts without torch, partitura, matplotlib, ... (their imports wait for the work that
    needs them: docs/architecture.md; benchmarks/startup.py measures the time)."""
    from benchmarks.startup import HEAVY, PROBE

    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert "usage: espressivo" in done.stdout and done.stderr.strip() == "", f"imported at start: {done.stderr}"
    assert "torch" in HEAVY


def test_help_texts_keep_their_continuation_lines():
    from espressivo.cli.app import _param_docs

    def command(tempo: float = 1.0, seed: int = 0) -> None:
        """Do it.

        Args:
            tempo: quarter notes per minute
                (default: the score's; 10 % faster is 1.1)
            seed: random seed

        Returns:
            nothing: not an argument
        """

    assert _param_docs(command) == {"tempo": "quarter notes per minute (default: the score's; 10 % faster is 1.1)",
                                    "seed": "random seed"}  # fmt: skip


def test_info_performance_and_score(capsys):
    assert main(["info", PERF, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["notes"] == 84 and summary["pedals"]["sustain"]["presses"] == 8
    assert main(["info", SCORE, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["measures"] == 8 and summary["time_signatures"] == ["4/4 @q0"]
    assert summary["key_signatures"] == ["C major @q0"] and summary["dynamics"] == ["p @q0", "mf @q16"]
    assert main(["info", PERF]) == 0 and "pitch range" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")
def test_synth_performance_and_score(tmp_path, capsys):
    assert main(["synth", PERF, "-o", str(tmp_path / "p.wav")]) == 0
    assert main(["synth", SCORE, "-o", str(tmp_path / "s.wav"), "--qpm", "144"]) == 0
    assert (tmp_path / "p.wav").stat().st_size > 100_000 and (tmp_path / "s.wav").stat().st_size > 100_000


def test_plot_roll_and_pair(tmp_path):
    assert main(["plot", PERF, "-o", str(tmp_path / "roll.png")]) == 0
    assert main(["plot", PERF, "-o", str(tmp_path / "pair.png"), "--with-score", SCORE, "--alignment", ALIGN]) == 0
    assert main(["plot", SCORE, "-o", str(tmp_path / "score.png")]) == 0
    assert all((tmp_path / n).stat().st_size > 20_000 for n in ("roll.png", "pair.png", "score.png"))


def test_data_scan_folder(tmp_path, capsys):
    (tmp_path / "a.mid").write_bytes((EXAMPLES / "etude_performance.mid").read_bytes())
    (tmp_path / "b.mid").write_bytes(b"broken")
    assert main(["data", "scan", "--source", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == 1 and summary["notes"] == 84 and len(summary["unreadable"]) == 1


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")
def test_demo_as_a_user_runs_it(tmp_path):
    from espressivo.render.dispatch import DEFAULT_RENDERER

    """The real console entry point, in a separate process, as `make demo` runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "espressivo", "demo", "--out", str(tmp_path / "out")],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "etude_performance.wav").stat().st_size > 1_000_000
    assert (tmp_path / "out" / "etude_performance.png").stat().st_size > 20_000
    assert "Espressivo Etude No. 1" in result.stdout
    similarity = result.stdout.split("cosine similarity to the human performance: ")[1].splitlines()[0]
    assert similarity.startswith(f"{DEFAULT_RENDERER} ") and -1 <= float(similarity.split()[1].rstrip(",")) <= 1


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    (tmp_path / "x.mid").write_text("not midi")
    result = subprocess.run(
        [sys.executable, "-m", "espressivo", "info", str(tmp_path / "x.mid")],
        capture_output=True,
        check=False,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"espressivo: error: {tmp_path / 'x.mid'}: not a MIDI file (no MThd header)"


def test_negative_bool_flags_turn_the_option_off():
    """`--no-repeats` / `--no-primed` must reach the command as repeats=False / primed=False."""
    from espressivo.cli.main import app

    parser = app.parser()
    assert parser.parse_args(["render", "s.mxl", "-o", "o.mid", "--no-repeats"]).repeats is False
    assert parser.parse_args(["render", "s.mxl", "-o", "o.mid"]).repeats is True
    assert parser.parse_args(["evaluate", "render", "--no-primed"]).primed is False


def test_option_groups_expand_into_flags_and_back():
    """A dataclass parameter is a group of flags: listed ones, expert ones (accepted, not listed), API-only ones
    (no flag); the command receives the dataclass, and its checks give the one-line error."""
    from dataclasses import dataclass, field

    from espressivo.cli.app import App
    from espressivo.errors import EspressivoError

    @dataclass(frozen=True)
    class Knobs:
        """knobs: what to turn

        Args:
            speed: how fast
            grip: how hard
        """

        speed: float = 1.0
        grip: int = field(default=2, metadata={"expert": True})
        inner: int = field(default=3, metadata={"flag": False})

        def __post_init__(self):
            if self.speed <= 0:
                raise EspressivoError("--speed must be positive")

    app, seen = App("prog", "test"), []

    @app.command("go")
    def go(name: str, knobs: Knobs = Knobs(speed=1.5)) -> None:
        """Go."""
        seen.append((name, knobs))

    assert app.main(["go", "x", "--grip", "5"]) == 0 and seen[-1] == ("x", Knobs(speed=1.5, grip=5))
    assert app.main(["go", "y"]) == 0 and seen[-1] == ("y", Knobs(speed=1.5))
    assert app.main(["go", "y", "--speed", "0"]) == 2
    help_text = app.parser()._subparsers._group_actions[0].choices["go"].format_help()
    assert "knobs: what to turn" in help_text and "--speed" in help_text and "(default: 1.5)" in help_text
    assert "--grip" not in help_text and "--inner" not in help_text
    with pytest.raises(SystemExit) as info:
        app.main(["go", "y", "--inner", "4"])  # not a flag
    assert info.value.code == 2


def test_render_help_lists_the_musicians_options_grouped(capsys):
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    text = capsys.readouterr().out
    listed = {line.split()[0].rstrip(",") for line in text.splitlines() if line.startswith("  --")}
    assert len(listed) + 1 <= 15, listed  # + -o
    for title in ("sampling:", "tempo:", "shaping:", "output:", "style (cvrnn-small):"):
        assert title in text
    assert "--top-p" not in listed and "--consensus" not in listed and "--threads" not in listed


def test_render_refuses_an_option_its_family_does_not_use(tmp_path, capsys):
    code = main(["render", SCORE, "-o", str(tmp_path / "o.mid"), "--consensus", "4"])  # phrase-small by default
    assert code == 2
    assert capsys.readouterr().err.strip().endswith("a phrase renderer does not use --consensus")
