"""A short run of the generated hostile inputs (``tests/hostile.py``; the long run is ``benchmarks/fuzz.py``):
every one accepted or refused in one clean line, none crashing or hanging."""

import collections

from espressivo.models.checkpoint import resolve
from tests.hostile import cases, run_case


def test_generated_hostile_inputs_end_cleanly(tmp_path):
    checkpoints = [resolve(name) for name in ("transformer-small", "phrase-small", "cvrnn-small")]
    outcomes, findings = collections.Counter(), []
    for k, (kind, name, payload) in enumerate(cases(seed=7, count=450, checkpoints=checkpoints)):
        work = tmp_path / str(k)
        work.mkdir()
        outcome, detail = run_case(kind, name, payload, work, seconds=30.0)
        outcomes[(kind, outcome)] += 1
        if outcome in ("crash", "hang"):
            findings.append((kind, name, detail))
    assert not findings, findings[:5]
    kinds = {kind for kind, _ in outcomes}
    assert kinds == {"midi", "musicxml", "mxl", "mei", "kern", "flags", "checkpoint", "alias", "huge"}
    assert all(outcomes[(kind, "clean")] > 0 for kind in kinds)  # the mutations do reach the refusals
