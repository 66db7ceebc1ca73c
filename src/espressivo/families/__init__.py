"""One entry per model family: everything the rest of espressivo asks about a kind of model, in one place.

A family says what it is (``kind``: a renderer, a language model, an embedder), its config and model classes
(presets: ``Config.from_name``), the training tasks that make it, the features it reads, how it renders or
generates, which controls and steering it honours, which extra evaluation protocols it has and which figures a
shipped model's card keeps.  A checkpoint's ``model_type`` is its family's name.  Nothing outside this package
branches on a model type: it asks the family (``family_of(pretrained).kind``, ``.render``, ...).

Entries name their parts as ``"module:attribute"`` and are imported when first used, so this package sits at
the bottom of the layers (the model, renderer and evaluation modules it names sit above it and may use it).

**A new family** is one file here with ``FAMILY = Family(...)`` and one line in :data:`FAMILIES` below
(``tests/test_families.py`` registers a dummy family and trains, renders and evaluates it through the CLI).
"""

from __future__ import annotations

from espressivo.errors import EspressivoError
from espressivo.families import cvrnn, embedder, notewise, perfrnn, phrase, transformer
from espressivo.families.base import KINDS, Family, resolve
from espressivo.registry import Registry

FAMILIES: Registry[Family] = Registry("model type")
_ALIASES: dict[str, str] = {}


def register(family: Family) -> Family:
    FAMILIES.add(family.name, family)
    for alias in family.aliases:
        _ALIASES[alias] = family.name
    return family


def canonical(model_type: str) -> str:
    """A model type as its family is named now (older checkpoints may carry an alias)."""
    return _ALIASES.get(model_type, model_type) if isinstance(model_type, str) else model_type


def family(model_type: str) -> Family:
    return FAMILIES[canonical(model_type)]


def family_of(pretrained, kind: str = "") -> Family:
    """The family of a loaded model; ``kind``: refuse, in one line, a model of another kind."""
    found = family(pretrained.model_type)
    if kind and found.kind != kind:
        others = ", ".join(f.name for f in FAMILIES.values() if f.kind == kind)
        raise EspressivoError(f"{pretrained.path.name} is a {found.name} model, not a {kind} ({others})")
    return found


def of_kind(kind: str) -> list[Family]:
    return [f for f in FAMILIES.values() if f.kind == kind]


for _module in (perfrnn, transformer, notewise, cvrnn, phrase, embedder):  # a new family: one more name here
    register(_module.FAMILY)

__all__ = ["FAMILIES", "KINDS", "Family", "canonical", "family", "family_of", "of_kind", "register", "resolve"]
