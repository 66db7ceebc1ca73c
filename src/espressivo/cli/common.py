"""What the command modules share: reading inputs, printing summaries, refusing outputs that would overwrite
inputs, loading a renderer."""

from __future__ import annotations

import json
from pathlib import Path

from espressivo.core import Performance, Score
from espressivo.errors import EspressivoError
from espressivo.io import SCORE_SUFFIXES, read_midi, read_score
from espressivo.io.summary import note_name, performance_summary, score_summary  # noqa: F401  (the commands' names)


def _is_score(path: Path, as_score: bool) -> bool:
    suffix = path.suffix.lower()
    if suffix not in SCORE_SUFFIXES:
        raise EspressivoError(f"{path}: unknown file type {suffix!r} (MIDI, MusicXML, .mxl, MEI or kern expected)")
    return as_score or suffix not in (".mid", ".midi")


def load_input(path: Path, as_score: bool = False, qpm: float | None = None) -> tuple[Performance, Score | None]:
    """A performance to play or draw: the file itself, or a score played deadpan at its written tempo
    (or at ``qpm`` quarter notes per minute)."""
    if _is_score(path, as_score):
        score = read_score(path)
        return score.to_performance(qpm=qpm), score
    return read_midi(path), None


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    for key, value in summary.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) if value else "-"
        elif isinstance(value, dict):
            value = "; ".join(f"{k}: {v}" for k, v in value.items()) if value else "-"
        print(f"{key.replace('_', ' '):>30}: {value}")


MAX_TOKENS = 200_000  # about an hour of dense piano at the tokenizers' rates


def _refuse_overwriting(inputs: list[Path | None], outputs: list[Path | None], suffixes: tuple[str, ...]) -> None:
    """An output that is one of the inputs, or with another suffix than the format written, is refused."""
    sources = {p.resolve() for p in inputs if p is not None}
    for out in outputs:
        if out is None:
            continue
        if out.resolve() in sources:
            raise EspressivoError(f"{out}: that is an input; write the result to another file")
        if out.suffix.lower() not in suffixes:
            raise EspressivoError(f"{out}: the output must be a {' or '.join(suffixes)} file")


def _numbered(path: Path, number: int, count: int) -> Path:
    return path if count == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")


def planned_outputs(inputs: list[Path | None], groups: list[tuple[Path | None, tuple[str, ...]]], count: int = 1,
                    derived: tuple[str, ...] = ()) -> list[Path]:  # fmt: skip
    """Every file a command will write, checked before any work: each ``(path, suffixes)`` numbered for
    ``count`` results (OUT-1, OUT-2, ...) and with each ``derived`` suffix (.wav, .png); none may be an input, have
    another suffix than its format, or be written twice."""
    planned: list[Path] = []
    for path, suffixes in groups:
        if path is None:
            continue
        numbered = [_numbered(path, n, count) for n in range(1, count + 1)]
        _refuse_overwriting(inputs, numbered, suffixes)
        planned += numbered
        extra = [p.with_suffix(s) for p in numbered for s in derived]
        _refuse_overwriting(inputs, extra, derived)
        planned += extra
    seen: set[Path] = set()
    for path in planned:
        if path.resolve() in seen:
            raise EspressivoError(f"{path}: two outputs would be written to this one file; name them apart")
        seen.add(path.resolve())
    return planned


def _load_renderer(model: str, kinds: tuple[str, ...] = ()):
    """A renderer of any family (or of ``kinds`` only), else a one-line refusal."""
    from espressivo.families import family_of
    from espressivo.models.checkpoint import load_pretrained

    pretrained = load_pretrained(model)
    family = family_of(pretrained, "renderer")
    if kinds and family.name not in kinds:
        raise EspressivoError(f"{model} is a {pretrained.model_type} model, not a {' or '.join(kinds)}")
    return pretrained


def _steering_dimension(pretrained) -> int:
    """The z dimension whose +-2 sigma shift changed the tempo most, and most consistently, in the model's test
    evaluation (``latent_dimensions`` in its config); 0 when the config does not say."""
    dims = pretrained.config.get("evaluation", {}).get("latent_dimensions") or {}
    scores = {}
    for name, row in dims.items():
        tempo = row.get("tempo_percent", {})
        scores[int(name[1:]) - 1] = abs(tempo.get("mean_change_plus2_vs_minus2", 0.0)) * tempo.get("same_sign_share", 0)
    return max(scores, key=scores.get) if scores else 0


def _parse_settings(text: str) -> dict:
    settings = {}
    for item in [t for t in text.split(",") if t.strip()]:
        key, sep, value = item.partition("=")
        if not sep:
            raise EspressivoError(f"tokenizer setting {item!r} is not key=value")
        value = value.strip()
        if value.lower() in ("true", "false"):
            settings[key.strip()] = value.lower() == "true"
        else:
            try:
                settings[key.strip()] = int(value)
            except ValueError:
                try:
                    settings[key.strip()] = float(value)
                except ValueError:
                    raise EspressivoError(f"tokenizer setting {key.strip()} needs a number or true/false") from None
    return settings
