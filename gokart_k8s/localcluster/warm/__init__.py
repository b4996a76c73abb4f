"""The warm interpreter: a pod's ``gokart-k8s step`` forked from a process that has imported gokart.

A fresh interpreter spends about a second importing gokart, luigi and pandas before a step runs,
twice per pod (the step supervisor and its worker). The kubelet of the embedded cluster asks a
small long-lived helper, the *warm server* (:mod:`.server`), which imported those libraries once,
to fork one child per pod instead. Each child becomes the pod's container exactly as the kubelet's
``Popen`` would start it: its own session and process group, the pod's environment (replacing, not
merging), working directory and ``sys.path`` (recomputed from its ``PYTHONPATH`` and working
directory), stdout and stderr into the pod's log, and its exit status reported to the kubelet.

Only the project's own step command is forked (:func:`.fork.step_tail`); anything else, and any
pod whose interpreter would differ from the server's (another ``PYTHON*`` setting, or a module the
server preloaded that the pod's ``sys.path`` finds elsewhere), is started as a fresh interpreter:
the child ``execve``\\s the same command line (:func:`.fork.equivalence_problem`).

* :mod:`.fork` -- pure decisions and what a forked child does to become a pod (no sockets);
* :mod:`.server` -- the helper process: preload, then one fork per request (single-threaded);
* :mod:`.client` -- the kubelet's side: start, restart and stop the server, and a ``Popen``-like
  handle per forked container.

Turn it off with ``[gokart_k8s] warm_interpreter = false`` (``GOKART_K8S_WARM_INTERPRETER``) or
``gokart-k8s local-cluster start --no-warm-interpreter``; docs/local-cluster.md lists what differs.
"""
