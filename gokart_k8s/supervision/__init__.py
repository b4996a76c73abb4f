"""Supervision: every process gokart_k8s starts ends when it should, however its parent ends.

Three promises, one module each:

* :mod:`.parentdeath` -- a child asks the kernel to kill it when the thread that started it dies
  (``prctl(PR_SET_PDEATHSIG)``), so SIGKILL of a parent cannot orphan it;
* :mod:`.step` -- the in-pod command is a small supervising parent and a worker child, so the
  SIGTERM budget holds even while the worker's main thread is inside a long C call; the parent
  relays the worker's output and leaves it in the container's termination message
  (:mod:`.termination_log`), where the driver reads a short step's log without a request;
* :mod:`.stopsignals` -- SIGTERM of ``gokart-k8s run`` stops the run the way Ctrl-C does, and
  scratch folders are removed on the way out (or by the next run, after SIGKILL).

The embedded cluster's own guarantee (no pod process outlives it) is in
:mod:`gokart_k8s.localcluster.reaper`, which uses :mod:`.parentdeath`.
"""
