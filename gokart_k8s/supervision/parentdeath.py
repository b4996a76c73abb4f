"""A child process that dies with the thread that started it: ``prctl(PR_SET_PDEATHSIG)``.

Linux sends the chosen signal to a process when its parent *thread* exits (not the parent
process: https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html), whatever ended it,
SIGKILL included. The thread that starts the child must therefore live as long as the child
should: the kubelet's pod thread and the step supervisor's main thread do. Two ways to ask:

* :func:`die_with_parent` -- a ``preexec_fn`` for ``Popen`` (the setting survives ``execve``).
  It makes ``Popen`` fork instead of using the much cheaper ``vfork``/``posix_spawn``, so it is
  for small parents (the step supervisor), not for the embedded cluster's kubelet, which starts
  hundreds of pods from a large multi-threaded process (500 pods took 3x longer with it);
* :func:`die_with_parent_from_environment` -- the child asks for itself after it started, when its
  parent named itself in :data:`PARENT_ENV` (the kubelet does, for every pod; ``gokart-k8s step``
  asks first thing).

Either way, if the parent died before ``prctl`` took effect, the child has already been
reparented: it compares ``getppid()`` with the parent's pid and kills itself (the race the man page
describes). Elsewhere than Linux nothing is set and callers rely on their fallback (the local
cluster's reaper pipe).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["PARENT_ENV", "die_with_parent", "die_with_parent_from_environment"]

#: Set by a parent that wants its child to die with it: the parent's pid.
PARENT_ENV = "GOKART_K8S_DIE_WITH_PARENT"

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


def die_with_parent_from_environment(sig: int = signal.SIGKILL) -> bool:
    """Ask for ``sig`` when the parent named in :data:`PARENT_ENV` dies; False when nothing was set.

    Does nothing when the variable is missing or names a process that is not this one's parent
    (the variable was inherited from further up).
    """
    raw = os.environ.get(PARENT_ENV, "")
    if _PRCTL is None or not raw.isdigit():
        return False
    parent = int(raw)
    if os.getppid() != parent:
        if os.getppid() == 1:  # reparented already: the parent is gone
            os.kill(os.getpid(), sig)
        return False
    _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl: nobody will send the signal
        os.kill(os.getpid(), sig)
    return True
