"""Aligned score/performance pairs for renderers: per score note, score features + expression targets.

``espressivo data pairs --out DIR [--split train]`` writes one ``.npz`` per (n)ASAP performance
(``score_features``, ``expression``, ``score_ids``, ``onset_beat``, ``performed``, ``written``, ``marks``) and
``pairs.json`` with what was kept and why the rest was dropped.

``performed`` holds, per score note, the note the pianist played in absolute terms (``onset_sec``,
``duration_sec`` key-down, ``velocity``, ``pedal``: CC64 sampled at 0, 1/4, 1/2, 3/4 of the time to the next
later performed onset); unmatched notes get an onset interpolated along score time, the written duration
at the local tempo and the interpolated velocity.  ``written`` is the score at its written tempo
(``onset_sec``, ``duration_sec``; 120 quarters per minute where the score gives no metronome mark).  A
re-run skips finished files.  :class:`PairWindows` cuts the pairs into windows of N notes with overlap, in
score order.

Dropped: performances whose alignment does not fit the shipped score (the three pieces without MusicXML),
whose written and played pitches disagree on more than 5 % of the pairs (an alignment made on another file),
or with fewer than ``min_matched`` aligned notes.  Unmatched score notes stay in, flagged
(``expression["matched"]`` False) with interpolated targets, so a loss can mask them.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from espressivo.core import SUSTAIN
from espressivo.core.score import MARKS_DTYPE
from espressivo.data.asap import AsapDataset
from espressivo.data.workers import pool as worker_pool
from espressivo.errors import EspressivoError
from espressivo.features import encode_expression, score_features
from espressivo.features.slots import (
    dynamics_velocity,
    feature_matrix,
    pedal_sample_times,
    performed_slots,
    score_slots,
    training_order,
)
from espressivo.io import read_alignment, read_midi, read_score
from espressivo.io.files import atomic_write_bytes

MIN_PITCH_AGREEMENT = 0.95
PEDAL_SAMPLES = 4
PERFORMED_DTYPE = np.dtype(
    [("onset_sec", "f8"), ("duration_sec", "f8"), ("velocity", "f4"), ("pedal", "u1", (PEDAL_SAMPLES,))]
)
WRITTEN_DTYPE = np.dtype([("onset_sec", "f8"), ("duration_sec", "f8")])


def performed_notes(score, performance, alignment, expression) -> np.ndarray:
    """Per score note, what was played (see the module docstring); vectorised."""

    s_idx, p_idx = alignment.indices(score, performance)
    sn, pn = score.notes, performance.notes
    out = np.zeros(len(sn), PERFORMED_DTYPE)
    beats = sn["onset_beat"]
    order = np.argsort(beats[s_idx], kind="stable")
    known_beats, known_onsets = beats[s_idx][order], pn["onset_sec"][p_idx][order]
    known_onsets = np.maximum.accumulate(known_onsets)  # interpolate along a monotone time line
    out["onset_sec"] = np.interp(beats, known_beats, known_onsets)
    written = np.where(sn["is_grace"], 0.1, sn["duration_beat"] * expression.features["beat_period"])
    out["duration_sec"] = written
    out["velocity"] = expression.features["velocity"] * 127.0
    out["onset_sec"][s_idx] = pn["onset_sec"][p_idx]
    out["duration_sec"][s_idx] = pn["duration_sec"][p_idx]
    out["velocity"][s_idx] = pn["velocity"][p_idx]
    times = pedal_sample_times(out["onset_sec"], out["duration_sec"])
    values = performance.pedal_value_at(times.reshape(-1), SUSTAIN).reshape(times.shape)
    out["pedal"] = np.clip(values, 0, 127)
    return out


def written_notes(score) -> np.ndarray:
    out = np.zeros(len(score.notes), WRITTEN_DTYPE)
    q = score.notes["onset_quarter"]
    out["onset_sec"] = score.seconds_from_quarter(q)
    out["duration_sec"] = score.seconds_from_quarter(q + score.notes["duration_quarter"]) - out["onset_sec"]
    return out


def marks_of(score) -> np.ndarray:
    """The score's markings per note; an empty array where it has none (a MIDI score)."""

    return score.marks if score.marks is not None else np.zeros(0, MARKS_DTYPE)


def _piece_job(job: tuple[list[dict], str, int]) -> list[dict]:
    items, out, min_matched = job
    results, score, features = [], None, None
    for item in items:
        path = Path(out) / f"{item['key']}.npz"
        record = {k: item[k] for k in ("key", "name", "split", "composer", "title", "performer")}
        if path.is_file():
            try:
                with np.load(path) as done:
                    counts = {"notes": len(done["score_ids"]), "matched": int(done["expression"]["matched"].sum())}
                    done["performed"], done["onset_beat"], done["marks"]  # older version: KeyError, built again
                results.append(record | {"status": "kept", "reused": True} | counts)
                continue
            except (OSError, ValueError, KeyError):
                path.unlink()  # damaged: build it again
        try:
            if score is None:
                score = read_score(item["score_path"], unfold=True)
                features = score_features(score)
            perf = read_midi(item["performance_path"], pairing="partitura")
            alignment = read_alignment(item["alignment_path"])
            agreement = alignment.pitch_agreement(score, perf)
            matched = len(alignment.indices(score, perf)[0])
            if agreement < MIN_PITCH_AGREEMENT:
                results.append(record | {"status": "dropped", "reason": f"pitch agreement {agreement:.3f}"})
                continue
            if matched < min_matched:
                results.append(record | {"status": "dropped", "reason": f"{matched} aligned notes"})
                continue
            expression = encode_expression(score, perf, alignment)
        except EspressivoError as err:
            results.append(record | {"status": "dropped", "reason": str(err)})
            continue
        buffer = io.BytesIO()
        np.savez(buffer, score_features=features, expression=expression.features, score_ids=score.notes["id"],
                 onset_beat=score.notes["onset_beat"], origin_sec=np.array(expression.origin_sec),
                 written=written_notes(score), marks=marks_of(score),
                 performed=performed_notes(score, perf, alignment, expression))  # fmt: skip
        atomic_write_bytes(path, buffer.getvalue())
        results.append(record | {"status": "kept", "notes": len(score), "matched": matched})
    return results


def build_pairs(
    out: str | os.PathLike,
    *,
    root=None,
    split: str | None = None,
    workers: int = 2,
    limit: int = 0,
    min_matched: int = 64,
) -> dict:
    from tqdm import tqdm

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EspressivoError(f"{out}: cannot create the output folder ({err.strerror or err})") from None
    asap = AsapDataset(Path(root) / "asap" if root else None, quiet=True)
    items = asap.performances(split)
    if limit:
        items = items[:limit]
    dropped = [
        {
            "name": i.name,
            "split": i.split,
            "status": "dropped",
            "reason": "alignment names a MusicXML that is not shipped",
        }
        for i in items
        if not i.alignment_fits_score
    ]
    by_piece: dict[str, list[dict]] = {}
    for number, i in enumerate(items):
        if not i.alignment_fits_score:
            continue
        by_piece.setdefault(i.folder, []).append(
            {
                "key": f"{number:05d}",
                "name": i.name,
                "split": i.split,
                "composer": i.composer,
                "title": i.title,
                "performer": i.performer,
                "score_path": str(i.score_path),
                "performance_path": str(i.performance_path),
                "alignment_path": str(i.alignment_path),
            }
        )
    jobs = [(piece, str(out), min_matched) for piece in by_piece.values()]
    results: list[dict] = []
    with tqdm(total=sum(len(j[0]) for j in jobs), desc="pairs", unit="performance", disable=None) as bar:
        if workers > 1 and len(jobs) > 1:
            with worker_pool(workers) as pool:
                for part in pool.map(_piece_job, jobs):
                    results += part
                    bar.update(len(part))
        else:
            for job in jobs:
                part = _piece_job(job)
                results += part
                bar.update(len(part))
    results.sort(key=lambda r: r.get("key", ""))
    kept = [r for r in results if r["status"] == "kept"]
    summary = {
        "performances": len(items),
        "kept": len(kept),
        "dropped": len(dropped) + len(results) - len(kept),
        "entries": kept,
        "dropped_entries": dropped + [r for r in results if r["status"] != "kept"],
    }
    atomic_write_bytes(out / "pairs.json", json.dumps(summary, indent=1).encode())
    return summary


class PairWindows:
    """Windows of ``notes`` consecutive score notes (score order) with ``hop`` between starts."""

    def __init__(self, root: str | os.PathLike, split: str = "train", notes: int = 256, hop: int = 128):
        self.root = Path(root)
        path = self.root / "pairs.json"
        if not path.is_file():
            raise EspressivoError(f"{self.root}: no pairs.json; run `espressivo data pairs` first")
        self.entries = [e for e in json.loads(path.read_text())["entries"] if e["split"] == split]
        if notes < 1 or hop < 1:
            raise EspressivoError("window and hop must be positive")
        self.notes, self.hop = notes, hop

    def load(self, entry: dict) -> dict[str, np.ndarray]:
        """All arrays of one performance, in score order (``Score.notes`` is sorted by onset, pitch)."""
        with np.load(self.root / f"{entry['key']}.npz") as data:
            return {k: data[k] for k in data.files}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for entry in self.entries:
            arrays = self.load(entry)
            n = len(arrays["score_ids"])
            starts = list(range(0, max(n - self.notes, 0) + 1, self.hop))
            if starts[-1] + self.notes < n:  # the tail gets a window of its own
                starts.append(n - self.notes)
            for start in starts:
                yield {k: v[start : start + self.notes] for k, v in arrays.items() if v.ndim == 1} | {
                    "name": entry["name"]
                }


def performed_tempo_scale(written_onset: np.ndarray, performed_onset: np.ndarray, matched: np.ndarray) -> float:
    """Performed span / written span between the first and last matched onsets (1 when undefined); kept
    within 0.2..5 so that a bad alignment cannot give an absurd tempo."""
    w, p = written_onset[matched], performed_onset[matched]
    if len(w) < 2:
        return 1.0
    first, last = np.argmin(w), np.argmax(w)
    span_w, span_p = float(w[last] - w[first]), float(p[last] - p[first])
    return float(np.clip(span_p / span_w, 0.2, 5.0)) if span_w > 0 and span_p > 0 else 1.0


class RenderPairs:
    """Renderer training windows from the pairs of one split: score slots, performed slots, score features,
    the slots the loss counts (the expressive slots of matched notes) and which rows are real notes.

    Augmentation (training only): transposition by up to ``transpose`` semitones (kept on the 88 keys), one
    time-stretch of score and performance together (``stretch``: factor within 1 ± stretch), and a velocity
    shift of the performance (``velocity``).

    ``score_tempo``: the score side is the deadpan at the ``written`` tempo, or at the ``performed`` one —
    the written time map scaled so that its span matches the human's (first to last matched onset).  The
    model then learns expression *around* a given mean tempo instead of guessing the tempo from its own
    sampled IOIs; at rendering the score is given at ``--tempo`` (or the written tempo).
    Chord notes come in the order played, IOIs from the previous note (:mod:`espressivo.features.slots`).
    """

    def __init__(self, root, split: str, tokenizer, notes: int = 256, augmentation=None, score_tempo="written"):
        if score_tempo not in ("written", "performed"):
            raise EspressivoError("score_tempo must be written or performed")
        self.tok, self.notes, self.augmentation = tokenizer, int(notes), augmentation
        windows = PairWindows(root, split, notes=max(self.notes, 1), hop=max(self.notes, 1))
        self.pieces = []
        for entry in windows.entries:
            a = windows.load(entry)
            if "performed" not in a:
                raise EspressivoError(f"{root}: pairs made by an older version; run `espressivo data pairs` again")
            written, performed, sf = a["written"], a["performed"], a["score_features"]
            order = training_order(written["onset_sec"], performed["onset_sec"], sf["pitch"])
            scale = 1.0
            if score_tempo == "performed":
                scale = performed_tempo_scale(written["onset_sec"], performed["onset_sec"], a["expression"]["matched"])
            self.pieces.append(
                {
                    "name": entry["name"],
                    "pitch": sf["pitch"][order].astype(np.int64),
                    "w_onset": written["onset_sec"][order] * scale,
                    "w_duration": written["duration_sec"][order] * scale,
                    "w_velocity": dynamics_velocity(sf["dynamic"][order]),
                    "p_onset": np.maximum.accumulate(performed["onset_sec"][order]),
                    "p_duration": performed["duration_sec"][order],
                    "p_velocity": performed["velocity"][order],
                    "p_pedal": performed["pedal"][order],
                    "features": feature_matrix(sf[order])[0],
                    "ok": a["expression"]["matched"][order],
                }
            )
        if not self.pieces:
            raise EspressivoError(f"{root}: no {split} pairs")
        sizes = np.array([len(p["pitch"]) for p in self.pieces], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def _window(self, piece: dict, start: int, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        n, length = len(piece["pitch"]), self.notes
        first = max(start - 1, 0)  # one note before: the window's first IOI is measured from it
        sl = slice(first, min(start + length, n))
        pitch = piece["pitch"][sl]
        w_on, w_dur = piece["w_onset"][sl], piece["w_duration"][sl]
        p_on, p_dur, p_vel = piece["p_onset"][sl], piece["p_duration"][sl], piece["p_velocity"][sl]
        aug = self.augmentation
        if rng is not None and aug is not None and aug.active:
            semitones, factor, shift = aug.draw(pitch, rng)
            pitch, p_vel = pitch + semitones, p_vel + shift
            w_on, w_dur, p_on, p_dur = w_on * factor, w_dur * factor, p_on * factor, p_dur * factor
        src = score_slots(w_on, w_dur, pitch, piece["w_velocity"][sl], self.tok)
        tgt = performed_slots(p_on, p_dur, pitch, np.clip(p_vel, 1, 127), piece["p_pedal"][sl], self.tok)
        skip = start - first
        src, tgt = src[skip:], tgt[skip:]
        features, ok = piece["features"][sl][skip:], piece["ok"][sl][skip:]
        if start == 0:
            src[0, 1] = tgt[0, 1] = 0
        real = len(src)
        keep = np.zeros(length, bool)
        keep[:real] = True
        pad = length - real
        if pad:
            src = np.concatenate([src, np.zeros((pad, src.shape[1]), np.int64)])
            tgt = np.concatenate([tgt, np.zeros((pad, tgt.shape[1]), np.int64)])
            features = np.concatenate([features, np.zeros((pad, features.shape[1]), np.float32)])
            ok = np.concatenate([ok, np.zeros(pad, bool)])
        loss_mask = np.repeat((ok & keep)[:, None], src.shape[1], axis=1)
        loss_mask[:, 0] = False  # the pitch is given
        return {"src": src, "tgt": tgt, "features": features, "loss_mask": loss_mask, "keep": keep}

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        piece = self.pieces[int(rng.choice(len(self.pieces), p=self.weights))]
        start = int(rng.integers(0, max(len(piece["pitch"]) - self.notes, 0) + 1))
        return self._window(piece, start, rng)

    def windows(self) -> Iterator[dict[str, np.ndarray]]:
        """Every note of the split once, in consecutive windows, without augmentation."""
        for piece in self.pieces:
            for start in range(0, len(piece["pitch"]), self.notes):
                yield self._window(piece, start, None)
