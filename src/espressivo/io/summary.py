"""What ``espressivo info`` says of a performance or a score: plain summaries (numbers and short strings), shared
by the command line and the studio."""

from __future__ import annotations

import numpy as np

from espressivo.core import SOFT, SOSTENUTO, SUSTAIN, Performance, Score

NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
KEYS = ["Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#"]


def note_name(pitch: int) -> str:
    return f"{NAMES[int(pitch) % 12]}{int(pitch) // 12 - 1}"


def performance_summary(perf: Performance) -> dict:
    notes = perf.notes
    summary: dict = {"notes": len(perf), "duration_sec": round(perf.end_sec, 3)}
    if len(perf):
        summary["pitch_range"] = f"{note_name(notes['pitch'].min())}..{note_name(notes['pitch'].max())}"
        summary["mean_velocity"] = round(float(notes["velocity"].mean()), 1)
        summary["velocity_range"] = [int(notes["velocity"].min()), int(notes["velocity"].max())]
        summary["tracks"] = int(np.unique(notes["track"]).size)
    pedals = {}
    for controller, label in ((SUSTAIN, "sustain"), (SOSTENUTO, "sostenuto"), (SOFT, "soft")):
        down, up = perf.pedal_intervals(controller)
        if len(down):
            held = float(np.sum(up - down))
            pedals[label] = {"presses": len(down), "held_percent": round(100 * held / max(perf.end_sec, 1e-9), 1)}
    summary["pedals"] = pedals
    return summary


def score_summary(score: Score) -> dict:
    n = score.notes
    summary: dict = {
        "title": score.title,
        "notes": len(score),
        "measures": len(score.measures),
        "time_signatures": [
            f"{ts['beats']}/{ts['beat_type']} @q{ts['onset_quarter']:g}" for ts in score.time_signatures
        ],
        "key_signatures": [
            f"{KEYS[int(ks['fifths']) + 7] if -7 <= ks['fifths'] <= 7 else ks['fifths']} {ks['mode']}".strip()
            + f" @q{ks['onset_quarter']:g}"
            for ks in score.key_signatures
        ],
        "tempo_markings": [
            (f"q={m['qpm']:g}" if np.isfinite(m["qpm"]) else m["text"]) + f" @q{m['onset_quarter']:g}"
            for m in score.tempo_markings
        ],
        "dynamics": [f"{d['text']} @q{d['onset_quarter']:g}" for d in score.dynamics],
    }
    if len(n):
        summary["pitch_range"] = f"{note_name(n['pitch'].min())}..{note_name(n['pitch'].max())}"
        summary["length_quarters"] = float((n["onset_quarter"] + n["duration_quarter"]).max())
        summary["duration_at_written_tempo_sec"] = round(score.to_performance().end_sec, 2)
        summary["grace_notes"] = int(n["is_grace"].sum())
    return summary
