"""The studio's HTTP side (Starlette): a small JSON API over :class:`~espressivo.studio.service.Studio` and the
page, every file of it served from the package.

Routes (all answers JSON unless a file; an error is ``{"error": "one line"}`` with a 4xx status):

=====================================  ==========================================================
``GET  /``                             the page
``GET  /static/{name}``                its script and style (a fixed list)
``GET  /api/renderers``                shipped renderers, their controls; the examples
``POST /api/scores?name=FILE``         upload a score (the body is the file; at most ``max_upload`` bytes)
``POST /api/examples/{which}``         open the bundled example (``etude``) or an (n)ASAP test piece
``GET  /api/scores/{id}``              what ``espressivo info`` says, bars and dynamics
``POST /api/scores/{id}/takes``        queue a take: ``{"kind": "render", "model", "seed", "tempo", ...}``
``POST /api/scores/{id}/reference``    a performance MIDI of the score's opening, for CVRNN takes "like this"
``GET  /api/scores/{id}/notation``    the score engraved (Verovio): how many SVG pages; ``/notation/K`` page K
``GET  /api/takes/{id}``               its state; ``?view=1`` adds notes, pedal and curves when done
``DELETE /api/takes/{id}``             cancel it; ``?remove=1``: delete a finished take and its files
``PATCH /api/takes/{id}``              ``{"name": "...", "star": true}``
``GET  /api/scores/{id}/takes``        the score's takes (a reloaded page lists them again)
``POST /api/takes/{id}/passage``       render bars ``{"first", "last"}`` again, the rest kept
``GET  /api/takes/{id}/{file}``        ``performance.mid``, ``tempo-mapped.mid``, ``audio.wav``
=====================================  ==========================================================
"""

from __future__ import annotations

import json
import re
import unicodedata
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from espressivo.errors import EspressivoError
from espressivo.studio.guard import Guard
from espressivo.studio.service import Studio

MAX_UPLOAD = 10 * 2**20
STATIC = {"studio.js": "text/javascript", "studio.css": "text/css"}
DOWNLOADS = {"performance.mid": "audio/midi", "tempo-mapped.mid": "audio/midi", "audio.wav": "audio/wav"}
MAX_JSON = 64 * 1024


def _slug(text: str, limit: int) -> str:
    """ASCII letters, digits, ``-`` and ``_`` (accents folded): it goes into a header and a file system."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9-]+", "_", folded).strip("_")[:limit].strip("_")


def download_name(entry, take, name: str) -> str:
    """``Title-what_the_take_is-file``: the score's title (else its file name), the take's label (renderer, seed,
    passage...), then the kind of file, e.g. ``Espressivo_Etude_No_1-phrase-small_seed_3-performance.mid``."""
    title = _slug((entry.summary or {}).get("title") or Path(entry.name).stem.split(" ")[0], 60) or "score"
    return f"{title}-{_slug(take.label, 60) or take.id[:6]}-{name}"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)


class TooLarge(OverflowError):
    """A request body over its limit (413)."""


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit // 1024} KB"


async def _body(request: Request, limit: int, what: str = "upload") -> bytes:
    """The request body, refused past ``limit`` bytes (before reading it all when the length is declared)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > limit):
        raise TooLarge(f"the {what} is larger than {_size(limit)}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the {what} is larger than {_size(limit)}")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request) -> dict:
    data = await _body(request, MAX_JSON, "request")
    if not data:
        return {}
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise EspressivoError("the request is not valid JSON") from None
    if not isinstance(value, dict):
        raise EspressivoError("the request must be a JSON object")
    return value


def create_app(studio: Studio, max_upload: int = MAX_UPLOAD, host: str = "127.0.0.1"):
    """The studio's ASGI app over ``studio``, behind the cross-site guard (``studio/guard.py``) for a server
    listening on ``host``."""
    page = resources.files("espressivo.studio") / "static"

    async def index(request: Request) -> Response:
        return Response((page / "index.html").read_bytes(), media_type="text/html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return _error(404, "no such file")
        return Response((page / name).read_bytes(), media_type=STATIC[name])

    async def renderers(request: Request) -> Response:
        examples = [{"id": "etude", "label": "Etude (bundled, with a pianist)"}]
        asap = studio.asap_examples()
        examples += [{"id": f"asap:{i.folder}", "label": f"{i.folder} ((n)ASAP test)"} for i in asap]
        note = "" if asap else ("(n)ASAP pieces appear here when the studio finds the data: start it from the project "
                                "folder (beside ../shared/data) or set ESPRESSIVO_DATA")  # fmt: skip
        return JSONResponse({"renderers": studio.renderers(), "examples": examples, "examples_note": note,
                             "max_upload": max_upload})  # fmt: skip

    def _score_json(entry) -> dict:
        return {"id": entry.id, "name": entry.name, "info": entry.summary, "humans": [h[0] for h in entry.humans],
                "warnings": list(entry.warnings)}  # fmt: skip

    async def upload(request: Request) -> Response:
        name = request.query_params.get("name", "")
        data = await _body(request, max_upload)
        entry = await _in_thread(studio.open_score, name, data)
        return JSONResponse(_score_json(entry), status_code=201)

    async def example(request: Request) -> Response:
        entry = await _in_thread(studio.open_example, request.path_params["which"])
        return JSONResponse(_score_json(entry), status_code=201)

    async def reference(request: Request) -> Response:
        name = request.query_params.get("name", "")
        data = await _body(request, max_upload)
        summary = await _in_thread(studio.set_reference, request.path_params["id"], name, data)
        return JSONResponse(summary, status_code=201)

    async def score(request: Request) -> Response:
        return JSONResponse(_score_json(studio.score(request.path_params["id"])))

    async def notation(request: Request) -> Response:
        return JSONResponse(await _in_thread(studio.notation, request.path_params["id"]))

    async def notation_page(request: Request) -> Response:
        page = request.path_params["page"]
        if not (page.isascii() and page.isdigit() and len(page) <= 3):
            return _error(404, "no such page")
        path = studio.notation_page(request.path_params["id"], int(page))
        return FileResponse(path, media_type="image/svg+xml")

    async def new_take(request: Request) -> Response:
        client = request.headers.get("x-espressivo-client", "")[:64]
        take = await _in_thread(studio.submit, request.path_params["id"], await _json(request), client)  # may load
        return JSONResponse(take.public(), status_code=202)

    async def take(request: Request) -> Response:
        t = studio.take(request.path_params["id"])
        body = JSONResponse(t.public()).body
        if request.query_params.get("view") and t.status == "done" and t.view_json:  # spliced in, not re-encoded
            body = body[:-1] + b',"view":' + t.view_json + b"}"
        return Response(body, media_type="application/json")

    async def cancel(request: Request) -> Response:
        if request.query_params.get("remove"):  # a finished take: gone, with its files
            await _in_thread(studio.remove, request.path_params["id"])
            return JSONResponse({"removed": request.path_params["id"]})
        return JSONResponse(studio.cancel(request.path_params["id"]).public())

    async def edit(request: Request) -> Response:
        return JSONResponse(studio.edit(request.path_params["id"], await _json(request)).public())

    async def takes_of(request: Request) -> Response:
        return JSONResponse({"takes": [t.public() for t in studio.takes_of(request.path_params["id"])]})

    async def passage(request: Request) -> Response:
        client = request.headers.get("x-espressivo-client", "")[:64]
        t = await _in_thread(studio.passage, request.path_params["id"], await _json(request), client)
        return JSONResponse(t.public(), status_code=202)

    async def download(request: Request) -> Response:
        name = request.path_params["file"]
        if name not in DOWNLOADS:
            return _error(404, "no such file")
        t = studio.take(request.path_params["id"])
        path = await _in_thread(studio.file, t.id, name)  # audio cleared for room is made again: off the loop
        filename = download_name(studio.score(t.score_id), t, name)
        return FileResponse(path, media_type=DOWNLOADS[name],
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/renderers", renderers),
        Route("/api/scores", upload, methods=["POST"]),
        Route("/api/examples/{which:path}", example, methods=["POST"]),
        Route("/api/scores/{id}", score),
        Route("/api/scores/{id}/takes", new_take, methods=["POST"]),
        Route("/api/scores/{id}/notation", notation),
        Route("/api/scores/{id}/notation/{page}", notation_page),
        Route("/api/scores/{id}/reference", reference, methods=["POST"]),
        Route("/api/takes/{id}", take, methods=["GET"]),
        Route("/api/takes/{id}", cancel, methods=["DELETE"]),
        Route("/api/takes/{id}", edit, methods=["PATCH"]),
        Route("/api/scores/{id}/takes", takes_of, methods=["GET"]),
        Route("/api/takes/{id}/passage", passage, methods=["POST"]),
        Route("/api/takes/{id}/{file}", download),
    ]
    handlers = {
        EspressivoError: lambda request, err: _error(400, str(err)),
        KeyError: lambda request, err: _error(404, str(err.args[0]) if err.args else "not found"),
        TooLarge: lambda request, err: _error(413, str(err)),
        OverflowError: lambda request, err: _error(429, str(err)),
        ClientDisconnect: lambda request, err: _error(400, "the client went away"),  # no traceback in the log
        404: lambda request, err: _error(404, "not found"),
        405: lambda request, err: _error(405, "method not allowed"),
        Exception: lambda request, err: _error(500, f"internal error: {type(err).__name__}"),  # a bug, one line
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.studio = studio
    return Guard(app, host)


async def _in_thread(func, *args):
    """Reading a score parses XML for a while: off the event loop, so other requests go on."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)
