"""Hostile inputs, generated: mutated MIDI, MusicXML / MXL / MEI / kern, command lines and checkpoint configs.

``cases(seed, count)`` yields ``(kind, name, payload)``; :func:`run_case` feeds one to its entry point and says
how it ended: ``ok`` (accepted), ``clean`` (a one-line refusal: :class:`EspressivoError` in Python, exit 2 on
the command line), ``crash`` (anything else) or ``hang`` (over the time limit).  A short run is part of
``make test`` (``tests/test_fuzz.py``); ``benchmarks/fuzz.py`` runs ten thousand and more.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import zipfile
from pathlib import Path

import numpy as np

from espressivo.errors import EspressivoError

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "espressivo" / "examples"

KERN = """**kern\t**kern
*clefF4\t*clefG2
*k[f#]\t*k[f#]
*M3/4\t*M3/4
=1\t=1
4G\t8dd 8ee
.\t8ff#
4B\t4gg
4d\t4dd
=2\t=2
2.G\t2.gg
*-\t*-
"""

MEI = """<?xml version="1.0" encoding="UTF-8"?>
<mei xmlns="http://www.music-encoding.org/ns/mei" meiversion="4.0.1"><music><body><mdiv xml:id="d1"><score>
<scoreDef xml:id="sd1" meter.count="4" meter.unit="4" key.sig="0"><staffGrp xml:id="sg1"><staffDef xml:id="s1" n="1"
lines="5" clef.shape="G" clef.line="2"/></staffGrp></scoreDef><section xml:id="se1"><measure xml:id="m1" n="1">
<staff xml:id="st1" n="1"><layer xml:id="l1" n="1"><note xml:id="n1" pname="c" oct="4" dur="4"/>
<note xml:id="n2" pname="e" oct="4" dur="4"/><note xml:id="n3" pname="g" oct="4" dur="4"/><chord xml:id="c1" dur="4">
<note xml:id="n4" pname="c" oct="5"/><note xml:id="n5" pname="e" oct="5"/></chord></layer></staff></measure>
</section></score></mdiv></body></music></mei>
"""

NUMBER = re.compile(rb">(-?\d+(?:\.\d+)?)<|=\"(-?\d+(?:\.\d+)?)\"")
STRANGE_NUMBERS = [b"0", b"-1", b"-72", b"1000000", b"1e309", b"nan", b"inf", b"-0", b"2147483648", b"0.0001", b""]
SNIPPETS = [
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
    b"<!ENTITY a 'aaaaaaaaaa'>",
    b"<note><pitch><step>H</step><octave>4</octave></pitch><duration>1</duration></note>",
    b"<attributes><divisions>0</divisions></attributes>",
    b"<time><beats>0</beats><beat-type>0</beat-type></time>",
    b'<sound tempo="-72"/>',
    b"<backup><duration>100000</duration></backup>",
    b"\x00\xff\xfe",
]
FLAG_VALUES = ["0", "-1", "1e309", "nan", "inf", "-inf", "18446744073709551616", "", "x", "1,2", "../../etc",
               "999999999999", "0.5", "3"]  # fmt: skip


def _mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """Flip, drop, duplicate or insert bytes, or truncate."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        if not out:
            break
        at = int(rng.integers(0, len(out)))
        move = int(rng.integers(0, 5))
        if move == 0:
            out[at] = int(rng.integers(0, 256))
        elif move == 1:
            del out[at : at + int(rng.integers(1, 64))]
        elif move == 2:
            out[at:at] = out[at : at + int(rng.integers(1, 64))]
        elif move == 3:
            out[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
        else:
            out = out[: at + 1]
    return bytes(out)


def _mutate_text(data: bytes, rng: np.random.Generator) -> bytes:
    """Replace numbers with strange ones, insert hostile snippets, cut elements, or mutate bytes."""
    move = int(rng.integers(0, 4))
    if move == 0:
        numbers = list(NUMBER.finditer(data))
        out = data
        for match in rng.permutation(len(numbers))[: int(rng.integers(1, 6))] if numbers else []:
            m = numbers[int(match)]
            group = 1 if m.group(1) is not None else 2
            value = STRANGE_NUMBERS[int(rng.integers(0, len(STRANGE_NUMBERS)))]
            out = out[: m.start(group)] + value + out[m.end(group) :] if len(out) == len(data) else out
        return out
    if move == 1:
        at = int(rng.integers(0, len(data) + 1))
        return data[:at] + SNIPPETS[int(rng.integers(0, len(SNIPPETS)))] + data[at:]
    if move == 2:
        tags = [m.start() for m in re.finditer(rb"<[a-z]", data)]
        if tags:
            a = tags[int(rng.integers(0, len(tags)))]
            return data[:a] + data[a + int(rng.integers(1, 400)) :]
    return _mutate_bytes(data, rng)


def _mxl(xml: bytes, rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        root = ["score.xml", "../../evil.xml", "/abs.xml", "missing.xml"][
            int(rng.integers(0, 4)) if rng.random() < 0.2 else 0
        ]
        archive.writestr("META-INF/container.xml",
                         f'<container><rootfiles><rootfile full-path="{root}"/></rootfiles></container>')  # fmt: skip
        archive.writestr("score.xml", xml)
    data = buffer.getvalue()
    return _mutate_bytes(data, rng) if rng.random() < 0.3 else data


def _config(rng: np.random.Generator, base: dict) -> dict:
    """A checkpoint config with one model setting, or the model type, made strange."""
    config = json.loads(json.dumps(base))
    model = config.setdefault("model", {})
    key = list(model)[int(rng.integers(0, len(model)))] if model else "n_layer"
    strange = [0, -1, 10**9, 1e309, "12", None, [], {"a": {"b": {}}}, True, 3.5, float("nan")]
    if rng.random() < 0.15:
        config["model_type"] = ["", "cvrnn", "nope", 7, None][int(rng.integers(0, 5))]
    else:
        model[key] = strange[int(rng.integers(0, len(strange)))]
    return config


def cases(seed: int, count: int, midi_files: list[Path] | None = None, checkpoints: list[Path] = ()):
    """``count`` hostile inputs: ``(kind, name, payload)``; kinds: midi, musicxml, mxl, mei, kern, flags,
    checkpoint (when ``checkpoints`` folders to mutate are given; payload: (folder, config))."""
    rng = np.random.default_rng(seed)
    midis = [p.read_bytes() for p in (midi_files or [EXAMPLES / "etude_performance.mid"])]
    xml = (EXAMPLES / "etude.musicxml").read_bytes()
    bases = [(folder, json.loads((folder / "config.json").read_text())) for folder in checkpoints]
    kinds = ["midi", "midi", "musicxml", "musicxml", "mxl", "mei", "kern", "flags", "alias", "huge"]
    kinds += ["checkpoint"] if bases else []
    for k in range(count):
        kind = kinds[k % len(kinds)]
        if kind == "midi":
            yield kind, f"fuzz{k}.mid", _mutate_bytes(midis[int(rng.integers(0, len(midis)))], rng)
        elif kind == "musicxml":
            yield kind, f"fuzz{k}.musicxml", _mutate_text(xml, rng)
        elif kind == "mxl":
            yield kind, f"fuzz{k}.mxl", _mxl(_mutate_text(xml, rng) if rng.random() < 0.7 else xml, rng)
        elif kind == "mei":
            yield kind, f"fuzz{k}.mei", _mutate_text(MEI.encode(), rng)
        elif kind == "kern":
            yield kind, f"fuzz{k}.krn", _mutate_bytes(KERN.encode(), rng)
        elif kind == "alias":  # an output, numbered or derived, that would land on the input
            command = ALIASES[int(rng.integers(0, len(ALIASES)))]
            yield kind, f"alias{k}", command
        elif kind == "huge":  # a tiny file that asks for hours of audio
            yield kind, f"huge{k}.{'mid' if k % 2 else 'musicxml'}", HUGE[k % 2]
        elif kind == "flags":
            command = [["render"], ["generate"], ["continue"], ["evaluate", "render"], ["info"], ["infill"]][
                int(rng.integers(0, 6))
            ]
            flags = ["--seed", "--tempo", "--tempo-scale", "--temperature", "--expressiveness", "--variations",
                     "--dynamics-scale", "--top-p", "--tokens", "--seconds", "--threads", "--consensus",
                     "--max-pieces", "--stride", "--roll-step", "--beam-size", "--min-p", "--from", "--to"]  # fmt: skip
            argv = list(command)
            for _ in range(int(rng.integers(1, 4))):
                argv += [flags[int(rng.integers(0, len(flags)))], FLAG_VALUES[int(rng.integers(0, len(FLAG_VALUES)))]]
            yield kind, f"flags{k}", argv
        else:
            folder, base = bases[int(rng.integers(0, len(bases)))]
            yield kind, f"ckpt{k}", (folder, _config(rng, base))


# {input} is a copy of the etude's performance named "r-1.mid" (or "r.mid"); every command must refuse in one line
ALIASES = [
    ["render", "{dir}/r-1.mid", "-o", "{dir}/r.mid", "--variations", "2"],
    ["render", "{dir}/r.mid", "-o", "{dir}/x.mid", "--tempo-mapped", "{dir}/r.mid"],
    ["render", "{dir}/r.mid", "-o", "{dir}/q.mid", "--tempo-mapped", "{dir}/q.mid"],
    ["continue", "{dir}/r-1.mid", "-o", "{dir}/r.mid", "--variations", "2"],
    ["infill", "{dir}/r-2.mid", "-o", "{dir}/r.mid", "--variations", "3", "--from", "1", "--to", "2"],
    ["synth", "{dir}/r.mid", "-o", "{dir}/r.mid"],
    ["embed", "{dir}/r.mid", "-o", "{dir}/r.mid"],
    ["embed", "{dir}/r-1.mid", "{dir}/r.mid", "-o", "{dir}/r.mid"],
]


def _huge_inputs() -> list[bytes]:
    """A 200,000-division note in MusicXML, and a MIDI file with notes at 0 s and 40,000 s."""
    from espressivo import Performance
    from espressivo.io.midi import midi_bytes

    xml = (EXAMPLES / "etude.musicxml").read_text()
    long_note = xml.replace("<duration>", "<duration>200000", 1).encode()
    far = midi_bytes(Performance.from_arrays([0.0, 40_000.0], [0.5, 0.5], [60, 62], 64))
    return [long_note, far]


class _LazyHuge:
    def __getitem__(self, k):
        if not hasattr(self, "items"):
            self.items = _huge_inputs()
        return self.items[k]


HUGE = _LazyHuge()


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _limit(seconds: float):
    def stop(*_):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _prepared(kind: str, name: str, payload, workdir: Path) -> list[str]:
    """The files a case reads, written into ``workdir``, and its command line."""
    if kind == "huge":
        path = workdir / name
        path.write_bytes(payload)
        return ["synth", str(path), "-o", str(workdir / f"{name}.wav")]
    for stem in ("r", "r-1", "r-2"):
        (workdir / f"{stem}.mid").write_bytes((EXAMPLES / "etude_performance.mid").read_bytes())
    argv = [a.format(dir=workdir) for a in payload]
    if argv[0] == "continue":
        argv += ["--seconds", "1"]
    return argv


def run_case(kind: str, name: str, payload, workdir: Path, seconds: float = 20.0) -> tuple[str, str]:
    """Feed one case to its entry point: ``(outcome, detail)``."""
    from espressivo.cli import main
    from espressivo.io import read_midi, read_score

    try:
        with (
            _limit(seconds),
            contextlib.redirect_stderr(io.StringIO()) as err,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            if kind in ("alias", "huge"):
                argv = _prepared(kind, name, payload, workdir)
                before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
                try:
                    code = main(argv)
                except SystemExit as exit_:
                    code = exit_.code
                lines = err.getvalue().strip().splitlines()
                changed = [n for n, data in before.items() if (workdir / n).read_bytes() != data]
                if changed:
                    return "crash", f"{' '.join(argv[:2])}: wrote over {changed}"
                if code == 2 and len(lines) == 1:
                    return "clean", lines[-1]
                return "crash", f"exit {code}: {' | '.join(lines[-3:])}"
            if kind == "flags":  # a score that does not exist: valid flags end at "no such file" (exit 2)
                argv = list(payload)
                if argv[0] in ("render", "info"):
                    argv.insert(1, str(workdir / "missing.musicxml"))
                elif argv[0] == "continue":
                    argv.insert(1, str(workdir / "missing.mid"))
                argv += ["-o", str(workdir / "out.mid")] if argv[0] in ("render", "generate", "continue") else []
                if argv[0] in ("generate", "continue", "evaluate"):  # valid flags end at "no such model"
                    argv += ["--model", str(workdir / "no-model")]
                try:
                    code = main(argv)
                except SystemExit as exit_:  # argparse's own usage errors
                    code = exit_.code
                lines = err.getvalue().strip().splitlines()
                if code == 2 and len(lines) == 1:
                    return ("ok" if code == 0 else "clean"), lines[-1] if lines else ""
                return "crash", f"exit {code}: {' | '.join(lines[-3:])}"
            if kind == "checkpoint":
                from espressivo.models.checkpoint import load_pretrained

                source, config = payload
                folder = workdir / name
                folder.mkdir()
                for part in source.iterdir():
                    if part.is_file() and part.name != "config.json":
                        (folder / part.name).symlink_to(part)
                (folder / "config.json").write_text(json.dumps(config))
                load_pretrained(folder)
                return "ok", ""
            path = workdir / name
            path.write_bytes(payload)
            (read_midi if kind == "midi" else read_score)(path)
            return "ok", ""
    except EspressivoError as error:
        return "clean", str(error).splitlines()[0] if str(error) else ""
    except _Timeout:
        return "hang", f"over {seconds} s"
    except Exception as error:  # the finding
        return "crash", f"{type(error).__name__}: {error}"[:300]
