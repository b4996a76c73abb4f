"""The reaper: a tiny process that kills every pod's process group once the cluster's process is gone.

Why a second guard besides the parent-death signal (:mod:`gokart_k8s.supervision.parentdeath`):
that signal reaches only the pod's *main* process, and only on Linux. A pod whose command is a
shell that started children, or the step supervisor's worker, lives in the same process group but
would be orphaned. A container's processes share a cgroup and end together; here the process
group stands for the cgroup, and this reaper ends it.

How: the kubelet starts this file as a script (``python -I -S reaper.py``: no site, no package
import, so it starts in milliseconds and uses a few MiB) in its own session, holding the write end
of a pipe to the reaper's stdin. For every container it starts it writes ``+<pgid>``, for every
container that ended ``-<pgid>``. When the cluster's process ends -- normally, by an exception, or
by SIGKILL -- the kernel closes the write end and the reaper reads end-of-file
(https://man7.org/linux/man-pages/man7/pipe.7.html): it SIGKILLs every group still listed and
exits. Nothing follows those pods any more, so they are killed outright, as on a node that lost
power; the step's periodic checkpoint is what survives.

A normal ``LocalCluster.stop()`` kills the groups itself and then closes the pipe with nothing
listed, so the reaper just exits.
"""

from __future__ import annotations

import os
import signal
import sys


def reap(lines: list[bytes] | None = None) -> set[int]:
    """Follow the protocol on stdin (or ``lines``) to its end; return the groups it killed."""
    groups: set[int] = set()
    source = lines if lines is not None else iter(sys.stdin.buffer.readline, b"")
    for line in source:
        text = line.strip()
        if len(text) < 2 or text[:1] not in (b"+", b"-") or not text[1:].isdigit():
            continue
        pgid = int(text[1:])
        if text[:1] == b"+":
            groups.add(pgid)
        else:
            groups.discard(pgid)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return groups


def main() -> None:
    # Its own session already keeps a terminal's Ctrl-C away; ignore it anyway, so the reaper is
    # only ever ended by end-of-file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reap()


if __name__ == "__main__":
    main()
