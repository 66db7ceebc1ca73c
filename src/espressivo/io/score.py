"""Scores (MusicXML, compressed .mxl, MEI, Humdrum kern, MIDI) → :class:`Score`, through partitura.

Hostile input is stopped before partitura parses it: only existing local files are read (partitura
itself would fetch URLs), XML that declares entities is refused (XXE, entity bombs), ``.mxl``
archives are decompressed with a hard size cap (zip bombs), and partitura is imported so that it
cannot download its soundfont (it does so at import time when pyfluidsynth is installed).
"""

from __future__ import annotations

import io
import os
import re
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from espressivo.core.score import (
    DYNAMICS_DTYPE,
    KEY_SIGNATURE_DTYPE,
    MARKS_DTYPE,
    MEASURE_DTYPE,
    TEMPO_DTYPE,
    TIME_SIGNATURE_DTYPE,
    Score,
    score_note_dtype,
)
from espressivo.errors import EspressivoError
from espressivo.io.midi import parse_midi
from espressivo.io.partitura_linear import install
from espressivo.io.safety import (
    MAX_MIDI_BYTES,
    MAX_SCORE_BYTES,
    check_file,
    extract_musicxml,
    read_bytes,
    reject_entities,
)

SCORE_SUFFIXES = {
    ".musicxml": "musicxml",
    ".xml": "musicxml",
    ".mxl": "mxl",
    ".mei": "mei",
    ".krn": "kern",
    ".kern": "kern",
    ".mid": "midi",
    ".midi": "midi",
}


def import_partitura():
    """Import partitura with its import-time soundfont download made impossible."""
    if "partitura" in sys.modules:
        return sys.modules["partitura"]
    blocked = "fluidsynth" not in sys.modules
    if blocked:
        sys.modules["fluidsynth"] = None  # makes `import fluidsynth` fail inside partitura
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import partitura
    finally:
        if blocked and sys.modules.get("fluidsynth", 0) is None:
            del sys.modules["fluidsynth"]

    install(partitura)  # its two quadratic steps, in linear time
    import partitura.io.importmei as importmei

    importmei.VEROVIO_AVAILABLE = False  # partitura's own MEI reader, installed verovio or not: verovio (the
    # studio's notation) would round-trip every MEI through C++ that a hostile file can crash
    return partitura


def read_score(path: str | os.PathLike, *, unfold: bool = False) -> Score:
    """Load a score file; ``unfold=True`` expands repeats maximally (ids get ``-1``, ``-2`` pass suffixes,
    as in the (n)ASAP alignments)."""
    path = check_file(path, MAX_SCORE_BYTES)
    kind = SCORE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise EspressivoError(
            f"{path}: unknown score format {path.suffix!r} (expected one of {', '.join(SCORE_SUFFIXES)})"
        )
    pt = import_partitura()
    arpeggios, chord_graces = {}, frozenset()  # read from MusicXML only
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind in ("mxl", "musicxml"):
                data = read_bytes(path, MAX_SCORE_BYTES)
                if data[:2] == b"PK":  # compressed, whatever the suffix says
                    data = extract_musicxml(path)
                elif kind == "mxl":
                    raise EspressivoError(f"{path}: not a compressed MusicXML file (not a zip archive)")
                reject_entities(data, path.name)
                data, arpeggios, chord_graces = prepare_musicxml(data)
                document = pt.load_musicxml(io.BytesIO(data), quiet=True)
            elif kind == "mei":
                data = read_bytes(path, MAX_SCORE_BYTES)
                reject_entities(data, path.name)
                _check_note_count(len(re.findall(rb"<note[\s/>]", data)))
                document = pt.load_mei(str(path), quiet=True)
            elif kind == "kern":
                _check_note_count(_kern_notes(read_bytes(path, MAX_SCORE_BYTES)))
                document = pt.load_kern(str(path), quiet=True)
            else:
                data = read_bytes(path, MAX_MIDI_BYTES)
                if data[:4] != b"MThd":
                    raise EspressivoError(f"{path}: not a MIDI file (no MThd header)")

                _check_note_count(len(parse_midi(data, name=str(path), allow_empty=True)))
                document = pt.load_score_midi(str(path), quiet=True)
            parts = list(document.parts) if hasattr(document, "parts") else list(pt.score.iter_parts(document))
            written = parts  # markings are read before unfolding (partitura's unfolding drops slurs)
            problems = []
            if unfold:
                try:
                    parts = [_unfold(pt, part) for part in parts]
                except RecursionError:
                    raise
                except Exception as err:  # partitura's repeat expansion fails on some real files
                    unfold = False
                    problems.append(f"{path.name}: repeats not expanded ({type(err).__name__}); playing the score "
                                    "as written, once (as --no-repeats)")  # fmt: skip
            score = _to_score(pt, parts, title=_title(document, path), unfolded=unfold, chord_graces=chord_graces)
            if unfold and len(score) > MAX_SCORE_NOTES:  # the repeats played out: as many notes as it reads at most
                raise EspressivoError(f"{len(score):,} notes with the repeats played out: more than espressivo renders "
                                      f"in one score ({MAX_SCORE_NOTES:,}); read it with --no-repeats")  # fmt: skip
            problem = None
            if kind != "midi":
                score, problem = _with_marks(pt, written, score, path)
            score = _mark_arpeggios(score, arpeggios)
        for message in [*problems, problem]:
            if message:
                warnings.warn(message, stacklevel=2)
        return score
    except EspressivoError as err:
        if str(path) in str(err):
            raise
        raise EspressivoError(f"{path}: {err}") from None
    except RecursionError:
        raise EspressivoError(f"{path}: score structure too deeply nested to read") from None
    except Exception as err:  # partitura raises many types on malformed files
        message = str(err).splitlines()[0][:200] if str(err) else ""
        raise EspressivoError(f"{path}: cannot read {kind} score ({type(err).__name__}: {message})") from None


# partitura note-feature descriptors -> espressivo's mark fields (several descriptors may feed one field: max)
_MARK_SOURCES = {
    "staccato": ("articulation_feature.staccato", "articulation_feature.staccatissimo", "articulation_feature.spiccato",
                 "articulation_direction_feature.staccato"),
    "accent": ("articulation_feature.accent", "articulation_feature.strong-accent", "articulation_feature.stress",
               "articulation_direction_feature.accent", "articulation_direction_feature.marcato"),
    "tenuto": ("articulation_feature.tenuto", "articulation_feature.detached-legato",
               "articulation_direction_feature.tenuto"),
    "fermata": ("fermata_feature.fermata",),
    "sforzando": ("loudness_direction_feature.sf", "loudness_direction_feature.sfz", "loudness_direction_feature.fp",
                  "loudness_direction_feature.sfp", "loudness_direction_feature.unknown_impulsive"),
    "slur_incr": ("slur_feature.slur_incr",),
    "slur_decr": ("slur_feature.slur_decr",),
    "crescendo": ("loudness_direction_feature.loudness_incr",),
    "diminuendo": ("loudness_direction_feature.loudness_decr",),
    "accelerando": ("tempo_direction_feature.tempo_incr",),
    "ritardando": ("tempo_direction_feature.tempo_decr",),
}  # fmt: skip
_MARK_FUNCTIONS = ["articulation_feature", "articulation_direction_feature", "fermata_feature",
                   "loudness_direction_feature", "ornament_feature", "slur_feature",
                   "tempo_direction_feature"]  # fmt: skip


def _part_marks(pt, part) -> tuple[np.ndarray, np.ndarray]:
    """(note ids, MARKS_DTYPE rows) of one part from partitura's note-feature functions."""
    from partitura.musicanalysis import make_note_features

    table = make_note_features(part, list(_MARK_FUNCTIONS), add_idx=True)  # rows carry their note's id
    names = [name for name in table.dtype.names if name != "id"]
    ids = table["id"].astype(str)
    values = np.stack([table[name] for name in names], 1) if names else np.zeros((len(ids), 0))
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    column = {name: k for k, name in enumerate(names)}
    out = np.zeros(len(ids), MARKS_DTYPE)
    for field, sources in _MARK_SOURCES.items():
        cols = [column[s] for s in sources if s in column]
        if cols:
            out[field] = np.clip(values[:, cols].max(axis=1), 0.0, 1.0)
    ornaments = [k for name, k in column.items() if name.startswith("ornament_feature.")]
    if ornaments:
        out["ornament"] = np.clip(values[:, ornaments].max(axis=1), 0.0, 1.0)
    return ids, out


def _with_marks(pt, parts: list, score: Score, path: Path) -> tuple[Score, str | None]:
    """``score`` with ``marks`` from partitura's note features; unchanged (no marks) with a one-line warning
    to give where they cannot be computed (odd directions, missing voices): the score still renders."""
    try:
        found = [_part_marks(pt, part) for part in parts]
        ids = np.concatenate([i for i, _ in found]) if found else np.zeros(0, str)
        rows = np.concatenate([m for _, m in found]) if found else np.zeros(0, MARKS_DTYPE)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        want = score.notes["id"]
        if score.unfolded:  # a pass's copy: its id before the "-k" suffix
            want = np.char.rpartition(want, "-")[:, 0]
        pos = np.clip(np.searchsorted(sorted_ids, want), 0, max(len(ids) - 1, 0))
        hit = (sorted_ids[pos] == want) if len(ids) else np.zeros(len(want), bool)
        marks = np.zeros(len(want), MARKS_DTYPE)
        marks[hit] = rows[order[pos[hit]]]
        if len(want) and hit.mean() < 0.9:
            raise ValueError(f"only {hit.mean():.0%} of the notes matched")
    except RecursionError:
        return score, f"{path.name}: markings not read (structure too deep); rendering without them"
    except Exception as err:  # partitura's feature functions raise many types on odd scores
        message = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        return score, f"{path.name}: markings not read ({message}); rendering without them"
    return replace(score, marks=marks), None


MAX_SCORE_NOTES = 50_000  # written notes of a MusicXML score (the longest piano works have about 20,000): ~1 min
NOTE_ID = "espressivo-"  # + a number: the id given to a note that has none in the file


def _check_note_count(count: int) -> None:
    """Every format is counted before partitura parses it (its reading grows faster than the length)."""
    if count > MAX_SCORE_NOTES:
        raise EspressivoError(f"{count:,} notes: more than espressivo reads in one score ({MAX_SCORE_NOTES:,}; "
                              "partitura's reading grows faster than the length); split it into movements")  # fmt: skip


def _kern_notes(data: bytes) -> int:
    """Notes of a **kern file: the tokens of its data records that name a pitch (a-g, A-G) and are not rests."""
    count = 0
    for line in data.splitlines():
        if not line or line[:1] in (b"*", b"!", b"="):
            continue
        for token in line.split():
            if b"r" not in token and re.search(rb"[a-gA-G]", token):
                count += 1
    return count


def prepare_musicxml(data: bytes) -> tuple[bytes, dict[str, int], frozenset[str]]:
    """The document to parse, its arpeggio marks and the grace notes that continue a grace chord.

    Every ``<note>`` without an ``id`` is given one (``NOTE_ID`` + its index): partitura keeps the ids it finds
    and leaves the others ``None``, which breaks its own grace-note handling (files exported by notation
    programs seldom carry note ids) and would lose the marks below.  The marks: the notes marked
    ``<arpeggiate>`` (rolled chord), ``{note id: +1 (upwards, the default) or -1 (direction "down")}``;
    partitura reads no arpeggio marks itself.  The grace chords: the ids of grace notes marked ``<chord/>``
    (struck with the grace note before them; partitura links them into its grace sequence as if they came after
    it)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return data, {}, frozenset()  # partitura reports the malformed file
    _check_semantics(root)
    _check_note_count(sum(1 for _ in root.iter("note")))
    missing = [note for note in root.iter("note") if not note.get("id")]
    taken = {note.get("id") for note in root.iter("note")}
    for k, note in enumerate(missing):
        ident = f"{NOTE_ID}{k}"
        while ident in taken:
            ident += "x"
        note.set("id", ident)
    marks: dict[str, int] = {}
    for mark in root.iter("arpeggiate"):
        note = mark.getparent().getparent() if mark.getparent() is not None else None
        if note is not None and note.tag == "note" and note.find("rest") is None:
            marks[note.get("id")] = -1 if mark.get("direction") == "down" else 1
    notes = root.iter("note")
    chords = frozenset(n.get("id") for n in notes if n.find("grace") is not None and n.find("chord") is not None)
    return (etree.tostring(root) if missing else data), marks, chords


def _number(element, name: str) -> float | None:
    text = (element.text or "").strip()
    try:
        return float(text)
    except ValueError:
        raise EspressivoError(f"<{name}> is not a number: {text[:20]!r}") from None


MIN_QPM, MAX_QPM = 1.0, 2000.0  # a tempo outside is a typo or an attack, not music
# <divisions> of 10^12 makes every duration vanish (a score of 0 s); real files use up to a few tens of thousands
UPPER_BOUNDS = {"divisions": 1e6, "per-minute": MAX_QPM}


def _check_semantics(root) -> None:
    """Refuse, in one line, what partitura would read into nonsense: ``<divisions>`` of 0 or below (0 doubles the
    piece), durations that are not finite, a time signature of 0 beats or beat type, a metronome
    mark or sound tempo that is not a positive number."""
    for name, low, allow_equal in (("divisions", 0.0, False), ("duration", -np.inf, True), ("beats", 0.0, False),
                                   ("beat-type", 0.0, False), ("per-minute", 0.0, False)):  # fmt: skip
        # (a negative <duration> occurs in real files, e.g. (n)ASAP's Kreisleriana 3, and partitura copes)
        for element in root.iter(name):
            if name == "beats" and "+" in (element.text or ""):
                continue  # composite meters such as 3+2
            if name == "per-minute":  # free text in MusicXML ("c. 132"): judge the number in it, if any
                found = re.search(r"-?\d+(\.\d*)?", element.text or "")
                if found is None:
                    continue
                element = type("Text", (), {"text": found.group(0)})
            value = _number(element, name)
            high = UPPER_BOUNDS.get(name, np.inf)
            if not np.isfinite(value) or value < low or (value == low and not allow_equal) or value > high:
                raise EspressivoError(f"<{name}>{(element.text or '').strip()[:20]}</{name}> makes no sense in a score")
    for sound in root.iter("sound"):
        tempo = sound.get("tempo")
        if tempo is not None:
            try:
                value = float(tempo)
            except ValueError:
                raise EspressivoError(f'<sound tempo="{tempo[:20]}"> is not a number') from None
            if not np.isfinite(value) or not MIN_QPM <= value <= MAX_QPM:
                bounds = f"{MIN_QPM:g}..{MAX_QPM:g} quarters a minute"
                raise EspressivoError(f'<sound tempo="{tempo[:20]}"> makes no sense in a score ({bounds})')


def _mark_arpeggios(score: Score, marks: dict[str, int]) -> Score:
    """``score`` with ``notes["arpeggio"]`` set from the marks (an unfolded note's id carries a ``-k`` suffix)."""
    if not marks or not len(score):
        return score
    ids = score.notes["id"]
    direction = _values_by_id(ids, marks).astype(np.int8)
    if score.unfolded:  # a pass's copy: its id before the "-k" suffix
        by_pass = _values_by_id(np.char.rpartition(ids, "-")[:, 0], marks).astype(np.int8)
        direction = np.where(direction != 0, direction, by_pass)
    if not direction.any():
        return score
    notes = score.notes.copy()
    notes["arpeggio"] = direction
    return replace(score, notes=notes)


def _unfold(pt, part):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # partitura deep-copies the linked timeline
    try:
        return pt.score.unfold_part_maximal(part, update_ids=True)
    finally:
        sys.setrecursionlimit(limit)


def _title(document, path: Path) -> str:
    for attribute in ("title", "work_title", "movement_title"):
        value = getattr(document, attribute, None)
        if value:
            return str(value)
    return path.stem


def _grace_positions(pt, part, na: np.ndarray, chord_graces: frozenset[str]) -> np.ndarray:
    """Per row of ``na``: 0 for an ordinary note, k for a grace note of the k-th stroke of its sequence.

    partitura gives every grace note of a sequence its main note's onset; the written order is only in the
    links between the notes (``grace_prev``), which the note array does not carry (its ``local_grace_order``
    is 0 throughout a run of grace chords).  A note in ``chord_graces`` (an unfolded copy: its id before the
    ``-k`` pass suffix) is struck with the one before it."""

    def continues(note) -> bool:
        return note.id in chord_graces or str(note.id).rpartition("-")[0] in chord_graces

    strokes = {
        str(note.id): sum(not continues(n) for n in note.iter_grace_seq(backwards=True)) or 1
        for note in part.iter_all(pt.score.GraceNote)
    }
    return _values_by_id(na["id"].astype(str), strokes)


def _values_by_id(ids: np.ndarray, table: dict[str, int]) -> np.ndarray:
    """``table[id]`` for every id (0 where it has none), looked up in one sorted search."""
    out = np.zeros(len(ids), np.int64)
    if table and len(ids):
        keys = np.array(sorted(table), dtype=str)
        values = np.array([table[k] for k in keys.tolist()], np.int64)
        ids = np.asarray(ids).astype(str)
        at = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        hit = keys[at] == ids
        out[hit] = values[at[hit]]
    return out


def _to_score(pt, parts: list, title: str, unfolded: bool, chord_graces: frozenset[str] = frozenset()) -> Score:
    if not parts:
        raise EspressivoError("score has no parts")
    arrays = []
    for index, part in enumerate(parts):
        na = part.note_array(include_staff=True, include_grace_notes=True)
        arrays.append((index, na, _grace_positions(pt, part, na, chord_graces)))
    total = sum(len(na) for _, na, _ in arrays)
    id_length = max([1] + [int(np.char.str_len(na["id"].astype(str)).max()) for _, na, _ in arrays if len(na)])
    notes = np.zeros(total, score_note_dtype(id_length))
    grace_position = np.concatenate([position for _, _, position in arrays])
    start = 0
    for index, na, _ in arrays:
        pitch = np.asarray(na["pitch"], dtype=np.float64)
        if len(pitch) and not (np.isfinite(pitch).all() and pitch.min() >= 0 and pitch.max() <= 127):
            bad = pitch[~(np.isfinite(pitch) & (pitch >= 0) & (pitch <= 127))][0]
            raise EspressivoError(f"a note's pitch ({bad:.0f}) lies outside MIDI's 0..127 (check <octave> and <alter>)")
        rows = slice(start, start + len(na))
        for name in ("onset_beat", "duration_beat", "onset_quarter", "duration_quarter", "pitch", "voice"):
            notes[name][rows] = na[name]
        notes["id"][rows] = na["id"].astype(str)
        notes["staff"][rows] = na["staff"] if "staff" in na.dtype.names else 0
        notes["is_grace"][rows] = na["is_grace"] if "is_grace" in na.dtype.names else False
        notes["part"][rows] = index
        start += len(na)
    # rows by onset, then pitch; a sequence of grace notes after the notes of its onset, in written order (the
    # notes of a grace chord from the top, the order in which the renderer plays a chord)
    pitch = np.where(grace_position > 0, -notes["pitch"].astype(np.int64), notes["pitch"])
    notes = notes[np.lexsort((pitch, grace_position, notes["onset_quarter"]))]
    first = parts[0]
    q = first.quarter_map
    b = first.beat_map

    def rows(objects, dtype, fill):
        out = np.zeros(len(objects), dtype)
        for i, obj in enumerate(objects):
            out[i] = fill(obj)
        return out[np.argsort(out["onset_quarter"], kind="stable")]

    time_sigs = rows(
        list(first.iter_all(pt.score.TimeSignature)),
        TIME_SIGNATURE_DTYPE,
        lambda ts: (float(q(ts.start.t)), float(b(ts.start.t)), ts.beats, ts.beat_type),
    )
    key_sigs = rows(
        list(first.iter_all(pt.score.KeySignature)),
        KEY_SIGNATURE_DTYPE,
        lambda ks: (float(q(ks.start.t)), ks.fifths, ks.mode or ""),
    )
    tempos = [
        (float(q(t.start.t)), round(6e7 / t.microseconds_per_quarter, 3), "")
        for t in first.iter_all(pt.score.Tempo)
        if t.microseconds_per_quarter
    ]
    tempos += [
        (float(q(d.start.t)), np.nan, str(d.text)[:32])
        for d in first.iter_all(pt.score.TempoDirection, include_subclasses=True)
        if getattr(d, "text", None)
    ]
    tempo_marks = rows(tempos, TEMPO_DTYPE, lambda row: row)
    dynamics = rows(
        [
            (float(q(d.start.t)), str(d.text)[:32])
            for part in parts
            for d in part.iter_all(pt.score.LoudnessDirection, include_subclasses=True)
            if getattr(d, "text", None)
        ],
        DYNAMICS_DTYPE,
        lambda row: row,
    )
    measures = rows(
        list(first.iter_all(pt.score.Measure)),
        MEASURE_DTYPE,
        lambda m: (float(q(m.start.t)), m.number if m.number is not None else -1),
    )
    return Score(notes, time_sigs, key_sigs, tempo_marks, dynamics, measures, title=title, unfolded=unfolded)
