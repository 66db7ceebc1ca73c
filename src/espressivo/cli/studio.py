"""``espressivo studio``: the local web studio (``espressivo.studio``)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from pathlib import Path

from espressivo.cli.app import app
from espressivo.errors import EspressivoError


def free_port(host: str, port: int = 0) -> int:
    """``port`` if it can be listened on at ``host`` (0: a free one), else OSError."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        probe.bind((host, port))
        return int(probe.getsockname()[1])


@app.command("studio")
def studio_command(host: str = "127.0.0.1", port: int = 0, store: Path | None = None, workers: int = 0,
                   max_upload_mb: float = 10.0) -> None:  # fmt: skip
    """Start the web studio: open a score, render takes with any renderer, listen and look (piano roll, tempo
    and loudness over the score), steer a CVRNN, render a passage again, and download MIDI, editable
    tempo-mapped MIDI and audio.  Offline: everything is served from the package.

    Args:
        host: address to listen on (127.0.0.1: this machine only; 0.0.0.0 opens it to the network)
        port: port to listen on (0: a free one, printed)
        store: folder for uploads and takes (default: a temporary folder, removed on exit); bounded in size
            (512 MB) and age (a day)
        workers: renders at once (0: one per core, at most 4); each renders on one thread
        max_upload_mb: the largest score accepted, in MB
    """
    from espressivo.io.files import protect_inputs
    from espressivo.studio.app import create_app
    from espressivo.studio.server import serve
    from espressivo.studio.service import Studio

    protect_inputs(False)  # the server reads and rewrites its own store; its routes guard their own paths

    if not 0 <= port <= 65535 or not 0 <= workers <= 64 or not 0.01 <= max_upload_mb <= 1024:
        raise EspressivoError("--port must lie in 0..65535, --workers in 0..64 and --max-upload-mb in 0.01..1024")
    try:
        port = free_port(host, port)
    except OSError as err:
        raise EspressivoError(f"cannot listen on {host}:{port or 'a free port'}: {err.strerror or err}") from None
    with tempfile.TemporaryDirectory(prefix="espressivo-studio-") as scratch:
        studio = Studio(Path(store) if store else Path(scratch), workers=workers)
        shown = f"[{host}]" if ":" in host else host
        print(f"espressivo studio: http://{shown}:{port}/  (Ctrl-C stops it)", flush=True)
        try:
            serve(create_app(studio, int(max_upload_mb * 2**20), host), host, port)  # bounded connections
        finally:
            studio.close()
    # Ctrl-C or SIGTERM: uvicorn has stopped (at most 3 s after the signal) and the store is removed; a render or a
    # score still being read in a worker thread cannot be interrupted, and must not keep the process alive
    if threading.active_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
