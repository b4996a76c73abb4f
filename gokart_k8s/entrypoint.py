"""Run in pod: the one command line a step's container runs, locally or on the cluster.

::

    gokart-k8s step --module pkg.pipeline --family TrainModel \
        --params '{"epochs":"10"}' --unique-id 0123abcd...

The same argv is used by the rehearsal (each step in its own process on the local cluster) and by
a real cluster, so a rehearsal proves the remote path. The command

1. imports ``--module`` so the task class registers with luigi (the image must contain it);
2. rebuilds the task from ``--family`` and ``--params`` (JSON of luigi's string parameters --
   never pickle);
3. **refuses to run** if the task's ``make_unique_id()`` differs from ``--unique-id``: the image
   holds different code or dependencies than the driver, and running would write outputs under
   another cache key (exit ``EXIT_CODE_SKEW``);
4. builds the task with gokart (dependencies are already complete: the driver submits a step only
   when its requirements are cached), so gokart's ``complete_check_at_run`` makes a duplicate
   start of the same step a no-op;
5. exits 0, ``EXIT_USER_ERROR`` when the task's own code raised, or ``EXIT_EVICTED`` when SIGTERM
   arrived (eviction, Spot preemption) and the step stopped after its final checkpoint.
"""

from __future__ import annotations

from gokart_k8s.steps import StepSpec


def step_argv(spec: StepSpec, *, program: str = "gokart-k8s") -> list[str]:
    """The explicit command line that runs ``spec`` in a pod (see the module docstring)."""
    return [
        program,
        "step",
        "--module",
        spec.module,
        "--family",
        spec.family,
        "--params",
        spec.params_json(),
        "--unique-id",
        spec.unique_id,
    ]
