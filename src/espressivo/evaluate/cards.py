"""What a shipped model's card keeps of its test evaluation (``config.json``'s ``evaluation``), one function per
kind of report; each family names its own (``card`` in :mod:`espressivo.families`)."""

from __future__ import annotations


def renderer_card(report: dict, system: str) -> dict:
    """From an ``espressivo evaluate render`` report: distributions, per-note figures, shape, primed."""
    entry = report["systems"][system]
    return {
        "split": report["split"],
        "distribution_overall": entry["distribution"]["overall"],
        "per_note": entry["per_note"],
        "shape": entry.get("shape"),
        "primed": report.get("primed", {}).get(system, {}).get("model"),
    }


def cvrnn_card(report: dict, system: str) -> dict:
    """From an ``espressivo evaluate render`` report: also the latent's figures (the studio's sliders use them)."""
    entry = report["systems"][system]
    primed = report.get("primed_cvrnn", {}).get(system, {})
    consistency = report.get("latent_consistency", {}).get(system, {})
    return {
        "split": report["split"],
        "distribution_overall": entry["distribution"]["overall"],
        "per_note": entry["per_note"],
        "primed": {k: primed.get(k) for k in ("z_zero", "z_prior", "starting_points")},
        "latent_consistency": consistency.get("same_sign_share"),
        "latent_dimensions": consistency.get("dimensions"),
        "kl_per_dimension": report.get("kl_per_dimension", {}).get(system),
    }


def embedder_card(report: dict, system: str) -> dict:
    """From an ``espressivo evaluate embed`` report: probes and retrieval."""
    tasks = {t: e["results"][system]["all"] for t, e in report["tasks"].items()}
    return {"split": "test", "probe": tasks, "retrieval": report["retrieval"][system],
            "snippet_retrieval": report.get("snippet_retrieval", {}).get(system),
            "max_chunks": report["max_chunks"]}  # fmt: skip


def language_card(report: dict, system: str) -> dict:
    """From an ``espressivo evaluate lm`` report: likelihood (``default`` picks the fewest bits per second) and the
    generation protocol."""
    return {
        "split": report["split"],
        "test_nll_nats_per_token": round(report["nll_nats_per_token"], 4),
        "bits_per_second": round(report["bits_per_second"], 2),
        "nll_by_position": report.get("nll_by_position"),
        "context": report.get("context"),
        "sampling": report.get("sampling"),
        **{part: report[part] for part in ("improvisation", "continuation", "infill") if part in report},
    }
