"""Where the shared data lives: ``$ESPRESSIVO_DATA`` or the nearest ``shared/data`` above the working directory."""

from __future__ import annotations

import os
from pathlib import Path

from espressivo.errors import EspressivoError


def default_data_root() -> Path:
    env = os.environ.get("ESPRESSIVO_DATA")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for folder in [here, *here.parents]:
        for candidate in (folder / "shared" / "data", folder / ".." / "shared" / "data"):
            if candidate.is_dir():
                return candidate.resolve()
    raise EspressivoError("cannot find the shared data folder; set ESPRESSIVO_DATA or pass --root")


def existing_dir(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise EspressivoError(f"{path}: {what} folder not found")
    return path
