"""The one exception type espressivo raises for bad input.

Every reader, converter and CLI command turns malformed, empty, oversized or hostile input into an
:class:`EspressivoError` whose message is a single human-readable line.  The CLI prints that line to
stderr and exits with status 2.  Anything else escaping espressivo is a bug.
"""

from __future__ import annotations


class EspressivoError(Exception):
    """Bad input or an impossible request; ``str(err)`` is a one-line explanation."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
