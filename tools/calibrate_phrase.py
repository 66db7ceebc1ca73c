"""Fit a phrase renderer's sampling calibration on the validation pairs and store it in its config.json.

    python tools/calibrate_phrase.py CHECKPOINT_DIR [--pairs data/pairs] [--noise 0.5] [--tempo-noise X]
                                     [--output-noise NAME=SHARE ...]

Per output (tempo and loudness curves, timing, velocity and articulation deviations): the gain that gives a
rendering the pianists' spread inside a window, with ``noise`` of the predicted sd drawn
(:func:`espressivo.render.phrase.fit_calibration`).  ``render`` reads it from ``config["sampling"]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from espressivo.data.phrase import PhrasePairs
from espressivo.errors import EspressivoError
from espressivo.io.files import atomic_write_bytes
from espressivo.models.checkpoint import load_pretrained
from espressivo.render.phrase import fit_calibration


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--noise", type=float, default=0.5, help="share of the predicted sd drawn, every output")
    parser.add_argument("--tempo-noise", type=float, default=None, help="the tempo curve's share, if another")
    parser.add_argument("--output-noise", action="append", default=[], metavar="NAME=SHARE",
                        help="another share for one output (tempo, level, timing, velocity, articulation)")  # fmt: skip
    args = parser.parse_args()
    pretrained = load_pretrained(args.checkpoint)
    c = pretrained.model.config
    notes = min(512, c.max_notes)  # the windows it renders with (render.phrase.WINDOW), at most its own
    windows = PhrasePairs(args.pairs, "validation", pretrained.tokenizer, notes, c.max_beats).windows()
    noise = {name: args.noise for name in ("tempo", "level", "timing", "velocity", "articulation")}
    if args.tempo_noise is not None:
        noise["tempo"] = args.tempo_noise
    for item in args.output_noise:
        name, _, value = item.partition("=")
        if name not in noise:
            raise EspressivoError(f"--output-noise: unknown output {name!r} ({', '.join(noise)})")
        noise[name] = float(value)
    calibration = fit_calibration(pretrained.model, windows, noise=noise)
    path = args.checkpoint / "config.json"
    config = json.loads(path.read_text())
    config["sampling"] = calibration
    atomic_write_bytes(path, json.dumps(config, indent=2).encode())
    print(json.dumps(calibration))


if __name__ == "__main__":
    try:
        main()
    except EspressivoError as err:
        sys.exit(f"calibrate_phrase: {err}")
