"""The one registry convention: tokenizers, model families, training tasks and CLI commands are each a
:class:`Registry`, filled by a decorator (``@TOKENIZERS.register``) or one ``add`` line.

>>> SHAPES = Registry("shape")
>>> @SHAPES.register("square")
... def square(x): return x * x
>>> SHAPES["square"](3), "circle" in SHAPES
(9, False)

Looking up a name that is not there is bad input: one line naming what is available.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from espressivo.errors import EspressivoError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._items[name] = item
        return item

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: register under ``name`` (default: the object's ``name`` attribute)."""

        def decorate(item: T) -> T:
            return self.add(name if name is not None else item.name, item)  # type: ignore[attr-defined]

        return decorate

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def __getitem__(self, name: str) -> T:
        if not isinstance(name, str) or name not in self._items:
            available = ", ".join(self._items) or "none"
            raise EspressivoError(f"unknown {self.what} {str(name)!r:.60} (available: {available})")
        return self._items[name]

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._items.get(name, default) if isinstance(name, str) else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self):
        return self._items.items()

    def values(self):
        return self._items.values()
