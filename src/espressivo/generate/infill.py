"""Fill a gap: play seconds ``start``..``end`` of a performance again so that they join what comes before *and*
after (fill-in-the-middle, as the Anticipatory Music Transformer and MMM do; here the ``aria`` event model,
trained with a quarter of its windows in the ``BOS SUFFIX <after> GAP <before> <gap>`` layout).

>>> takes = infill(load_pretrained("default"), SamplingConfig(seed=1), performance, 12.0, 20.0, variations=2)

The notes that start outside the gap are kept exactly (a note struck before the gap keeps its length); the notes
that start inside it are the model's.  The sustain pedal inside the gap is the model's too, and at the gap's end
it is put back as the performance had it there.
"""

from __future__ import annotations

import numpy as np

from espressivo.core import SUSTAIN, Performance
from espressivo.core.performance import make_controls
from espressivo.data.windows import FILL_MAX_SEC
from espressivo.errors import EspressivoError
from espressivo.generate.draw import SamplingConfig, threads
from espressivo.generate.events import Row, join, sample
from espressivo.tokenizers.aria import AriaTokenizer

MIN_GAP_SEC = 0.1


def check_gap(performance: Performance, start_sec: float, end_sec: float) -> None:
    """A gap the model can fill in this performance, or a one-line error."""
    if not (np.isfinite(start_sec) and np.isfinite(end_sec)):
        raise EspressivoError("--from and --to must be numbers of seconds")
    if start_sec < 0 or end_sec <= start_sec:
        raise EspressivoError(f"the gap must satisfy 0 <= --from < --to (got {start_sec:g} .. {end_sec:g} s)")
    if len(performance) == 0:
        raise EspressivoError("the performance has no notes to fill a gap between")
    last = float(performance.notes["onset_sec"].max())
    if start_sec >= last:
        raise EspressivoError(f"the gap starts at {start_sec:g} s, after the performance's last note ({last:.1f} s)")
    if end_sec - start_sec < MIN_GAP_SEC:
        raise EspressivoError(f"the gap must last at least {MIN_GAP_SEC:g} s")
    if end_sec - start_sec > FILL_MAX_SEC:
        raise EspressivoError(
            f"a gap of {end_sec - start_sec:g} s is longer than the model fills ({FILL_MAX_SEC:g} s at most)"
        )


def infill(
    pretrained, config: SamplingConfig, performance: Performance, start_sec: float, end_sec: float,
    *, variations: int = 1, num_threads: int = 1,
) -> list[Performance]:  # fmt: skip
    """``variations`` performances whose seconds ``start_sec``..``end_sec`` are the model's."""

    if not isinstance(pretrained.tokenizer, AriaTokenizer):
        raise EspressivoError(f"{pretrained.path.name}: filling a gap needs an event model (aria tokens)")
    if config.beam_size > 1:
        raise EspressivoError("filling a gap samples (--beam-size 1)")
    check_gap(performance, start_sec, end_sec)
    onset = performance.notes["onset_sec"]
    times = performance.controls["time_sec"]
    before = Performance(performance.notes[onset < start_sec], performance.controls[times < start_sec])
    after = Performance(performance.notes[onset >= end_sec], performance.controls[times >= end_sec])
    # the pedals as they are at the gap's end are stated there for the suffix
    down = performance.pedal_value_at([end_sec], SUSTAIN)[0]
    suffix = Performance(
        after.notes, make_controls([(end_sec, SUSTAIN, int(down)), *map(tuple, after.controls.tolist())])
    )
    rows = [Row(before, end_sec, start_sec, suffix, end_sec) for _ in range(variations)]
    with threads(num_threads):
        middles = sample(pretrained, config, rows)
    return [_joined(performance, before, middle, after, start_sec, end_sec) for middle in middles]


def _joined(original, before, middle, after, start_sec, end_sec) -> Performance:
    """Before, the gap's notes and pedal, after; the pedal set back at the gap's end to what it was there."""
    notes = middle.notes[(middle.notes["onset_sec"] >= start_sec) & (middle.notes["onset_sec"] < end_sec)]
    controls = middle.controls[(middle.controls["time_sec"] >= start_sec) & (middle.controls["time_sec"] < end_sec)]
    gap = Performance(notes, controls)
    result = join(join(before, gap), after)
    wanted = int(original.pedal_value_at([end_sec], SUSTAIN)[0])
    now = int(result.pedal_value_at([end_sec - 1e-6], SUSTAIN)[0])
    at_end = (after.controls["time_sec"] <= end_sec + 1e-9) & (after.controls["controller"] == SUSTAIN)
    if (now >= 64) != (wanted >= 64) and not at_end.any():
        extra = make_controls([(end_sec, SUSTAIN, wanted)])
        result = join(result, Performance(np.zeros(0, result.notes.dtype), extra))
    return result
