"""Steps: the pipeline's task graph, resolved into one typed :class:`StepSpec` per task.

A *step* is one gokart task that runs as one unit: in this process (inline backend), in its own
process (rehearsal), or as its own Kubernetes Job. The spec is built once, from the task object
and the settings, and everything downstream (plan, placement, manifests, the in-pod command)
reads the spec instead of the task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gokart_k8s.declaration import declaration_of
from gokart_k8s.errors import ConfigurationError
from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import ResourceClass
from gokart_k8s.settings import Settings


@dataclass(frozen=True)
class StepSpec:
    """Everything about one step that leaves the driver process."""

    #: luigi's task family (the class name unless the task overrides it).
    family: str
    #: The module the task class is defined in; the pod imports it to register the class.
    module: str
    #: gokart's ``make_unique_id()``: the cache key, also what the pod must recompute.
    unique_id: str
    #: luigi's ``task_id`` (family, a few params, a hash), for messages and luigi's scheduler.
    task_id: str
    #: Every public parameter in luigi's string form (``to_str_params()``); JSON in the pod command.
    params: Mapping[str, str] = field(hash=False)
    resource_class: ResourceClass
    eviction: Eviction
    #: Seconds one attempt may run (activeDeadlineSeconds), or None for no deadline.
    max_runtime_seconds: int | None = None
    #: Unique ids of the steps this one needs.
    requires: tuple[str, ...] = ()
    #: luigi's class-level arguments of the command line (``--Family-param value``): the pod opens
    #: luigi's command-line context with them, so its ``requires()`` builds what the driver built.
    luigi_args: tuple[str, ...] = ()

    def params_json(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        rc = self.resource_class
        name = rc.name or "one-off"
        return f"step {self.family} (resource class {name!r}, eviction={self.eviction.value})"


@dataclass
class Step:
    """A step together with its live task object (which never leaves the driver)."""

    task: Any
    spec: StepSpec


def unique_id_of(task: Any) -> str:
    """gokart's ``make_unique_id()``; for a plain luigi task, the MD5 of its ``task_id``.

    A plain luigi task has no unique id of its own, and its ``task_id`` (``Family_params_hash``)
    holds capitals and underscores, which a Job name may not; 32 hex digits, like gokart's, name
    its Job and its labels, and the pod computes the same from the same parameters.
    """
    import hashlib

    import gokart

    if isinstance(task, gokart.TaskOnKart):
        return str(task.make_unique_id())
    return hashlib.md5(str(task.task_id).encode()).hexdigest()


def is_external(task: Any) -> bool:
    """True for an input the pipeline reads but never makes (``luigi.ExternalTask``, or any task
    without ``run``): luigi's own rule (``_is_external`` in luigi/worker.py)."""
    return task.run is None or task.run == NotImplemented


def spec_for(task: Any, settings: Settings, requires: Iterable[Any] = ()) -> StepSpec:
    """Resolve a task's declaration against the settings (decorator > config > built-in)."""
    from gokart_k8s.tasks import luigi_args_of

    declared = declaration_of(task)
    if isinstance(declared.resources, ResourceClass):
        rc = declared.resources
    else:
        name = declared.resources or settings.default_resources
        try:
            rc = settings.catalog.resolve(name)
        except ConfigurationError as exc:
            raise ConfigurationError(f"task {task.get_task_family()}: {exc}") from None
    eviction = declared.eviction or settings.default_eviction
    max_runtime = declared.max_runtime_seconds or settings.max_runtime_seconds
    return StepSpec(
        family=task.get_task_family(),
        module=type(task).__module__,
        unique_id=unique_id_of(task),
        task_id=task.task_id,
        params=_portable_params(task),
        resource_class=rc,
        eviction=eviction,
        max_runtime_seconds=max_runtime,
        requires=tuple(unique_id_of(t) for t in requires),
        luigi_args=luigi_args_of(task),
    )


def _portable_params(task: Any) -> dict[str, str]:
    """The task's public parameters, without gokart's own infrastructure knobs.

    ``workspace_directory``, ``local_temporary_directory``, ``redis_*`` and the like are
    insignificant parameters of ``TaskOnKart`` itself: they describe *where* the step runs, not
    *what* it computes, so the pod takes them from its own config and environment (a driver's
    ``./resources/`` must not follow a step into a pod that writes to ``gs://``).
    """
    import gokart

    infrastructure = {name for name, param in gokart.TaskOnKart.get_params() if not param.significant}
    return {k: v for k, v in task.to_str_params().items() if k not in infrastructure}


def unserialisable_parameter_problem(exc: BaseException, *, built_by: Any = None) -> str | None:
    """The problem to report when ``exc`` was raised writing a task parameter as a string, else None.

    luigi writes every parameter as a string (``Parameter.serialize``) when a task is made (its
    ``task_id``) and when a step is sent to its pod; a value the parameter type cannot write -- a
    numpy array in a ``DictParameter``, which ``json.dumps`` refuses -- raises deep inside luigi's
    ``Task.to_str_params``. Its frame still names the parameter, so the problem can too.
    """
    family = name = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "to_str_params" and "param_name" in frame.f_locals:
            owner: Any = frame.f_locals.get("self")
            family = str(owner.get_task_family()) if hasattr(owner, "get_task_family") else type(owner).__name__
            name = frame.f_locals["param_name"]
        tb = tb.tb_next
    if name is None:
        return None
    where = f" (made in {built_by.get_task_family()}.requires())" if built_by is not None else ""
    return (
        f"step {family}{where}: parameter {name!r} holds a value luigi cannot write as a string "
        f"({type(exc).__name__}: {exc}). A step's parameters go to its pod, and into its cache key, in "
        "their string form. Pass plain values (numbers, strings, lists, dicts; e.g. array.tolist() instead "
        "of a numpy array), or give the parameter a type whose serialize() and parse() handle the value."
    )


def walk(root: Any, problems: list[str] | None = None, deps_of: dict[str, list[Any]] | None = None) -> Iterator[Any]:
    """Every task of the graph under ``root``, dependencies first, each once (by task_id).

    With ``deps_of``, each task's flattened ``requires()`` is kept there by task id, so a caller
    that needs them again does not build every dependency a second time.

    With ``problems``, a task whose dependencies cannot be made because of a parameter value is
    left out and the problem recorded there (:func:`unserialisable_parameter_problem`), so the plan
    can show it with the others; without, or for any other error, the error propagates.
    """
    import luigi.task

    seen: set[str] = set()
    order: list[Any] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        task, expanded = stack.pop()
        if expanded:
            order.append(task)
            continue
        if task.task_id in seen:
            continue
        seen.add(task.task_id)
        try:
            deps = luigi.task.flatten(task.requires())
        except Exception as exc:
            problem = unserialisable_parameter_problem(exc, built_by=task)
            if problems is None or problem is None:
                raise
            problems.append(problem)
            continue
        if deps_of is not None:
            deps_of[task.task_id] = deps
        stack.append((task, True))
        for dep in reversed(deps):
            if dep.task_id not in seen:
                stack.append((dep, False))
    return iter(order)


#: The methods through which luigi's configuration changes (``configparser``'s and luigi's TOML
#: parser's; ``read``/``read_string``/``read_file`` all go through ``_read``, ``reload`` through ``read``).
_CONFIG_MUTATORS = ("set", "remove_option", "remove_section", "add_section", "_read", "read", "read_dict")


@contextmanager
def luigi_lookups_memoised() -> Iterator[None]:
    """Within the block, luigi finds each class's parameters and reads each config value once.

    Every time luigi instantiates a task, even one it hands back from its instance cache, it lists
    the class's parameters (``Task.get_params``: ``dir()`` of the class and a ``getattr`` per
    attribute) and looks up ``[Family] param`` in its config for each of them. With gokart's ~40
    parameters per task that is most of a plan's time (407,440 config look-ups for a 1,000-step
    plan; ``get_params`` alone was 52 s of a 10,000-step chain), and half of a step pod's own
    work. The classes do not change while a graph is resolved or a step runs, nor does luigi's
    command line, so the parameters are listed once per class and each parameter's value
    (command line, then ``[Family] param``, then the default: ``Parameter._get_value``) is found
    once per task family. The list comes back as a new list each time, as luigi makes it.

    The configuration may change (a step's ``run()`` may ``set`` a value, or load another file):
    any change through luigi's parsers (:data:`_CONFIG_MUTATORS`, which a new parser instance's
    first read goes through too) forgets every value found so far.
    """
    import luigi.parameter
    import luigi.task
    from luigi.configuration import LuigiConfigParser, LuigiTomlParser

    original_value: Callable[[Any, str, str], Any] = luigi.parameter.Parameter._get_value
    original_params = luigi.task.Task.__dict__["get_params"]
    values: dict[tuple[int, str, str, int], Any] = {}
    params: dict[type, list[tuple[str, Any]]] = {}

    from luigi.cmdline_parser import CmdlineParser

    def value(param: Any, task_family: str, name: str) -> Any:
        # Per command-line context too: a value found under --Family-param differs from the config's.
        key = (id(param), task_family, name, id(CmdlineParser.get_instance()))
        if key not in values:
            values[key] = original_value(param, task_family, name)
        return values[key]

    def get_params(cls: type) -> list[tuple[str, Any]]:
        if cls not in params:
            params[cls] = original_params.__func__(cls)
        return list(params[cls])

    def forgetting(method: Callable[..., Any]) -> Callable[..., Any]:
        def changed(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            finally:
                values.clear()

        return changed

    patched: list[tuple[type, str, Any]] = []
    for parser in (LuigiConfigParser, LuigiTomlParser):
        for name in _CONFIG_MUTATORS:
            if hasattr(parser, name):
                # What the class itself defines (restored), else None (the inherited one comes back).
                patched.append((parser, name, parser.__dict__.get(name)))
                setattr(parser, name, forgetting(getattr(parser, name)))
    luigi.parameter.Parameter._get_value = value  # type: ignore[method-assign]
    luigi.task.Task.get_params = classmethod(get_params)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        luigi.parameter.Parameter._get_value = original_value  # type: ignore[method-assign]
        luigi.task.Task.get_params = original_params  # type: ignore[method-assign]
        for parser, name, own in reversed(patched):
            if own is None:
                delattr(parser, name)
            else:
                setattr(parser, name, own)


#: Progress of long work: ``(what is being done, how many steps so far)``, called now and then.
OnProgress = Callable[[str, int], None]
#: Steps between two progress reports of :func:`collect`.
PROGRESS_EVERY = 500


def collect(
    roots: Iterable[Any], settings: Settings, *, prove: bool = True, on_progress: OnProgress | None = None
) -> tuple[list[Step], list[str]]:
    """All steps under ``roots`` with their specs, and every problem found (not just the first).

    With ``prove`` (the default) each step's parameters are also proven to survive the trip to a
    pod (:func:`round_trip_problem`); without, the caller proves those that travel with
    :func:`prove_round_trips` once it knows which they are. ``on_progress`` hears how many steps
    were found, every :data:`PROGRESS_EVERY` (a 10,000-step graph takes seconds to resolve).
    """
    with luigi_lookups_memoised():
        return _collect(roots, settings, prove, on_progress)


def prove_round_trips(steps: Sequence[Step], travelling: Iterable[str]) -> list[str]:
    """The round-trip problems of the steps that travel to a pod (by unique id) and their ancestors.

    A pod recomputes its step's unique id from the string parameters of the step *and* of every step
    it requires (gokart hashes the ids of ``requires()``), so a step's proof stands on its ancestors'.
    A step that does not travel (cached, or run in the driver's own process) needs none: a fully
    cached rerun of 10,000 steps rebuilds nothing. ``steps`` in :func:`collect`'s order (dependencies
    first).
    """
    by_id = {s.spec.unique_id: s for s in steps}
    needed: set[str] = set()
    stack = [u for u in travelling if u in by_id]
    while stack:
        uid = stack.pop()
        if uid in needed:
            continue
        needed.add(uid)
        stack.extend(d for d in by_id[uid].spec.requires if d in by_id and d not in needed)
    problems: list[str] = []
    proven: dict[tuple[type, str], str] = {}
    with luigi_lookups_memoised():
        for step in steps:
            if step.spec.unique_id in needed:
                problem = round_trip_problem(step.task, step.spec, proven)
                if problem:
                    problems.append(problem)
    return problems


def _collect(
    roots: Iterable[Any], settings: Settings, prove: bool = True, on_progress: OnProgress | None = None
) -> tuple[list[Step], list[str]]:
    import luigi.task

    steps: list[Step] = []
    problems: list[str] = []
    seen: set[str] = set()
    proven: dict[tuple[type, str], str] = {}
    deps_of: dict[str, list[Any]] = {}
    for root in roots:
        for task in walk(root, problems, deps_of):
            if task.task_id in seen:
                continue
            seen.add(task.task_id)
            try:
                deps = deps_of.get(task.task_id)
                spec = spec_for(task, settings, luigi.task.flatten(task.requires()) if deps is None else deps)
            except ConfigurationError as exc:
                problems.append(str(exc))
                continue
            except Exception as exc:  # an insignificant parameter is first written here
                problem = unserialisable_parameter_problem(exc)
                if problem is None:
                    raise
                problems.append(problem)
                continue
            problem = round_trip_problem(task, spec, proven) if prove else None
            if problem:
                problems.append(problem)
            steps.append(Step(task=task, spec=spec))
            if on_progress is not None and len(steps) % PROGRESS_EVERY == 0:
                on_progress("resolving the graph", len(steps))
    return steps, problems


def _identical(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``4 == 4.0`` is not identical here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b)
    except Exception:  # a value whose comparison fails: prove the slow way
        return False


def _rebuild_key(task: Any) -> tuple[type, str]:
    return type(task), json.dumps(task.to_str_params(), sort_keys=True)


def round_trip_problem(task: Any, spec: StepSpec, proven: dict[tuple[type, str], str] | None = None) -> str | None:
    """Why ``spec`` would not rebuild the very same task in a pod, or None if it does.

    A step travels to its pod as luigi's string parameters, and the pod checks that it computes the
    same unique id. A value that changes on the way (``FloatParameter`` given the int ``4``: the
    driver hashes ``"4"``, the pod parses ``4.0`` and hashes ``"4.0"``) would make every attempt
    fail as code skew, so it is reported at plan time instead.

    ``proven`` memoises, per task class and string parameters, the unique id a pod computes when it
    rebuilds that task. gokart's unique id hashes the unique ids of ``requires()``, so without it a
    clone recomputes every ancestor afresh: once per *path* through the graph, quadratic on a chain
    and exponential on a diamond lattice. With it (steps visited dependencies first, as
    :func:`collect` does), each clone descends one level and a plan is linear in steps and edges.
    """
    import luigi.task
    from luigi.task_register import Register

    # Taken while luigi's instance cache is on: the very objects the plan walked, ids known.
    original_requires = task.requires() if proven is not None else None
    # luigi hands back a cached instance for equal parameter values (4 == 4.0), which would hide
    # exactly the change looked for here: build the clone as a fresh process (a pod) would.
    cache = Register._Register__instance_cache  # type: ignore[attr-defined]
    Register.disable_instance_cache()
    from gokart_k8s.tasks import command_line

    try:
        # As the pod rebuilds it: inside luigi's command-line context with the class-level arguments.
        with command_line(spec.family, spec.luigi_args):
            clone = type(task).from_str_params(dict(spec.params))
            if proven is not None and _identical(task.param_kwargs, clone.param_kwargs):
                # Every value came back the same, of the same type: the pod's requires() builds the
                # very dependencies the driver built, so their ids are the driver's. One task built
                # per step, not one per edge (10,000 for the root of a 10,000-step fan-in).
                clone.requires = lambda: original_requires  # type: ignore[method-assign]
            elif proven is not None:
                import gokart

                requires = clone.requires()
                for dep in luigi.task.flatten(requires):
                    known = proven.get(_rebuild_key(dep)) if isinstance(dep, gokart.TaskOnKart) else None
                    if known is not None and dep.cache_unique_id:
                        # A dependency the pod rebuilds from the same string parameters: its unique id
                        # was proven when that step was checked (dependencies come first).
                        dep.task_unique_id = known
                # The same dependency objects when the clone hashes them (requires() builds new ones).
                clone.requires = lambda: requires  # type: ignore[method-assign]
            clone_id = unique_id_of(clone)
            if proven is not None:
                proven[_rebuild_key(clone)] = clone_id
    except Exception as exc:
        if unserialisable_parameter_problem(exc) is not None:
            # A dependency's parameter (this step's own were written for its spec): that step, planned
            # first, reports it; one cause, one problem.
            return None
        return (
            f"step {spec.family}: its parameters cannot be rebuilt from their string form "
            f"({type(exc).__name__}: {exc}), so it cannot run in a pod. Make each parameter's "
            "serialize() and parse() agree."
        )
    finally:
        Register._Register__instance_cache = cache  # type: ignore[attr-defined]
    if clone_id == spec.unique_id:
        return None
    rebuilt = clone.to_str_params()
    changed = [
        f"{name}={value!r} becomes {rebuilt.get(name)!r}"
        for name, value in spec.params.items()
        if rebuilt.get(name) != value
    ]
    what = "; ".join(changed) or "a nested task's parameters change"
    return (
        f"step {spec.family}: its parameters change when rebuilt from their string form ({what}), so the "
        "pod would compute another unique id. Pass values of the parameter's own type (e.g. 4.0 for a "
        "FloatParameter, not 4)."
    )
