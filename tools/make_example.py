"""Write the bundled example: an original 8-bar etude (MusicXML), a rule-based "human" performance of
it (MIDI with pedal) and their note alignment ((n)ASAP TSV).  Composition and rules are this project's
own, so the files may ship.  Run: ``python tools/make_example.py`` (deterministic; seed 7)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from espressivo import Performance, write_midi

OUT = Path(__file__).resolve().parents[1] / "src" / "espressivo" / "examples"
STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
QPM = 72
# right hand: (pitch name, quarters) per bar; left hand: broken-chord eighths per bar
MELODY = [
    [("E5", 1), ("D5", 0.5), ("C5", 0.5), ("G5", 2)],
    [("A5", 1), ("G5", 1), ("E5", 2)],
    [("F5", 1), ("A5", 1), ("C6", 1), ("A5", 1)],
    [("G5", 3), ("F5", 1)],
    [("E5", 1), ("G5", 1), ("C6", 1), ("E6", 1)],
    [("D6", 1), ("C6", 1), ("A5", 2)],
    [("G5", 1), ("F5", 1), ("D5", 1), ("B4", 1)],
    [("C5", 4)],
]
BASS = [
    ["C3", "G3", "E4", "G3"],
    ["A2", "E3", "C4", "E3"],
    ["F2", "C3", "A3", "C3"],
    ["G2", "D3", "B3", "D3"],
    ["C3", "G3", "E4", "G3"],
    ["F2", "C3", "A3", "C3"],
    ["G2", "F3", "B3", "F3"],
    None,
]
DYNAMICS = {0: "p", 4: "mf"}


def midi(name: str) -> int:
    return STEPS[name[0]] + 12 * (int(name[1:]) + 1)


def notes_of_piece():
    """(id, staff, voice, onset_quarter, duration_quarter, pitch name) for every written note."""
    rows, n = [], 1
    for bar in range(8):
        t = bar * 4.0
        for name, dur in MELODY[bar]:
            rows.append((f"n{n}", 1, 1, t, dur, name))
            n += 1
            t += dur
        if BASS[bar] is None:
            for name in ("C3", "G3", "C4"):
                rows.append((f"n{n}", 2, 5, bar * 4.0, 4.0, name))
                n += 1
        else:
            for k, name in enumerate(BASS[bar] * 2):
                rows.append((f"n{n}", 2, 5, bar * 4.0 + k * 0.5, 0.5, name))
                n += 1
    return rows


def musicxml(rows) -> str:
    types = {0.5: "eighth", 1: "quarter", 2: "half", 3: "half", 4: "whole"}
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<score-partwise version="3.1">',
        "<work><work-title>Espressivo Etude No. 1</work-title></work>",
        '<identification><creator type="composer">espressivo project</creator>'
        "<rights>CC0 1.0: dedicated to the public domain</rights></identification>",
        '<part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>',
        '<part id="P1">',
    ]
    for bar in range(8):
        out.append(f'<measure number="{bar + 1}">')
        if bar == 0:
            out.append(
                "<attributes><divisions>2</divisions><key><fifths>0</fifths><mode>major</mode></key>"
                "<time><beats>4</beats><beat-type>4</beat-type></time><staves>2</staves>"
                '<clef number="1"><sign>G</sign><line>2</line></clef>'
                '<clef number="2"><sign>F</sign><line>4</line></clef></attributes>'
            )
            out.append(
                '<direction placement="above"><direction-type><words>Andante cantabile</words></direction-type>'
                "<staff>1</staff></direction>"
            )
            out.append(
                '<direction placement="above"><direction-type><metronome><beat-unit>quarter</beat-unit>'
                f"<per-minute>{QPM}</per-minute></metronome></direction-type><staff>1</staff>"
                f'<sound tempo="{QPM}"/></direction>'
            )
        if bar in DYNAMICS:
            out.append(
                f'<direction placement="below"><direction-type><dynamics><{DYNAMICS[bar]}/></dynamics>'
                "</direction-type><staff>1</staff></direction>"
            )
        for staff in (1, 2):
            if staff == 2:
                out.append("<backup><duration>8</duration></backup>")
            bar_rows = [r for r in rows if r[1] == staff and bar * 4 <= r[3] < bar * 4 + 4]
            previous_onset = None
            for note_id, _, voice, onset, dur, name in bar_rows:
                chord = "<chord/>" if onset == previous_onset else ""
                previous_onset = onset
                dot = "<dot/>" if dur == 3 else ""
                out.append(
                    f'<note id="{note_id}">{chord}<pitch><step>{name[0]}</step><octave>{name[1:]}</octave>'
                    f"</pitch><duration>{int(dur * 2)}</duration><voice>{voice}</voice>"
                    f"<type>{types[dur]}</type>{dot}<staff>{staff}</staff></note>"
                )
        if bar == 7:
            out.append('<barline location="right"><bar-style>light-heavy</bar-style></barline>')
        out.append("</measure>")
    out += ["</part>", "</score-partwise>", ""]
    return "\n".join(out)


def perform(rows, seed: int = 7):
    """A rule-based performance: phrase-arch tempo and dynamics, melody lead, legato, syncopated pedal."""
    rng = np.random.default_rng(seed)
    onset_q = np.array([r[3] for r in rows])
    dur_q = np.array([r[4] for r in rows])
    staff = np.array([r[1] for r in rows])
    pitch = np.array([midi(r[5]) for r in rows])
    # tempo: arch over each 4-bar phrase (16 quarters) with a ritardando into its end
    grid = np.linspace(0, 32, 3201)
    pos = (grid % 16) / 16
    qpm = QPM * (1 + 0.07 * np.sin(np.pi * pos) - 0.22 * np.clip((grid % 16 - 14.5) / 1.5, 0, 1) ** 2)
    qpm[grid >= 30] = QPM * (1 - 0.3 * ((grid[grid >= 30] - 30) / 2))
    seconds = np.concatenate([[0], np.cumsum(np.diff(grid) * 60 / qpm[:-1])]) + 0.5
    at = lambda q: np.interp(q, grid, seconds)  # noqa: E731
    melody = staff == 1
    onset = at(onset_q) + rng.normal(0, 0.006, len(rows)) - np.where(melody, 0.018, 0.0)
    offset = at(onset_q + dur_q) + np.where(melody, 0.03, -0.04)
    arch = np.sin(np.pi * ((onset_q % 16) / 16))
    level = np.where(onset_q >= 16, 10, 0)
    velocity = np.where(melody, 62 + 14 * arch, 40 + 8 * arch) + level
    velocity += np.where(~melody & (onset_q % 4 == 0), 6, 0) + rng.normal(0, 2, len(rows))
    pedal = []
    for bar in range(8):
        pedal.append((at(bar * 4.0) + 0.07, 64, 100))
        if bar < 7:
            pedal.append((at(bar * 4.0 + 4) - 0.03, 64, 0))
    pedal.append((at(32.0) + 0.4, 64, 0))
    perf = Performance.from_arrays(onset, offset - onset, pitch, np.clip(np.rint(velocity), 1, 127), controls=pedal)
    return perf, onset


def main() -> None:
    rows = notes_of_piece()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "etude.musicxml").write_text(musicxml(rows), encoding="utf-8")
    perf, onset = perform(rows)
    write_midi(perf, OUT / "etude_performance.mid")
    # performance ids follow the canonical (onset, pitch, ...) order; find each written note's id
    order = np.lexsort((np.array([midi(r[5]) for r in rows]), onset))
    perf_id = np.empty(len(rows), int)
    perf_id[order] = perf.notes["id"]
    lines = ["xml_id\tmidi_id\ttrack\tchannel\tpitch\tonset"]
    for (note_id, *_rest, name), pid in zip(rows, perf_id, strict=True):
        note = perf.notes[perf.notes["id"] == pid][0]
        assert note["pitch"] == midi(name)
        lines.append(f"{note_id}\tn{pid}\t0\t0\t{note['pitch']}\t{note['onset_sec']:.6f}")
    with gzip.open(OUT / "etude_alignment.tsv.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {len(rows)} notes, {perf.end_sec:.1f} s to {OUT}")


if __name__ == "__main__":
    main()
