"""Malformed, empty, huge and hostile input: always EspressivoError (CLI: one line, exit 2), never a crash."""

import contextlib
import io
import zipfile

import mido
import numpy as np
import pytest

from espressivo import EspressivoError, read_alignment, read_midi, read_score
from espressivo.cli import main
from espressivo.io.midi import parse_midi

from .conftest import EXAMPLES as EXAMPLES_DIR

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE score-partwise [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<score-partwise version="3.1"><work><work-title>&secret;</work-title></work>
<part-list><score-part id="P1"><part-name>P</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions></attributes>
<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration></note></measure></part>
</score-partwise>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<score-partwise>&lol2;</score-partwise>"""


def no_notes_midi() -> bytes:
    mid = mido.MidiFile()
    mid.tracks.append(
        mido.MidiTrack(
            [mido.MetaMessage("set_tempo", tempo=500000), mido.Message("control_change", control=64, value=127)]
        )
    )
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def zip_bomb(path, member_mb: int = 80) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "META-INF/container.xml", '<container><rootfiles><rootfile full-path="s.xml"/></rootfiles></container>'
        )
        with archive.open("s.xml", "w", force_zip64=True) as handle:
            chunk = b"\0" * 2**20
            for _ in range(member_mb):
                handle.write(chunk)


@pytest.fixture
def bad_files(tmp_path, asap_root):
    real = (asap_root / "Bach/Fugue/bwv_846/Shi05M.mid").read_bytes()
    files = {
        "missing.mid": None,
        "empty.mid": b"",
        "truncated.mid": real[: len(real) // 2],
        "header_only.mid": real[:14],
        "random.mid": np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "text.mid": b"this is not a MIDI file\n" * 10,
        "no_notes.mid": no_notes_midi(),
        "xxe.musicxml": XXE,
        "laughs.musicxml": LAUGHS,
        "random.musicxml": b"<score-partwise><part",
        "notzip.mxl": b"PK\x03\x04 not really a zip",
        "text.mxl": b"hello",
        "empty.mei": b"",
        "garbage.krn": b"\x00\x01\x02 not kern",
        "score.txt": b"hello",
        "alignment.tsv": b"nonsense",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / name
        if data is not None:
            paths[name].write_bytes(data)
    zip_bomb(tmp_path / "bomb.mxl")
    paths["bomb.mxl"] = tmp_path / "bomb.mxl"
    paths["directory.mid"] = tmp_path / "adir.mid"
    paths["directory.mid"].mkdir()
    return paths


def reader_for(name: str):
    if name.startswith("alignment"):
        return read_alignment
    return read_midi if name.endswith(".mid") else read_score


@pytest.mark.parametrize(
    "name",
    [
        "missing.mid",
        "empty.mid",
        "truncated.mid",
        "header_only.mid",
        "random.mid",
        "text.mid",
        "no_notes.mid",
        "xxe.musicxml",
        "laughs.musicxml",
        "random.musicxml",
        "notzip.mxl",
        "text.mxl",
        "empty.mei",
        "garbage.krn",
        "score.txt",
        "alignment.tsv",
        "bomb.mxl",
        "directory.mid",
    ],
)
def test_readers_raise_one_clear_error(bad_files, name):
    with pytest.raises(EspressivoError) as info:
        reader_for(name)(bad_files[name])
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400


def test_xxe_is_never_resolved(bad_files):
    with pytest.raises(EspressivoError, match="entity"):
        read_score(bad_files["xxe.musicxml"])


def test_zip_bomb_is_stopped(bad_files):
    with pytest.raises(EspressivoError, match="zip bomb"):
        read_score(bad_files["bomb.mxl"])


def test_huge_file_is_refused_before_reading(tmp_path):
    huge = tmp_path / "huge.mid"
    with open(huge, "wb") as handle:
        handle.truncate(65 * 2**20)  # sparse: no disk used
    with pytest.raises(EspressivoError, match="limit"):
        read_midi(huge)


def test_empty_allowed_on_request(bad_files):
    assert len(read_midi(bad_files["no_notes.mid"], allow_empty=True)) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "{missing.mid}"],
        ["info", "{random.mid}"],
        ["info", "{xxe.musicxml}"],
        ["info", "{bomb.mxl}"],
        ["info", "{score.txt}"],
        ["synth", "{truncated.mid}", "-o", "{out}/x.wav"],
        ["synth", "{no_notes.mid}", "-o", "{out}/x.wav"],
        ["plot", "{text.mid}", "-o", "{out}/x.png"],
        ["synth", "{no_notes.mid}", "-o", "{out}/x.wav", "--sample-rate", "abc"],
        ["synth", "{no_notes.mid}", "-o", "{out}/x.wav", "--gain", "-3"],
        ["data", "scan", "--source", "{missing.mid}"],
        ["info"],
        ["nonsense-command"],
    ],
)
def test_cli_errors_are_one_line_with_exit_2(bad_files, tmp_path, capsys, argv):
    names = {k.replace(".", "_"): str(v) for k, v in bad_files.items()}
    argv = [a.replace("{out}", str(tmp_path)) for a in argv]
    argv = [str(bad_files[a[1:-1]]) if a.startswith("{") and a.endswith("}") else a for a in argv]
    with (
        pytest.raises(SystemExit)
        if argv in (["info"], ["nonsense-command"]) or "abc" in argv
        else contextlib.nullcontext()
    ):
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert names  # the fixture built every file


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["info"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_fuzzed_asap_midi_never_crashes(asap_midi_files):
    """2,000 randomly mutated or truncated real performances through the reader: only EspressivoError."""
    rng = np.random.default_rng(2026)
    sources = [asap_midi_files[k].read_bytes() for k in rng.choice(len(asap_midi_files), 40, replace=False)]
    outcomes = {"read": 0, "refused": 0}
    for trial in range(2000):
        data = bytearray(sources[trial % len(sources)])
        operation = rng.integers(5)
        if operation == 0:  # truncate
            data = data[: rng.integers(0, len(data))]
        elif operation == 1:  # flip bytes
            for position in rng.integers(0, len(data), rng.integers(1, 30)):
                data[position] = rng.integers(0, 256)
        elif operation == 2:  # insert junk
            at = rng.integers(0, len(data))
            data = data[:at] + rng.integers(0, 256, rng.integers(1, 200), dtype=np.uint8).tobytes() + data[at:]
        elif operation == 3:  # corrupt the header / chunk lengths
            for position in rng.integers(0, min(len(data), 40), 3):
                data[position] = rng.integers(0, 256)
        else:  # delete a span
            at = rng.integers(0, len(data))
            data = data[:at] + data[at + rng.integers(1, 500) :]
        try:
            perf = parse_midi(bytes(data), name=f"fuzz{trial}", allow_empty=bool(trial % 2))
            assert np.isfinite(perf.notes["onset_sec"]).all()
            outcomes["read"] += 1
        except EspressivoError:
            outcomes["refused"] += 1
    assert outcomes["read"] + outcomes["refused"] == 2000
    assert outcomes["read"] > 20 and outcomes["refused"] > 1000  # both paths exercised; symusic is strict


def test_fuzzed_midi_with_partitura_pairing(asap_midi_files):
    rng = np.random.default_rng(7)
    source = asap_midi_files[0].read_bytes()
    for _ in range(200):
        data = bytearray(source)
        for position in rng.integers(0, len(data), rng.integers(1, 20)):
            data[position] = rng.integers(0, 256)
        with contextlib.suppress(EspressivoError):
            parse_midi(bytes(data[: rng.integers(14, len(data) + 1)]), pairing="partitura")


def test_bad_tempo_for_a_score(tmp_path, capsys):
    from tests.conftest import EXAMPLES

    assert main(["synth", str(EXAMPLES / "etude.musicxml"), "-o", str(tmp_path / "x.wav"), "--qpm", "0"]) == 2
    assert "tempo" in capsys.readouterr().err


def _score_with(tmp_path, pitch_xml: str):
    path = tmp_path / "odd.musicxml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><part-list><score-part id="P1">'
        '<part-name>Piano</part-name></score-part></part-list><part id="P1"><measure number="1"><attributes>'
        "<divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time></attributes><note>"
        f"<pitch>{pitch_xml}</pitch><duration>4</duration><voice>1</voice><type>whole</type></note></measure>"
        "</part></score-partwise>"
    )
    return path


@pytest.mark.parametrize(
    "pitch_xml",
    ["<step>C</step><octave>1000</octave>", "<step>C</step><octave>-5</octave>",
     "<step>C</step><alter>1000000</alter><octave>4</octave>"],
)  # fmt: skip
def test_a_pitch_outside_midi_is_refused_in_one_line(tmp_path, capsys, pitch_xml):
    path = _score_with(tmp_path, pitch_xml)
    with pytest.raises(EspressivoError, match=r"outside MIDI's 0\.\.127"):
        read_score(path)
    assert main(["render", str(path), "-o", str(tmp_path / "o.mid")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "0..127" in err


def test_outputs_never_overwrite_inputs_and_match_their_format(tmp_path, capsys):
    from .conftest import EXAMPLES

    midi = tmp_path / "perf.mid"
    midi.write_bytes((EXAMPLES / "etude_performance.mid").read_bytes())
    before = midi.read_bytes()
    for argv in (
        ["render", str(midi), "--score", "-o", str(midi)],
        ["render", str(midi), "-o", str(tmp_path / "x.mid"), "--tempo-mapped", str(midi)],
        ["continue", str(midi), "-o", str(midi), "--seconds", "1"],
        ["synth", str(midi), "-o", str(midi)],
        ["synth", str(midi), "-o", str(tmp_path / "x.mid")],
    ):
        argv = [a for a in argv if a != "--score"]
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("an input" in err or "must be a" in err), err
    assert midi.read_bytes() == before


@pytest.mark.parametrize(
    "argv",
    [["render", "{etude}", "-o", "{out}", "--seed", "18446744073709551616"],
     ["render", "{etude}", "-o", "{out}", "--seed", "-1"],
     ["generate", "-o", "{out}", "--seed", "18446744073709551616"],
     ["generate", "-o", "{out}", "--tokens", "1000000000000"],
     ["generate", "-o", "{out}", "--threads", "0"],
     ["render", "{etude}", "-o", "{out}", "--threads", "-1"]],
)  # fmt: skip
def test_seeds_and_lengths_out_of_range_are_refused(tmp_path, capsys, argv):
    from .conftest import EXAMPLES

    argv = [a.replace("{etude}", str(EXAMPLES / "etude.musicxml")).replace("{out}", str(tmp_path / "o.mid"))
            for a in argv]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("--seed" in err or "--tokens" in err or "--threads" in err), err


@pytest.mark.parametrize(
    ("old", "new"),
    [("<divisions>1</divisions>", "<divisions>0</divisions>"),
     ("<divisions>1</divisions>", "<divisions>-4</divisions>"),
     ("<duration>4</duration>", "<duration>nan</duration>"),
     ("<beats>4</beats><beat-type>4</beat-type>", "<beats>0</beats><beat-type>0</beat-type>"),
     ("</attributes>", '</attributes><direction><sound tempo="-72"/></direction>'),
     ("<divisions>1</divisions>", "<divisions>1000000000000</divisions>"),
     ("</attributes>", '</attributes><direction><sound tempo="0.0001"/></direction>'),
     ("</attributes>", "</attributes><direction><direction-type><metronome><beat-unit>quarter</beat-unit>"
                       "<per-minute>-72</per-minute></metronome></direction-type></direction>")],
)  # fmt: skip
def test_scores_with_broken_semantics_are_refused_in_one_line(tmp_path, capsys, old, new):
    good = _score_with(tmp_path, "<step>C</step><octave>4</octave>")
    text = good.read_text().replace('<time><beats>4</beats><beat-type>4</beat-type></time>',
                                    "<time><beats>4</beats><beat-type>4</beat-type></time>")  # fmt: skip
    assert old in text
    bad = tmp_path / "bad.musicxml"
    bad.write_text(text.replace(old, new, 1))
    assert len(read_score(good)) == 1
    with pytest.raises(EspressivoError, match="makes no sense"):
        read_score(bad)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err


@pytest.mark.parametrize(
    "change",
    [{"n_head": 0}, {"d_model": "256"}, {"d_model": 256.5}, {"n_encoder_layer": 100000}, {"d_model": -64},
     {"rope_theta": float("nan")}, {"slot_sizes": "big"}, {"n_decoder_layer": True}],
)  # fmt: skip
def test_checkpoint_configs_are_validated_before_building(tiny_checkpoint, tmp_path, capsys, change):
    import json
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"] |= change
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EspressivoError):
        from espressivo.models.checkpoint import load_pretrained

        load_pretrained(folder)
    assert main(["render", str(EXAMPLES_DIR / "etude.musicxml"), "-o", str(tmp_path / "o.mid"), "--model",
                 str(folder)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_deeply_nested_checkpoint_config_is_refused(tiny_checkpoint, tmp_path, capsys):
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / "config.json").write_text('{"model_type": "renderer", "model": ' + "[" * 100000 + "]" * 100000 + "}")
    assert main(["render", str(EXAMPLES_DIR / "etude.musicxml"), "-o", str(tmp_path / "o.mid"), "--model",
                 str(folder)]) == 2  # fmt: skip
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_entities_in_utf16_or_utf32_are_refused(tmp_path, capsys, encoding):
    for name, payload in (("xxe", XXE), ("laughs", LAUGHS)):
        path = tmp_path / f"{name}-{encoding}.musicxml"
        text = payload.decode().replace('<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{encoding[:6]}"?>')
        path.write_bytes(text.encode(encoding))
        with pytest.raises(EspressivoError, match="entity"):
            read_score(path)
        assert main(["info", str(path)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_score_whose_repeats_cannot_be_expanded_is_played_as_written(tmp_path, monkeypatch):
    import espressivo.io.score as score_io

    from .conftest import EXAMPLES

    def broken(pt, part):
        raise IndexError("repeat structure")

    monkeypatch.setattr(score_io, "_unfold", broken)
    with pytest.warns(UserWarning, match=r"repeats not expanded .* \(as --no-repeats\)"):
        score = read_score(EXAMPLES / "etude.musicxml", unfold=True)
    assert len(score) == 84 and not score.unfolded


def test_a_score_with_too_many_notes_is_refused_before_parsing(monkeypatch, capsys):
    import espressivo.io.score as score_io

    from .conftest import EXAMPLES

    monkeypatch.setattr(score_io, "MAX_SCORE_NOTES", 50)
    with pytest.raises(EspressivoError, match="84 notes: more than espressivo reads"):
        read_score(EXAMPLES / "etude.musicxml")
    assert main(["info", str(EXAMPLES / "etude.musicxml")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_output_under_a_file_says_so(tmp_path, capsys):
    from espressivo.cli import main

    from .conftest import EXAMPLES

    (tmp_path / "plain").write_text("a file")
    out = tmp_path / "plain" / "deeper" / "x.mid"
    assert main(["synth", str(EXAMPLES / "etude_performance.mid"), "-o", str(out.with_suffix(".wav"))]) == 2
    assert capsys.readouterr().err.strip().endswith(f"({tmp_path / 'plain'} is a file, not a folder)")


def test_a_checkpoint_size_of_zero_is_refused_in_one_line(tiny_checkpoint, tmp_path, capsys):
    """Found by the fuzz run: d_ff 0 built a model whose weights could not load (RuntimeError, exit 1)."""
    import json
    import shutil

    from espressivo.models.checkpoint import load_pretrained

    folder = tmp_path / "zero"
    shutil.copytree(tiny_checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["d_ff"] = 0
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EspressivoError, match="d_ff must be at least 1"):
        load_pretrained(folder)


@pytest.mark.parametrize("suffix", [".krn", ".mei", ".mid"])
def test_every_score_format_is_counted_before_parsing(tmp_path, capsys, suffix):
    """60,000 notes in kern, MEI or a MIDI score: refused in one line before partitura spends minutes on it."""
    import time

    n = 60_000
    path = tmp_path / f"big{suffix}"
    if suffix == ".krn":
        path.write_text("**kern\n*M4/4\n" + "4c\n" * n + "*-\n")
    elif suffix == ".mei":
        notes = '<note pname="c" oct="4" dur="4"/>' * n
        path.write_text('<?xml version="1.0"?><mei xmlns="http://www.music-encoding.org/ns/mei"><music><body><mdiv>'
                        f"<score><section><measure><staff><layer>{notes}</layer></staff></measure></section></score>"
                        "</mdiv></body></music></mei>")  # fmt: skip
    else:
        from espressivo import Performance
        from espressivo.io import write_midi

        write_midi(Performance.from_arrays(np.arange(n) * 0.1, np.full(n, 0.1), 60 + np.arange(n) % 12, 64), path)
    started = time.perf_counter()
    with pytest.raises(EspressivoError, match="60,000 notes"):
        read_score(path)
    assert time.perf_counter() - started < 10
    assert main(["info", str(path), *(["--score"] if suffix == ".mid" else [])]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
