"""What keeps other web sites out of the studio, which listens on this machine only (ASGI middleware).

A page on any site can make the user's browser send requests to ``http://127.0.0.1:PORT``.  The studio answers
only when

- the ``Host`` header names this machine (``127.0.0.1``, ``localhost``, ``[::1]``, or the address the studio was
  started on): a site that rebinds its own domain name to 127.0.0.1 (DNS rebinding) sends its own name;
- a request that changes anything (POST, DELETE) carries the ``X-Espressivo-Studio`` header, which a browser only
  sends cross-site after a CORS preflight that the studio never grants, and its ``Origin`` (when the browser
  sends one) is the studio's own;

and every answer forbids framing and loading anything from elsewhere (Content-Security-Policy), so another site
can neither post blind uploads and takes nor read what the studio holds.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse

HEADER = "x-espressivo-studio"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SAFE_METHODS = {"GET", "HEAD"}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
     b"style-src 'self' 'unsafe-inline'; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
     b"base-uri 'none'; form-action 'none'"),  # font-src data: Verovio's notation embeds its music font
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]  # fmt: skip


def _hostname(value: str) -> str:
    """``host[:port]`` or ``[v6]:port`` -> the host name, lower case, without brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """Refuses foreign ``Host`` names and cross-site state changes; adds the security headers to every answer."""

    def __init__(self, app, host: str = "127.0.0.1"):
        self.app = app
        self.allowed = set(LOOPBACK)
        self.any_host = host in ("0.0.0.0", "::", "")  # opened to the network on purpose: names are not known
        self.allowed.add(_hostname(host) if ":" not in host or host.startswith("[") else host.lower())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._problem(scope["method"], headers)

        async def secured(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        if problem:
            return await JSONResponse({"error": problem}, status_code=403)(scope, receive, secured)
        return await self.app(scope, receive, secured)

    def _problem(self, method: str, headers: dict[str, str]) -> str:
        host = headers.get("host", "")
        if not self.any_host and _hostname(host) not in self.allowed:
            return "this studio answers only to this machine's own address (Host header refused)"
        if method in SAFE_METHODS:
            return ""
        if headers.get(HEADER) != "1":
            return "a request that changes the studio must come from its own page"
        origin = headers.get("origin")
        if origin is not None and origin != "null":
            if urlsplit(origin).netloc.lower() != host.lower():
                return "a request from another site's page is refused"
        elif origin == "null":
            return "a request from another site's page is refused"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "a request from another site's page is refused"
        return ""
