"""The studio's work, apart from HTTP: scores opened, takes rendered in a bounded pool, their files and views.

A *score* is an uploaded (or bundled) file read once (repeats unfolded, as ``espressivo render`` plays it).  A
*take* is one performance of it: a rendering (any shipped renderer, through :func:`espressivo.render.render`
and its option groups), the deadpan, a pianist's performance (bundled and (n)ASAP examples), or a passage of
another take rendered again (:mod:`espressivo.render.passage`).  Takes run in a pool of ``workers`` threads
(each rendering on one torch thread, so never more model threads than cores), first come first served, at most
``max_pending`` waiting per score; each can be cancelled until it is done.  Files go to a :class:`Store`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from espressivo.core import SUSTAIN, Alignment, Performance, Score
from espressivo.errors import EspressivoError
from espressivo.generate.draw import MAX_SEED
from espressivo.studio.store import Store

SUFFIXES = (".musicxml", ".xml", ".mxl", ".mei", ".krn", ".mid", ".midi")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SAMPLE_RATE = 22050  # audio for the page: half the CD rate, half its bytes
MAX_PENDING = 6
MAX_SCORES = 100  # scores kept open in memory (the oldest closed first, with their takes)


class Cancelled(Exception):
    pass


@dataclass
class ScoreEntry:
    id: str
    name: str
    score: Score
    summary: dict
    humans: list = field(default_factory=list)  # (label, Performance, Alignment)
    reference: Performance | None = None  # a performance of the score's opening, to play "like this" (CVRNN)
    warnings: tuple[str, ...] = ()  # what reading it had to say (repeats not expanded, markings not read, ...)
    source: Path | None = None  # the file it was read from (the store's copy of an upload, or the example's)
    notation_pages: int = 0  # pages engraved into the store (notation-K.svg), 0 before the first request
    notation_total: int = 0  # pages the score has


@dataclass
class Take:
    id: str
    score_id: str
    kind: str  # render, deadpan, human, passage
    label: str
    settings: dict
    status: str = "queued"  # queued, running, done, failed, cancelled
    stage: str = "waiting"
    progress: float = 0.0
    error: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    performance: Performance | None = None
    view_json: bytes = b""  # what the page draws (performance_view), kept as compact JSON: a tenth of the memory
    files: tuple[str, ...] = ()
    client: str = ""  # who asked (the page's per-tab id; else the score): the queue takes turns between clients
    name: str = ""  # what the musician called it
    star: bool = False
    started: float = 0.0  # time.monotonic() when a worker took it up

    @property
    def view(self) -> dict | None:
        return json.loads(self.view_json) if self.view_json else None

    def public(self) -> dict:
        return {"id": self.id, "score": self.score_id, "kind": self.kind, "label": self.label, "name": self.name,
                "star": self.star,
                "settings": self.settings, "status": self.status, "stage": self.stage,
                "progress": round(self.progress, 2), "error": self.error, "files": list(self.files)}  # fmt: skip


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_WHOLE = re.compile(r"-?\d{1,30}", re.ASCII)


def _float(value, name: str, low: float, high: float, default=None) -> float | None:
    """A number from JSON: a JSON number, or a string of ASCII digits (``float`` alone would take other
    scripts' digits)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise EspressivoError(f"{name} must be a number")
    special = isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")
    if isinstance(value, str) and not special and not _NUMBER.fullmatch(value.strip()):
        raise EspressivoError(f"{name} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise EspressivoError(f"{name} must be a number") from None
    if not (np.isfinite(number) and low <= number <= high):
        raise EspressivoError(f"{name} must lie in {low:g}..{high:g}")
    return number


def _int(value, name: str, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise EspressivoError(f"{name} must be a whole number")
    if isinstance(value, str) and not _WHOLE.fullmatch(value.strip()):  # ASCII digits: "²".isdigit() is True
        raise EspressivoError(f"{name} must be a whole number")
    number = int(value)
    if not low <= number <= high:
        raise EspressivoError(f"{name} must lie in {low}..{high}")
    return number


TAKE_KEYS = {
    "render": ("kind", "model", "seed", "temperature", "tempo", "dynamics_scale", "expressiveness", "interpretation",
               "reference"),
    "deadpan": ("kind", "tempo"),
    "human": ("kind", "index"),
}  # fmt: skip


def _known(request: dict, keys) -> None:
    """A setting the studio does not know is refused, as the CLI refuses an unknown flag."""
    unknown = sorted(str(k)[:40] for k in request if k not in keys)
    if unknown:
        raise EspressivoError(f"unknown setting(s): {', '.join(unknown)} (known: {', '.join(keys)})")


def take_label(settings: dict) -> str:
    """What a rendered take is, by what differs from the renderer's defaults: ``phrase-small, seed 3, tempo 90,
    dynamics x1.2, expressiveness 1.5, variety 2, interpretation +2 z1 -1 z4 (changing), like the reference``."""
    words = [settings["model"], f"seed {settings['seed']}"]
    if settings.get("tempo"):
        words.append(f"tempo {settings['tempo']:g}")
    for key, name in (("dynamics_scale", "dynamics x"), ("expressiveness", "expressiveness "),
                      ("temperature", "variety ")):  # fmt: skip
        if settings.get(key, 1.0) not in (None, 1.0):
            words.append(f"{name}{settings[key]:g}")
    shift = settings.get("interpretation")  # {"start": [...], "end": [...]} (_render_settings)
    if shift:
        start, end = (" ".join(f"{v:+g} z{k + 1}" for k, v in enumerate(shift[at]) if v) for at in ("start", "end"))
        moved = start if shift["start"] == shift["end"] else f"{start or '0'} → {end or '0'}"
        if moved:
            words.append(f"interpretation {moved}")
    if settings.get("reference"):
        words.append("like the reference")
    return ", ".join(words)


def return_freed_memory() -> None:
    """Hand memory freed by a take back to the system.  glibc keeps freed heap in each worker thread's arena, and
    a render frees large blocks (a score's tensors, partitura's parse): without this the server's resident memory
    grew by about 2 MB a take (benchmarks/studio.py --takes; docs/benchmarks.md).  A no-op off glibc."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


def score_view(score: Score) -> dict:
    """What the page draws under every take: the bars (as played) and the dynamics markings."""
    starts = np.sort(score.measures["onset_quarter"]) if len(score.measures) else np.zeros(0)
    return {"bars": np.round(score.beat_from_quarter(starts), 4).tolist() if len(starts) else [],
            "first_bar": score.first_bar,
            "dynamics_at": [[round(float(score.beat_from_quarter(d["onset_quarter"])), 3), str(d["text"])]
                            for d in score.dynamics]}  # fmt: skip


def performance_view(score: Score, perf: Performance, alignment: Alignment | None = None) -> dict:
    """A take as the page draws it: notes, pedal, and its tempo and loudness curves over score beats."""
    from espressivo.viz.curves import expression_curves

    notes = perf.notes
    down, up = perf.pedal_intervals(SUSTAIN)
    view = {
        "duration": round(float(perf.end_sec), 3),
        "notes": np.round(
            np.column_stack([notes["onset_sec"], notes["duration_sec"], notes["pitch"], notes["velocity"]]), 4
        ).tolist(),
        "pedal": np.round(np.column_stack([down, up]), 4).tolist(),
    }
    if alignment is None:  # a rendering: notes["id"] is the score row
        alignment = Alignment.from_pairs(score.notes["id"][notes["id"]], notes["id"])
    # each note's id in the score file (repeats unfolded carry "-K"): the notation lights these
    written = dict(zip(alignment.matches["performance_id"].astype(str).tolist(),
                       alignment.matches["score_id"].astype(str).tolist(), strict=True))  # fmt: skip
    played = [written.get(str(i), "") for i in notes["id"].tolist()]  # "" for an extra note
    view["ids"] = [re.sub(r"-\d+$", "", s) for s in played]
    row = {str(k): r for r, k in enumerate(score.notes["id"].tolist())}  # and its score beat, as played
    view["beats"] = [round(float(score.notes["onset_beat"][row[s]]), 4) if s in row else None for s in played]
    try:
        curves = expression_curves(score, perf, alignment)
    except EspressivoError:
        curves = None
    if curves is not None:
        view["curves"] = {
            key: np.round(np.asarray(value, dtype=np.float64), 4).tolist() for key, value in curves.items()
        }
    return view


class Studio:
    def __init__(self, root: Path, workers: int = 0, max_pending: int = MAX_PENDING, synthesize_audio: bool = True):
        self.store = Store(root)
        self.workers = workers or max(1, min(os.cpu_count() or 1, 4))
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="studio-render")
        self.scores: dict[str, ScoreEntry] = {}
        self.takes: dict[str, Take] = {}
        self.max_pending = max_pending
        self.synthesize_audio = synthesize_audio
        self.audio_lock = threading.Lock()
        self.notation_lock = threading.Lock()  # one engraving at a time
        self.waiting: dict[str, deque] = {}  # per client, its takes in order
        self.turns: deque = deque()  # clients with waiting takes, in the order they get their next turn
        self.lock = threading.Lock()
        self._models: dict[str, object] = {}
        import torch

        # one torch thread for the whole process: workers render side by side, never more model threads than
        # workers (torch's thread count is global, so a per-render setting would race between workers)
        self._torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)

    # ------------------------------------------------------------------ scores
    def open_score(self, name: str, data: bytes) -> ScoreEntry:
        """A score from uploaded bytes; ``name`` only gives the format (its suffix)."""
        from espressivo.io import read_score

        suffix = Path(str(name).replace("\\", "/")).suffix.lower()
        if suffix not in SUFFIXES:
            raise EspressivoError(f"not a score file: give MusicXML, .mxl, MEI, kern or MIDI ({', '.join(SUFFIXES)})")
        if not data:
            raise EspressivoError("the file is empty")
        entry_id = self.store.new_id()
        path = self.store.write(entry_id, "score", data).rename(self.store.root / entry_id / f"score{suffix}")
        import warnings

        shown = Path(str(name)).name[:120] or "the upload"
        try:
            with warnings.catch_warnings(record=True) as caught:  # for the page, not only the server's console
                warnings.simplefilter("always")
                score = read_score(path, unfold=True)
        except EspressivoError as err:  # said of the file as the user named it, not of the store's copy
            raise EspressivoError(str(err).replace(str(path), shown)) from None
        if len(score) == 0:
            raise EspressivoError("the score has no notes")
        said = tuple(dict.fromkeys(str(w.message).replace(path.name, shown).splitlines()[0][:300] for w in caught))
        entry = self._add_score(entry_id, Path(str(name)).name[:120], score)
        entry.source = path
        entry.warnings = said[:10]
        return entry

    def open_example(self, which: str = "etude") -> ScoreEntry:
        """The bundled example (with a pianist's performance), or an (n)ASAP test piece ``asap:<folder>``."""
        from espressivo.io import read_alignment, read_midi, read_score

        if which == "etude":
            score = read_score(EXAMPLES / "etude.musicxml", unfold=True)
            alignment = read_alignment(EXAMPLES / "etude_alignment.tsv.gz")
            if not np.isin(alignment.matches["score_id"], score.notes["id"]).any():  # aligned to the score as
                ids = np.char.add(alignment.matches["score_id"].astype(str), "-1")  # written: unfolded ids carry -1
                alignment = Alignment.from_pairs(ids, alignment.matches["performance_id"])
            entry = self._add_score(self.store.new_id(), "etude.musicxml (bundled example)", score)
            entry.source = EXAMPLES / "etude.musicxml"
            entry.humans.append(("pianist", read_midi(EXAMPLES / "etude_performance.mid"), alignment))
            return entry
        items = {f"asap:{i.folder}": i for i in self.asap_examples()}
        if which not in items:
            raise EspressivoError(f"unknown example {which!r}")
        first = items[which]
        entry = self._add_score(self.store.new_id(), f"{first.folder} ((n)ASAP test)", first.load_score())
        entry.source = first.score_path
        for item in self.asap_performances(first.folder)[:3]:
            entry.humans.append((item.name, item.load_performance(), item.load_alignment()))
        return entry

    def asap_examples(self) -> list:
        """A few (n)ASAP test pieces, when the data is here (one performance each, as listed)."""
        try:
            from espressivo.data import AsapDataset

            seen, out = set(), []
            for item in AsapDataset(quiet=True).performances("test"):
                if item.folder not in seen and item.alignment_fits_score:
                    seen.add(item.folder)
                    out.append(item)
            return out[:12]
        except (EspressivoError, OSError):
            return []

    def asap_performances(self, folder: str) -> list:
        from espressivo.data import AsapDataset

        return [
            i for i in AsapDataset(quiet=True).performances("test") if i.folder == folder and i.alignment_fits_score
        ]

    def _add_score(self, entry_id: str, name: str, score: Score) -> ScoreEntry:
        from espressivo.io.summary import score_summary

        summary = score_summary(score) | score_view(score)
        entry = ScoreEntry(entry_id, name, score, summary)
        with self.lock:
            self.scores[entry_id] = entry
            busy = {t.score_id for t in self.takes.values() if t.status in ("queued", "running")}
            for old in [k for k in self.scores if k not in busy][: max(0, len(self.scores) - MAX_SCORES)]:
                del self.scores[old]
                for take_id in [t.id for t in self.takes.values() if t.score_id == old]:
                    del self.takes[take_id]
        return entry

    def notation(self, entry_id: str) -> dict:
        """The score engraved as SVG pages (Verovio), once per score, kept in the store: ``{"pages": shown,
        "total": in the score}``; a MIDI score has none (one line)."""
        from espressivo.studio.notation import engrave

        entry = self.score(entry_id)
        with self.notation_lock:
            if not entry.notation_pages:
                if entry.source is None or not entry.source.is_file():
                    raise EspressivoError("this score's file was cleared from the studio's store: open it again")
                folder = self.store.path(entry.id, "notation-1.svg").parent
                folder.mkdir(parents=True, exist_ok=True)
                entry.notation_pages, entry.notation_total = engrave(entry.source, folder)
        return {"pages": entry.notation_pages, "total": entry.notation_total}

    def notation_page(self, entry_id: str, page: int) -> Path:
        entry = self.score(entry_id)
        if not isinstance(page, int) or not 1 <= page <= entry.notation_pages:
            raise KeyError("no such page")
        path = self.store.path(entry.id, f"notation-{page}.svg")
        if not path.is_file():
            raise KeyError("the page was cleared from the store: reload the score")
        return path

    def set_reference(self, entry_id: str, name: str, data: bytes) -> dict:
        """A performance MIDI of the score's opening whose style CVRNN takes continue (aligned when used)."""
        from espressivo.io.midi import parse_midi

        entry = self.score(entry_id)
        if Path(str(name)).suffix.lower() not in (".mid", ".midi"):
            raise EspressivoError("the reference must be a performance MIDI file (.mid)")
        perf = parse_midi(data, name=Path(str(name)).name[:120] or "reference")
        if len(perf) < 2:
            raise EspressivoError("the reference has fewer than two notes")
        entry.reference = perf
        return {"notes": len(perf), "duration_sec": round(float(perf.end_sec), 2)}

    def score(self, entry_id: str) -> ScoreEntry:
        entry = self.scores.get(entry_id) if isinstance(entry_id, str) else None
        if entry is None:
            raise KeyError("no such score")
        return entry

    # ------------------------------------------------------------------ takes
    def takes_of(self, entry_id: str) -> list[Take]:
        """A score's takes in the order they were asked for (a reloaded page lists them again)."""
        self.score(entry_id)
        with self.lock:
            return [t for t in self.takes.values() if t.score_id == entry_id]

    def edit(self, take_id: str, request: dict) -> Take:
        """Name a take (``name``, at most 80 characters; "" clears it) or star it (``star``: true/false)."""
        take = self.take(take_id)
        if not isinstance(request, dict):
            raise EspressivoError("the request must be a JSON object")
        _known(request, ("name", "star"))
        if "name" in request:
            name = request["name"]
            if not isinstance(name, str) or len(name) > 80 or any(ord(c) < 32 for c in name):
                raise EspressivoError("a take's name is text of at most 80 characters on one line")
            take.name = name.strip()
        if "star" in request:
            if not isinstance(request["star"], bool):
                raise EspressivoError("star must be true or false")
            take.star = request["star"]
        return take

    def remove(self, take_id: str) -> None:
        """Delete a take that is not being made (its files too); a queued or running one is cancelled instead."""
        take = self.take(take_id)
        if take.status in ("queued", "running"):
            raise EspressivoError("the take is still being made: cancel it first")
        with self.lock:
            self.takes.pop(take.id, None)
        self.store.remove(take.id)

    def take(self, take_id: str) -> Take:
        take = self.takes.get(take_id) if isinstance(take_id, str) else None
        if take is None:
            raise KeyError("no such take")
        return take

    def _pretrained(self, name: str):
        from espressivo.families import family
        from espressivo.models.checkpoint import load_pretrained, shipped_models

        if name not in shipped_models():
            raise EspressivoError(f"unknown renderer {name!r}")
        with self.lock:
            if name not in self._models:
                pretrained = load_pretrained(name)
                if family(pretrained.model_type).kind != "renderer":
                    raise EspressivoError(f"{name} is not a renderer")
                self._models[name] = pretrained
            return self._models[name]

    def renderers(self) -> list[dict]:
        """The shipped renderers and their controls (for the page)."""
        from importlib import resources

        from espressivo.families import FAMILIES, canonical
        from espressivo.models.checkpoint import shipped_models
        from espressivo.render.cvrnn import dimension_names
        from espressivo.render.dispatch import DEFAULT_RENDERER

        out = []
        for name in shipped_models():
            config = json.loads((resources.files("espressivo") / "checkpoints" / name / "config.json").read_text())
            family = FAMILIES.get(canonical(config.get("model_type")))
            if family is None or family.kind != "renderer":
                continue
            z_dim = int(config.get("model", {}).get("z_dim", 0)) if "shift" in family.steering else 0
            z_names = dimension_names(config.get("evaluation", {}), z_dim) if z_dim else []
            out.append({"name": name, "family": family.name, "summary": family.summary,
                        "default": name == DEFAULT_RENDERER, "z_dim": z_dim, "z_names": z_names,
                        "expressiveness": "expressiveness" in family.controls})  # fmt: skip
        return sorted(out, key=lambda r: (not r["default"], r["name"]))

    def submit(self, score_id: str, request: dict, client: str = "") -> Take:
        """Queue a take: ``kind`` render (``model``, ``seed``, ``temperature``, ``tempo``, ``dynamics_scale``,
        ``expressiveness``, ``interpretation``: z shifts, or ``{"start": [...], "end": [...]}`` over the piece,
        ``reference``), deadpan or human (``index``); checked before it is queued."""
        entry = self.score(score_id)
        if not isinstance(request, dict):
            raise EspressivoError("the request must be a JSON object")
        kind = request.get("kind", "render")
        if kind not in ("render", "deadpan", "human"):
            raise EspressivoError("kind must be render, deadpan or human")
        _known(request, TAKE_KEYS[kind])
        settings: dict = {"kind": kind}
        if kind == "human":
            index = _int(request.get("index"), "index", 0, 99, 0)
            if index >= len(entry.humans):
                raise EspressivoError("this score has no pianist's performance to show")
            settings["index"] = index
            label = f"pianist: {entry.humans[index][0]}"
        elif kind == "deadpan":
            settings["tempo"] = _float(request.get("tempo"), "tempo", 10, 400)
            label = "deadpan" + (f", {settings['tempo']:g} qpm" if settings["tempo"] else "")
        if kind in ("deadpan", "human"):  # the same notes again: the take that has them (no duplicates)
            with self.lock:
                for t in self.takes.values():
                    same = t.score_id == score_id and t.kind == kind and t.settings == settings
                    if same and t.status in ("queued", "running", "done"):
                        return t
        else:
            settings |= self._render_settings(request)
            if settings.get("reference") and entry.reference is None:
                raise EspressivoError("upload a reference performance first")
            label = take_label(settings)
        return self._queue(Take(self.store.new_id(), score_id, kind, label, settings, client=client), entry)

    def _render_settings(self, request: dict) -> dict:
        from espressivo.families import family_of
        from espressivo.render import RenderOptions
        from espressivo.render.dispatch import DEFAULT_RENDERER, check_controls

        model = request.get("model") or DEFAULT_RENDERER
        if not isinstance(model, str):
            raise EspressivoError("model must be a renderer's name")
        pretrained = self._pretrained(model)
        settings = {
            "model": model,
            "seed": _int(request.get("seed"), "seed", 0, MAX_SEED, 0),
            "temperature": _float(request.get("temperature"), "variety", 0.1, 4, 1.0),
            "tempo": _float(request.get("tempo"), "tempo", 10, 400),
            "dynamics_scale": _float(request.get("dynamics_scale"), "dynamics scale", 0, 4, 1.0),
        }
        family = family_of(pretrained)
        if "expressiveness" in family.controls:
            settings["expressiveness"] = _float(request.get("expressiveness"), "expressiveness", 0, 3, 1.0)
        options = RenderOptions.of(**{k: v for k, v in settings.items() if k != "model"}, threads=1)
        check_controls(family, options, model)
        shift = request.get("interpretation")
        if shift is not None and shift != []:
            z_dim = int(getattr(pretrained.model.config, "z_dim", 0))
            if "shift" not in family.steering:
                raise EspressivoError("only a CVRNN renderer can be steered")
            ends = shift if isinstance(shift, dict) else {"start": shift, "end": shift}  # a change over the piece
            if set(ends) != {"start", "end"} or not all(isinstance(v, list) and len(v) == z_dim for v in ends.values()):
                raise EspressivoError(f"interpretation must be {z_dim} numbers, or {{start: [...], end: [...]}}")
            settings["interpretation"] = {k: [_float(v, "interpretation", -3, 3) for v in ends[k]] for k in ends}
        if request.get("reference"):
            if "reference_state" not in family.steering:
                raise EspressivoError("only a CVRNN renderer plays in the style of a reference")
            settings["reference"] = True
        return settings

    def passage(self, take_id: str, request: dict, client: str = "") -> Take:
        """Render bars ``first``..``last`` of a take again (a new ``seed``), the rest kept."""
        from espressivo.render.passage import bar_span

        base = self.take(take_id)
        if not isinstance(request, dict):
            raise EspressivoError("the request must be a JSON object")
        _known(request, ("first", "last", "seed"))
        if base.status != "done" or base.kind not in ("render", "passage"):
            raise EspressivoError("only a finished rendering can have a passage rendered again")
        entry = self.score(base.score_id)
        low = entry.score.first_bar  # 0 for a pickup, as printed
        high = max(low + len(entry.score.measures) - 1, low)
        first = _int(request.get("first"), "first bar", low, high, max(low, 1))
        last = _int(request.get("last"), "last bar", low, high, first)
        bar_span(entry.score, first, last)  # refuses first > last
        with self.lock:  # a seed no passage of this take has had yet, unless one is asked for: "again" is another take
            tried = {t.settings.get("seed") for t in self.takes.values() if t.settings.get("base") == base.id}
        fresh = int(base.settings.get("seed", 0)) + 1
        while fresh in tried:
            fresh += 1
        seed = _int(request.get("seed"), "seed", 0, MAX_SEED, fresh % MAX_SEED)
        settings = {k: v for k, v in base.settings.items() if k not in ("base", "bars")}
        settings |= {"kind": "passage", "seed": seed, "base": base.id, "bars": [first, last]}
        label = f"{base.label} · bars {first}-{last} again (seed {seed})"
        take = Take(self.store.new_id(), base.score_id, "passage", label, settings, client=client)
        return self._queue(take, entry)

    def _queue(self, take: Take, entry: ScoreEntry) -> Take:
        with self.lock:
            pending = sum(
                1 for t in self.takes.values() if t.score_id == entry.id and t.status in ("queued", "running")
            )
            if pending >= self.max_pending:
                raise OverflowError(f"{pending} takes of this score are already waiting; let them finish first")
            self.takes[take.id] = take
            key = take.client or take.score_id
            if not self.waiting.get(key):
                self.waiting[key] = deque()
                self.turns.append(key)
            self.waiting[key].append(take)
        self.pool.submit(self._next)  # one job per take; which take it runs is decided when a worker is free
        return take

    def _next(self) -> None:
        """Run the next take, taking turns between clients (round robin): one client's long queue never holds
        up another's single take for more than one take per client ahead of it."""
        with self.lock:
            key = self.turns.popleft()
            take = self.waiting[key].popleft()
            if self.waiting[key]:
                self.turns.append(key)
            else:
                del self.waiting[key]
        take.started = time.monotonic()
        self._run(take)

    def cancel(self, take_id: str) -> Take:
        take = self.take(take_id)
        if take.status in ("queued", "running"):
            take.cancel.set()
        return take

    # ------------------------------------------------------------------ the work
    def _stage(self, take: Take, stage: str, progress: float) -> None:
        if take.cancel.is_set():
            raise Cancelled
        take.stage, take.progress = stage, progress

    def _run(self, take: Take) -> None:
        try:
            self._stage(take, "rendering", 0.1)
            take.status = "running"
            entry = self.score(take.score_id)
            perf, alignment = self._perform(take, entry)
            self._stage(take, "writing MIDI", 0.5)
            from espressivo.io.midi import midi_bytes

            files = ["performance.mid"]
            self.store.write(take.id, "performance.mid", midi_bytes(perf))
            if take.kind != "human":
                from espressivo.render.tempo_map import tempo_mapped_bytes

                self.store.write(take.id, "tempo-mapped.mid", tempo_mapped_bytes(entry.score, perf))
                files.append("tempo-mapped.mid")
            take.performance = perf
            take.view_json = json.dumps(performance_view(entry.score, perf, alignment), separators=(",", ":")).encode()
            if self.synthesize_audio:
                self._stage(take, "synthesizing audio", 0.6)
                from espressivo.audio import synthesize

                try:
                    synthesize(perf, self.store.path(take.id, "audio.wav"), sample_rate=SAMPLE_RATE,
                               cancel=take.cancel)  # fmt: skip
                    files.append("audio.wav")
                except InterruptedError:
                    raise Cancelled from None
                except EspressivoError as err:  # too long to hear here: the take is kept, its MIDI downloads
                    take.error = f"no audio: {str(err).splitlines()[0]}"
            if take.cancel.is_set():
                raise Cancelled
            take.files = tuple(files)
            take.status, take.stage, take.progress = "done", "done", 1.0
        except Cancelled:
            take.status, take.stage = "cancelled", "cancelled"
        except EspressivoError as err:
            take.status, take.stage, take.error = "failed", "failed", str(err).splitlines()[0]
        except Exception as err:  # a bug: reported on the take, never a lost worker
            take.status, take.stage, take.error = "failed", "failed", f"internal error: {type(err).__name__}: {err}"
        finally:
            self._prune()
            return_freed_memory()

    def _prune(self) -> None:
        """Bound the store; a take whose files were dropped says so (its downloads answer 404)."""
        with self.lock:
            busy = {t.id for t in self.takes.values() if t.status in ("queued", "running")}
        for dropped in self.store.prune(in_use=busy):
            take = self.takes.get(dropped)
            if take is not None:
                take.status, take.stage, take.files, take.performance = "expired", "expired", (), None
                take.view_json = b""

    def _perform(self, take: Take, entry: ScoreEntry) -> tuple[Performance, Alignment | None]:
        score, s = entry.score, take.settings
        if take.kind == "human":
            _, perf, alignment = entry.humans[s["index"]]
            return perf, alignment
        if take.kind == "deadpan":
            perf = score.to_performance(s.get("tempo"), velocity=64)
            return perf, None
        from espressivo.render import RenderOptions, render
        from espressivo.render.base import GROUP_OF

        options = {k: v for k, v in s.items() if k in GROUP_OF}  # every rendering setting the take holds
        pretrained = self._pretrained(s["model"])
        shift = None
        if s.get("interpretation"):  # from the first note to the last, linearly (the CLI's keyframes)
            from espressivo.render.cvrnn import keyframe_shift

            ends = s["interpretation"]
            keyframes = {0.0: ends["start"], 1.0: ends["end"]}
            shift = keyframe_shift(keyframes, len(ends["start"]), score.notes["onset_beat"])
        state = None
        if s.get("reference"):
            from espressivo.render.cvrnn import reference_state

            self._stage(take, "reading the reference", 0.15)
            state = reference_state(pretrained, score, entry.reference)
        perf = render(pretrained, score, RenderOptions.of(**options, threads=1), shift=shift,
                      reference_state=state)[0].performance  # fmt: skip
        if take.kind == "passage":
            from espressivo.render.passage import splice_passage

            base = self.take(s["base"])
            if base.performance is None:
                raise EspressivoError("the take to render a passage of is gone")
            self._stage(take, "joining the passage", 0.4)
            perf = splice_passage(score, base.performance, perf, *s["bars"])
        return perf, None

    def file(self, take_id: str, name: str) -> Path:
        """A finished take's file (``performance.mid``, ``tempo-mapped.mid``, ``audio.wav``)."""
        take = self.take(take_id)
        path = self.store.path(take.id, name) if name in take.files else None
        if path is not None and not path.is_file() and name == "audio.wav" and take.performance is not None:
            from espressivo.audio import synthesize  # its audio made room for newer takes: made again

            with self.audio_lock:  # one synthesis at a time
                if not path.is_file():
                    synthesize(take.performance, path, sample_rate=SAMPLE_RATE)
        if path is None or not path.is_file():
            raise KeyError("no such file (not rendered, or cleared from the studio's store)")
        return path

    def close(self) -> None:
        import torch

        self.pool.shutdown(wait=False, cancel_futures=True)
        torch.set_num_threads(self._torch_threads)
