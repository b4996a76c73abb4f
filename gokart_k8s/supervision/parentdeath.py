"""A child process that dies with the thread that started it: ``prctl(PR_SET_PDEATHSIG)``.

Linux sends the chosen signal to a process when its parent *thread* exits (not the parent
process: https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html), whatever ended it,
SIGKILL included. The setting survives ``execve`` (except of a set-user-ID program), so it is made
in ``preexec_fn``, between fork and exec. The thread that calls ``Popen`` must therefore live as
long as the child should: the kubelet's pod thread and the step supervisor's main thread do.

If the parent died before ``prctl`` took effect, the child has already been reparented, so it
checks ``getppid()`` against the pid it was forked from and kills itself (the race the man page
describes). Elsewhere than Linux :func:`die_with_parent` is None and callers rely on their
fallback (the local cluster's reaper pipe).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


# Resolved once, in the parent: the child, between fork and exec, only calls it.
_PRCTL = _prctl()


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent thread dies.

    None where the kernel offers no such thing (then pass ``preexec_fn=None``).
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will send the signal
            os.kill(os.getpid(), sig)

    return preexec
