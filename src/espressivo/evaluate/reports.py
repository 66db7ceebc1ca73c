"""Reports of ``espressivo evaluate render``: the markdown tables, the figures, the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from espressivo.errors import EspressivoError
from espressivo.evaluate.metrics import HIST_SPECS, NOTE_FEATURES, histogram
from espressivo.evaluate.primed import PAPER_CVRNN_10
from espressivo.io.files import atomic_write_bytes
from espressivo.viz.plot import _pyplot, _save

RENDER_SETTINGS = ("seed", "temperature", "top_p", "tempo_drift", "dynamics_drift", "chord_spread",
                   "consensus", "tempo_guard", "roll_step", "estimate_tempo", "expressiveness")  # fmt: skip


def markdown_table(report: dict) -> str:
    names = list(report["systems"])
    settings = ", ".join(f"{k.replace('_', ' ')} {report[k]}" for k in RENDER_SETTINGS if k in report)
    lines = [f"Split {report['split']}; renderers rendered with {settings}.", ""] if "split" in report else []
    lines += [
        "| system | overall JS dist. ↓ | overall intersection ↑ | velocity r ↑ | velocity MAE ↓ | timing r ↑ "
        "| timing MAE (ms) ↓ | micro-timing r ↑ | micro-timing MAE (ms) ↓ | articulation r ↑ | tempo r ↑ "
        "| tempo-curve MAE (BPM) ↓ | tempo-curve r ↑ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        s = report["systems"][name]
        d = s["distribution"].get("overall", {})
        p = s["per_note"]
        if not p:
            continue
        lines.append(
            f"| {name} | {d.get('js_distance', float('nan')):.4f} | {d.get('intersection', float('nan')):.4f} "
            f"| {p['velocity']['r']:.3f} | {p['velocity']['mae']:.2f} | {p['timing']['r']:.3f} "
            f"| {1000 * p['timing']['mae']:.1f} | {p['micro_timing']['r']:.3f} | {1000 * p['micro_timing']['mae']:.1f} "
            f"| {p['articulation']['r']:.3f} | {p['tempo']['r']:.3f} | {p['tempo_curve_mae_bpm']:.1f} "
            f"| {p['tempo_curve_r']:.3f} |"
        )
    seeds = {n: s["between_seeds"] for n, s in report["systems"].items() if s.get("between_seeds")}
    if seeds:
        lines += ["", "Two seeds of one model against each other (how much performances differ):", "",
                  "| system | velocity r | velocity MAE | timing MAE (ms) | micro-timing r | micro-timing MAE (ms) "
                  "| articulation r | tempo-curve MAE (BPM) | tempo-curve r |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, b in seeds.items():
            lines.append(
                f"| {name} | {b['velocity']['r']:.3f} | {b['velocity']['mae']:.2f} | {1000 * b['timing']['mae']:.1f} "
                f"| {b['micro_timing']['r']:.3f} | {1000 * b['micro_timing']['mae']:.1f} "
                f"| {b['articulation']['r']:.3f} | {b['tempo_curve_mae_bpm']:.1f} | {b['tempo_curve_r']:.3f} |"
            )
    shapes = {n: s["shape"] for n, s in report["systems"].items() if s.get("shape")}
    if shapes:
        lines += ["", "Shape (mean over pieces; pedal: presses per minute over the median of the piece's pianists, "
                  "median over pieces; human: each pianist against the others):", "",
                  "| system | velocity sd inside a performance | melody lead (velocity) | pedal presses / min "
                  "| pedal ratio | longest pedal hold, s (median / max over pieces) |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name, b in shapes.items():
            lines.append(f"| {name} | {b['velocity_sd']:.2f} | {b['melody_lead']:+.2f} | {b['pedal_per_minute']:.1f} "
                         f"| {b['pedal_ratio_median']:.2f} | {b.get('pedal_longest_sec_median', float('nan')):.1f} / "
                         f"{b.get('pedal_longest_sec_max', float('nan')):.1f} |")  # fmt: skip
    header = "| system | velocity JS | duration JS | IOI JS | pedal JS | velocity ∩ | duration ∩ | IOI ∩ | pedal ∩ |"
    lines += ["", header, "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        d = report["systems"][name]["distribution"]
        if not d:
            continue
        keys = list(HIST_SPECS)
        lines.append(
            f"| {name} | " + " | ".join(f"{d[k]['js_distance']:.4f}" for k in keys) + " | "
            + " | ".join(f"{d[k]['intersection']:.4f}" for k in keys) + " |"
        )  # fmt: skip
    if report.get("primed"):
        lines += ["", "Primed protocol (Pearson r, pooled; CVRNN paper at 10 notes: velocity 0.72, onset deviation "
                  "0.07, duration 0.77, tempo 0.21)", "",
                  "| system | notes | velocity | onset deviation | duration | tempo | starting points |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, res in report["primed"].items():
            for who in ("model", "human"):
                for hz, row in res[who].items():
                    label = name if who == "model" else f"human (another performance), vs {name} points"
                    vals = " | ".join(f"{row.get(k, float('nan')):.3f}" for k in PAPER_CVRNN_10)
                    lines.append(f"| {label} | {hz.split('_')[0]} | {vals} | {res['starting_points']} |")
    for name, res in report.get("primed_cvrnn", {}).items():
        lines += ["", f"CVRNN primed protocol, {name} (the paper's Table 2: prime 20 notes, decode 10 and 40; "
                  f"{res['starting_points']} starting points)", "",
                  "| z | notes | velocity | onset deviation | duration | tempo | paper: velocity | onset | duration "
                  "| tempo |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for mode in ("z_zero", "z_prior"):
            for hz, row in res[mode].items():
                paper = res["paper"][hz][mode]
                vals = " | ".join(f"{row.get(k, float('nan')):.3f}" for k in PAPER_CVRNN_10)
                ref = " | ".join(f"{paper[k]:.2f}" for k in PAPER_CVRNN_10)
                label = "0" if mode == "z_zero" else "primed prior"
                lines.append(f"| {label} | {hz.split('_')[0]} | {vals} | {ref} |")
    for name, kl in report.get("kl_per_dimension", {}).items():
        lines += ["", f"KL(q || p) per z dimension, {name} (nats per note; near 0 = an unused dimension): "
                  + ", ".join(f"z{d + 1} {v:.3f}" for d, v in enumerate(kl))]  # fmt: skip
    for name, res in report.get("latent_consistency", {}).items():
        share = res["same_sign_share"]
        lines += ["", f"Latent consistency, {name}: the same random Δ applied to two segments of "
                  f"{res['segment_notes']} notes ({res['pairs']} pairs); share of pairs whose change has the same "
                  "sign (0.5 = chance): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in share.items()), "",
                  "| dimension | velocity change (+2sigma vs -2sigma) | same sign | tempo change (%) | same sign "
                  "| articulation change (log2) | same sign |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for dim, row in res["dimensions"].items():
            cells = " | ".join(f"{row[m]['mean_change_plus2_vs_minus2']:+.2f} | {row[m]['same_sign_share']:.2f}"
                               for m in ("velocity", "tempo_percent", "articulation_log2"))  # fmt: skip
            lines.append(f"| {dim} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_report(report: dict, path) -> Path:
    plt = _pyplot()
    names = [n for n in report["systems"] if report["systems"][n]["per_note"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    features = list(NOTE_FEATURES)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        p = report["systems"][name]["per_note"]
        axes[0].bar(np.arange(len(features)) + k * width, [p[f]["r"] for f in features], width, label=name)
    axes[0].set_xticks(np.arange(len(features)) + 0.4 - width / 2, features)
    axes[0].set_ylabel("Pearson r with the human (per note)")
    axes[0].legend(fontsize=8)
    dims = list(HIST_SPECS)
    for k, name in enumerate(names):
        d = report["systems"][name]["distribution"]
        if d:
            axes[1].bar(np.arange(len(dims)) + k * width, [d[x]["js_distance"] for x in dims], width, label=name)
    axes[1].set_xticks(np.arange(len(dims)) + 0.4 - width / 2, dims)
    axes[1].set_ylabel("JS distance to human histograms (lower is better)")
    fig.tight_layout()
    return _save(fig, path)


def plot_tempo_curves(report: dict, path, piece: str | None = None) -> Path:
    """The beat tempo curves of one piece: each renderer, deadpan and every pianist (thin grey)."""

    curves = report.get("tempo_curves", {})
    if not curves:
        raise EspressivoError("the report holds no tempo curves")
    if piece is None or piece not in curves:  # the piece with the most pianists
        piece = max(curves, key=lambda k: (len(curves[k]["human"]), k))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(13, 4))
    for k, curve in enumerate(curves[piece]["human"]):
        ax.plot(curve, color="0.6", lw=0.8, label="pianists" if k == 0 else None)
    for name, curve in curves[piece].items():
        if name != "human":
            ax.plot(curve, lw=1.4 if name != "deadpan" else 0.8, label=name)
    values = np.concatenate(
        [np.asarray(c, dtype=np.float64) for c in curves[piece]["human"]]
        + [np.asarray(c, dtype=np.float64) for n, c in curves[piece].items() if n != "human"]
    )
    values = values[np.isfinite(values) & (values > 0)]
    if len(values):  # a grace note's beat can measure thousands of beats per minute: keep the bulk in view
        low, high = np.percentile(values, [1, 99])
        ax.set_yscale("log")
        ax.set_ylim(low / 1.25, high * 1.25)
    ax.set_xlabel("score beat")
    ax.set_ylabel("tempo (beats per minute, log scale)")
    ax.set_title(f"{piece}: tempo over each score beat")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_histograms(stats: dict[str, list[dict]], path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, name in zip(axes, HIST_SPECS, strict=True):
        low, high, bins = HIST_SPECS[name]
        centres = np.linspace(low, high, bins, endpoint=False)
        for system, items in stats.items():
            h = histogram(np.concatenate([s[name] for s in items]), name).astype(np.float64)
            ax.plot(centres, h / max(h.sum(), 1), label=system, lw=1)
        ax.set_title(name)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def write_report(report: dict, json_path=None) -> None:
    if json_path:
        atomic_write_bytes(json_path, json.dumps(report, indent=1, default=float).encode())


LM_ROWS = (
    ("notes_per_sec", "notes / s", 2), ("polyphony_keys", "keys held at once", 2),
    ("polyphony_pedal", "... with the pedal", 2), ("long_notes_share", "notes held >= 4 s", 4),
    ("median_note_sec", "median note (s)", 3), ("pedal_per_min", "pedal presses / min", 1),
    ("velocity_sd", "velocity sd", 2), ("mean_pitch", "mean pitch", 1),
)  # fmt: skip


def lm_markdown(report: dict) -> str:
    """``evaluate lm``'s report as markdown tables: likelihood, then each part of the protocol beside real music."""
    lines = [f"# {Path(report['model']).name} on the {report['split']} split", ""]
    lines += ["| nats / id | bits / s of music | NLL 256-512 | NLL last quarter | context | performances |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    lines.append(f"| {report['nll_nats_per_token']:.4f} | {report['bits_per_second']:.1f} | {report.get('nll_256_512')}"
                 f" | {report['nll_last_quarter']} | {report['context']} | {report['performances']} |")  # fmt: skip
    lines += ["", "NLL by position: " + ", ".join(f"{k}: {v}" for k, v in report["nll_by_position"].items()), ""]
    for part in ("improvisation", "continuation", "infill"):
        if part not in report:
            continue
        block = report[part]
        gen, real = block["generated"], block["real"]
        lines += [f"## {part} ({gen.get('count', 0)} generated, {real.get('count', 0)} real)", "",
                  "| | model | real |", "|---|---|---|"]  # fmt: skip
        for key, label, digits in LM_ROWS:
            if key in gen:
                lines.append(f"| {label} | {gen[key]:.{digits}f} | {real.get(key, float('nan')):.{digits}f} |")
        if "ioi_js" in block:
            lines.append(f"| IOI JS distance to real | {block['ioi_js']:.4f} | 0 |")
        relation = block.get("relation")
        if relation:
            for key, label in (("pitch_class_r", "pitch-class r with the prompt"),
                               ("onset_rate_ratio", "onset rate / the prompt's"),
                               ("register_shift_mean_abs", "register shift (semitones, mean abs)"),
                               ("pedal_ratio", "pedal presses / the prompt's")):  # fmt: skip
                g, r = relation["generated"].get(key), relation["real"].get(key)
                lines.append(f"| {label} | {_cell(g)} | {_cell(r)} |")
        seams = block.get("seams")
        if seams:
            for key, value in seams["generated"].items():
                real_value = _cell(seams["real"][key])
                lines.append(f"| seam: {key.replace('_', ' ')} (mean abs) | {_cell(value)} | {real_value} |")
        if "pieces" in block:
            lines += ["", "Openings: " + "; ".join(block["pieces"])]
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3f}"
