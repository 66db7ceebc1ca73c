"""The ``espressivo`` command: every command module registers its commands on :data:`app` when imported."""

from __future__ import annotations

import sys

from espressivo.cli import data, demo, embed, evaluate, files, generate, render, studio, train  # noqa: F401  (registration)
from espressivo.cli.app import app


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
