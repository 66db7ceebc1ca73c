"""Worker processes that die with their parent: a killed ``data prepare`` or ``data pairs`` leaves no orphans
running on (Linux: the kernel sends them SIGKILL when the parent goes; elsewhere a no-op)."""

from __future__ import annotations

import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``ProcessPoolExecutor`` initializer."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no glibc (musl, ...): workers still end when their tasks do
        pass


def pool(workers: int):
    """A process pool whose workers die with this process."""
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent)
