"""Models, one readable file per family; every model's ``forward`` returns ``(output, loss)``.  Which class a
model type builds is its family's entry (:mod:`espressivo.families`)."""

from __future__ import annotations

from dataclasses import asdict

from espressivo.errors import EspressivoError
from espressivo.families import family

MAX_INT_SETTING = 1_000_000  # any integer size of a model (vocabulary, width, layers, window)
MAX_PARAMETERS = 2_000_000_000  # about 8 GiB of float32 weights: beyond, refused before allocating


def check_config(model_type: str, config) -> None:
    """Every setting of the right type and within bounds, and the model's size estimated, before anything is
    allocated: a checkpoint's config.json is input like any other."""
    for name, value in vars(config).items():
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, (bool, str)):
                continue
            if isinstance(v, int) and not 0 <= v <= MAX_INT_SETTING:
                raise EspressivoError(f"{model_type} setting {name}={v} lies outside 0..{MAX_INT_SETTING}")
            default = type(config).__dataclass_fields__[name].default
            sized = name.startswith(("d_", "n_", "max_")) or name.endswith(("_size", "_sizes", "hidden", "_dim"))
            if isinstance(v, int) and v == 0 and sized and isinstance(default, int) and default > 0:
                raise EspressivoError(f"{model_type} setting {name} must be at least 1")
            if isinstance(v, float) and not (v == v and abs(v) < 1e12):
                raise EspressivoError(f"{model_type} setting {name}={v} is not a finite number")
    width = getattr(config, "d_model", 0) or getattr(config, "hidden", 0) or 0
    if not width:
        return
    layers = sum(v for k, v in vars(config).items() if k.startswith("n_") and k.endswith(("layer", "layers")))
    heads = getattr(config, "n_head", 1)
    if heads == 0 or (hasattr(config, "n_kv_head") and config.n_kv_head == 0):
        raise EspressivoError(f"{model_type} setting n_head / n_kv_head must be at least 1")
    ff = getattr(config, "d_ff", 4 * width)
    vocab = getattr(config, "vocab_size", 0) + sum(getattr(config, "slot_sizes", ()) or ())
    estimate = max(layers, 1) * (4 * width * width + 3 * width * ff) + 2 * vocab * width
    if estimate > MAX_PARAMETERS:
        raise EspressivoError(
            f"{model_type} config would need about {estimate * 4 / 2**30:.0f} GiB of weights; refused"
        )


def build_model(model_type: str, config: dict | str, **overrides):
    """A model from its type and a preset name or a config dict (plus overrides such as ``vocab_size``)."""
    entry = family(model_type)  # one line naming the families for an unknown type
    config_cls, model_cls = entry.config_class, entry.model_class
    if isinstance(config, str):
        cfg = config_cls.from_name(config, **overrides)
    else:
        if not isinstance(config, dict):
            raise EspressivoError(f"{model_type} settings must be a mapping, not {type(config).__name__}")
        known = set(config_cls.__dataclass_fields__)
        unknown = set(config) - known
        if unknown:
            raise EspressivoError(f"unknown {model_type} settings: {', '.join(sorted(map(str, unknown)))}")
        fields = config_cls.__dataclass_fields__
        for name, value in config.items():
            default = fields[name].default
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise EspressivoError(f"{model_type} setting {name} must be a number, not {value!r:.40}")
                if isinstance(default, int) and not isinstance(value, int):
                    raise EspressivoError(f"{model_type} setting {name} must be a whole number, not {value!r}")
            if isinstance(default, tuple) and not (
                isinstance(value, (list, tuple)) and all(isinstance(v, (int, str)) for v in value)
            ):
                raise EspressivoError(f"{model_type} setting {name} must be a list of numbers or names")
        try:
            cfg = config_cls(**(dict(config) | overrides))
        except (TypeError, ValueError, ZeroDivisionError) as err:
            raise EspressivoError(f"{model_type} settings do not fit together ({err})") from None
    check_config(model_type, cfg)
    try:
        return model_cls(cfg)
    except (ValueError, ZeroDivisionError, RuntimeError) as err:
        raise EspressivoError(f"{model_type} settings cannot build a model ({type(err).__name__}: {err})") from None


def model_config_dict(model) -> dict:
    return asdict(model.config)


__all__ = ["build_model", "check_config", "model_config_dict"]
