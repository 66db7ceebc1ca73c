"""Serving the studio with uvicorn, bounded against idle and half-sent connections.

uvicorn closes a keep-alive connection that sends nothing for ``timeout_keep_alive`` seconds, but a request whose
headers never finish holds its connection for ever (its timer is cancelled by the first byte).  1,100 such
connections used to exhaust the process's 1,024 files and stall every other request.  Here a request must finish
its headers within :data:`HEADER_SECONDS` of the connection opening (or of the previous response), whatever it
trickles in meanwhile; and the process may hold as many files as the system allows it.
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 2000


class BoundedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's headers."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(HEADER_SECONDS, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        # uvicorn cancels the timer on any byte; here only complete headers do (handle_events on h11.Request)
        self.conn.receive_data(data)
        self.handle_events()


def raise_file_limit() -> int:
    """Let the process hold as many open files as its hard limit allows (Linux's soft default is 1,024)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = min(hard if hard != resource.RLIM_INFINITY else 65536, 65536)
        if wanted > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return max(soft, wanted)
    except (ImportError, ValueError, OSError):
        return 1024


def serve(app, host: str, port: int) -> None:
    import uvicorn

    files = raise_file_limit()
    uvicorn.run(app, host=host, port=port, log_level="warning", http=BoundedH11, timeout_graceful_shutdown=3,
                timeout_keep_alive=KEEP_ALIVE_SECONDS, limit_concurrency=min(MAX_CONNECTIONS, files - 64))  # fmt: skip
