"""Linear-time versions of the two steps where partitura's score reading grows quadratically (profiled in
docs/benchmarks.md), installed on the partitura module that espressivo imports (``io.score.import_partitura``).

1. **Grace-note order** (``partitura.utils.music.note_array_from_note_list`` with ``include_grace_notes``):
   partitura orders the grace notes of each onset by selecting that onset's notes from the whole array, and
   finds each grace note's row by searching every id: O(onsets x notes).  Here the array is built without the
   grace fields by partitura itself, and the grace fields are computed for all notes at once (one sort by
   onset, staff and document order; a running count of the notes that start a grace chord).  Same fields, same
   order, same values: tested against partitura's own output on real scores.
2. **Adding a time point** (``partitura.score.Part._add_point``): ``np.insert`` copies the whole array of points
   for every new one: O(points^2) for a score.  Here the points live in a buffer with spare room at the end (its
   capacity doubling), and ``_points`` is a view of the filled part; an insertion shifts only the points after it,
   and the usual case, a point after all others, costs nothing.  Anything else partitura does to ``_points``
   (``np.delete`` when an object is removed) is seen and the buffer rebuilt.
"""

from __future__ import annotations

import inspect

import numpy as np

GRACE_FIELDS = ("is_grace", "grace_type", "steal_proportion", "local_grace_order")
SMALL = 500  # below this many notes partitura's own code is as fast


def install(pt) -> None:
    """Replace the two steps on the imported partitura (once)."""
    music = pt.utils.music
    if getattr(music.note_array_from_note_list, "espressivo_linear", False):
        return
    original = music.note_array_from_note_list
    signature = inspect.signature(original)

    def note_array_from_note_list(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        settings = dict(bound.arguments)
        notes = list(settings.pop("note_list"))
        if not settings.get("include_grace_notes") or len(notes) < SMALL:
            return original(notes, **settings)
        return grace_note_array(original, music, notes, settings)

    note_array_from_note_list.espressivo_linear = True
    note_array_from_note_list.original = original
    note_array_from_note_list.__doc__ = original.__doc__
    music.note_array_from_note_list = note_array_from_note_list
    _add_point.original = pt.score.Part._add_point
    pt.score.Part._add_point = _add_point


def grace_note_array(original, music, notes: list, settings: dict) -> np.ndarray:
    """partitura's note array with the grace fields, in time linear in the notes (see the module docstring)."""
    ids = [n.id for n in notes]
    if any(i is None for i in ids) or len(set(ids)) != len(ids):  # rows cannot be told apart: partitura's way
        return original(notes, **settings)
    plain = original(notes, **(settings | {"include_grace_notes": False}))
    template = original(notes[:1], **settings)  # partitura's field layout with the grace fields
    out = np.zeros(len(plain), template.dtype)
    for name in plain.dtype.names:
        out[name] = plain[name]
    row = {ident: k for k, ident in enumerate(plain["id"].tolist())}
    where = np.array([row[i] for i in ids])
    is_grace = np.array([hasattr(n, "grace_type") for n in notes])
    grace_type = np.array([str(n.grace_type) if g and n.grace_type is not None else "" for n, g in
                           zip(notes, is_grace, strict=True)], dtype=object)  # fmt: skip
    steal = np.array([float(n.steal_proportion) if g and getattr(n, "steal_proportion", None) is not None else -1.0
                      for n, g in zip(notes, is_grace, strict=True)])  # fmt: skip
    chord = np.array([bool(getattr(n, "is_grace_chord", False)) if g else False for n, g in
                      zip(notes, is_grace, strict=True)])  # fmt: skip
    doc_order = np.array([n.doc_order if getattr(n, "doc_order", None) is not None else -1 for n in notes])
    staff = np.array([n.staff if n.staff is not None else 0 for n in notes])
    out["is_grace"][where] = is_grace
    out["grace_type"][where] = grace_type.astype(out.dtype["grace_type"])
    out["steal_proportion"][where] = steal
    local = np.full(len(notes), -1, np.int64)
    graces = np.nonzero(is_grace)[0]
    if len(graces):
        onset_unit, _ = music.get_time_units_from_note_array(plain)
        onset = plain[onset_unit][where[graces]]
        order = graces[np.lexsort((doc_order[graces], staff[graces], onset))]
        key_onset, key_staff = plain[onset_unit][where[order]], staff[order]
        start = np.concatenate([[True], (key_onset[1:] != key_onset[:-1]) | (key_staff[1:] != key_staff[:-1])])
        steps = (~chord[order]).astype(np.int64)  # a note marked as part of a grace chord shares the next's order
        running = np.cumsum(steps) - steps  # notes before it in the whole sorted list that moved the order on
        group_base = np.maximum.accumulate(np.where(start, running, 0))
        local[order] = running - group_base
    out["local_grace_order"][where] = local
    return out


def _add_point(self, tp) -> None:
    """partitura's ``Part._add_point`` without copying every point for each new one."""
    buffer = getattr(self, "_espressivo_points", None)
    points = self._points
    if buffer is None or points.base is not buffer or len(points) > len(buffer):
        buffer = np.empty(max(16, 2 * len(points)), dtype=object)
        buffer[: len(points)] = points
        self._espressivo_points = buffer
    n = len(points)
    i = int(np.searchsorted(points, tp))
    if i < n and points[i].t == tp.t:
        return
    if n == len(buffer):
        grown = np.empty(2 * len(buffer), dtype=object)
        grown[:n] = buffer[:n]
        buffer = self._espressivo_points = grown
    if i < n:
        buffer[i + 1 : n + 1] = buffer[i:n].copy()
    buffer[i] = tp
    self._points = buffer[: n + 1]
    if i > 0:
        buffer[i - 1].next = tp
        tp.prev = buffer[i - 1]
    if i < n:
        tp.next = buffer[i + 1]
        buffer[i + 1].prev = tp
