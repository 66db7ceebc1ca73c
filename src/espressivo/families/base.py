"""What a model family is (:class:`Family`); the entries are in the files beside this one."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cached_property

KINDS = ("renderer", "language", "embedder")


def resolve(ref: str):
    """``"package.module:attribute"`` -> the object."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True, eq=False)
class Family:
    name: str  # the model_type its checkpoints carry
    kind: str  # renderer | language | embedder
    summary: str  # "short name: what it does", in words a user knows (the studio shows both)
    config: str  # "module:Class": its config dataclass, with presets (`from_name`)
    model: str  # "module:Class": its nn.Module; forward(**batch) -> (output, loss)
    tasks: tuple[str, ...]  # the training tasks that make it; `task: auto` takes the first whose data fits
    features: str = ""  # "module:NAMES": the named score features it reads (stored in its checkpoints)
    render: str = ""  # renderer: "module:function" (pretrained, score, options, variations, **steering)
    prime: str = ""  # renderer: "module:function" that continues a pianist's first notes ("" cannot)
    controls: frozenset[str] = frozenset()  # rendering controls beyond the common ones
    steering: frozenset[str] = frozenset()  # keyword arguments of its render beyond the options
    threads: int = 1  # torch threads by default: 1 for note-by-note sampling loops, 0 (torch's) for batched work
    markings: bool = False  # reads the score's performance markings (a MIDI score has none: said on stderr)
    evaluations: tuple[str, ...] = ()  # "module:function"s: extra `evaluate render` protocols (see evaluate.render)
    card: str = ""  # "module:function" (report, system) -> the figures a shipped model's card keeps
    aliases: tuple[str, ...] = field(default=())  # older model_type names its checkpoints may carry

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"family {self.name}: kind must be one of {KINDS}")
        if self.kind == "renderer" and not self.render:
            raise ValueError(f"family {self.name}: a renderer needs a render function")

    @cached_property
    def config_class(self):
        return resolve(self.config)

    @cached_property
    def model_class(self):
        return resolve(self.model)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(resolve(self.features)) if self.features else ()

    def part(self, name: str):
        """The callable an entry names (``render``, ``prime``, ``card``), or None where it has none."""
        ref = getattr(self, name)
        return resolve(ref) if ref else None
