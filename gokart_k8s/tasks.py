"""Find the pipeline's root task from a luigi-style command line.

``TASK [luigi params]`` is named exactly as luigi's own command line names it:
``pkg.module.TaskName --param value`` or ``--module pkg.module TaskName --param value``. Parsing is
luigi's (``CmdlineParser``), so parameters parse exactly as they would under ``luigi`` or
``gokart.run``; this module only turns luigi's exits and tracebacks into clear errors.

**The whole graph is resolved while luigi's command-line context is open**, as ``luigi``'s own
command line does (``luigi.interface`` keeps the context open while its workers call every
``requires()``). A class-level parameter such as ``--CountWords-chunk 50`` reaches a task only when
that task is *constructed* inside the context (luigi reads ``CmdlineParser.get_instance()`` in
``Parameter._value_iterator``, https://luigi.readthedocs.io/en/stable/parameters.html#setting-parameter-value-for-other-classes).
So :func:`task_from_argv` walks every ``requires()`` inside the context and pins each result on its
task (a later ``requires()`` returns the very objects the command line built), and remembers the
class-level arguments, which travel to every step's pod (``gokart-k8s step --luigi-args``) so a
pod's own ``requires()`` resolves the same graph.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from gokart_k8s.errors import ConfigurationError, TaskNotFoundError

#: Attribute a resolved task carries: luigi's class-level arguments of the command line it came from.
LUIGI_ARGS_ATTR = "_gokart_k8s_luigi_args"


def _import(module: str, what: str) -> None:
    """Import the pipeline's module, turning every way it can fail into one clear error."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise TaskNotFoundError(
                f"cannot import {what}: {exc}. Check the spelling, and that the module is importable "
                "from here (current directory or PYTHONPATH)."
            ) from exc
        # The module exists but one of its own imports is missing.
        raise TaskNotFoundError(f"importing {what} failed: {exc}") from exc
    except Exception as exc:
        raise TaskNotFoundError(f"importing {what} raised {type(exc).__name__}: {exc}") from exc


def _import_dotted(argv: list[str]) -> list[str]:
    """Import ``pkg.module`` of a dotted ``pkg.module.TaskName`` and name the task by its family.

    luigi's own parser only knows task families, so ``pkg.module.TaskName`` becomes the family of
    that class once its module is imported.
    """
    for index, arg in enumerate(argv):
        if arg.startswith("-") or (index > 0 and argv[index - 1] == "--module"):
            continue
        if "." in arg:
            module, _, _name = arg.rpartition(".")
            _import(module, f"module {module!r} for task {arg!r}")
            cls = getattr(sys.modules[module], _name, None)
            if cls is None or not hasattr(cls, "get_task_family"):
                raise TaskNotFoundError(
                    f"module {module!r} has no task {_name!r}. Check the spelling of the task class name."
                )
            return [*argv[:index], cls.get_task_family(), *argv[index + 1 :]]
        return argv
    return argv


def _import_module_flag(argv: Sequence[str]) -> None:
    for i, arg in enumerate(argv):
        name = None
        if arg == "--module" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--module="):
            name = arg.split("=", 1)[1]
        if name:
            _import(name, f"--module {name!r}")


#: How TASK and its parameters are passed, for the help of every command that takes a task.
TASK_ARGUMENTS_HELP = """\
TASK is named as luigi names it: pkg.module.TaskName, or --module pkg.module TaskName.
Task parameters follow it as on luigi's own command line: --param-name VALUE for TASK
itself, --Family-param-name VALUE for any task of the pipeline (e.g. --CountWords-chunk 50).
'--help-task' after TASK lists TASK's parameters, their defaults and help."""


def task_usage(command: str, options: str = "[options]") -> str:
    """The usage line of a command that takes ``TASK [task parameters]``."""
    return f"gokart-k8s {command} TASK [--param-name VALUE ...] [--Family-param-name VALUE ...] {options}"


def task_help(argv: Sequence[str]) -> str:
    """``--help-task``: the parameters of the task named in ``argv``, with defaults and help."""
    from luigi.parameter import _no_value  # type: ignore[attr-defined]
    from luigi.task_register import Register, TaskClassException

    argv = [a for a in argv if a != "--help-task"]
    _import_module_flag(argv)
    argv = _import_dotted(argv)
    names = [a for i, a in enumerate(argv) if not a.startswith("-") and (i == 0 or argv[i - 1] != "--module")]
    if not names:
        raise TaskNotFoundError("no task given: name it before --help-task, e.g. 'pkg.module.TaskName --help-task'.")
    try:
        cls = Register.get_task_cls(names[0])
    except TaskClassException as exc:
        raise TaskNotFoundError(f"{exc}".strip()) from None
    family = cls.get_task_family()
    lines = [f"{family} ({cls.__module__}): its parameters, passed after the task name"]
    import gokart

    # gokart's own knobs (workspace_directory, rerun, ...) are the same for every task: left out.
    base = {n for n, _p in gokart.TaskOnKart.get_params()} if issubclass(cls, gokart.TaskOnKart) else set()
    params = [(n, p) for n, p in cls.get_params() if n not in base]
    if not params:
        lines.append("  (none)")
    width = max((len(n) for n, _p in params), default=0) + 2
    for name, param in params:
        default = param._default
        shown = "required" if default is _no_value else f"default {param.serialize(default)!r}"
        flags = "" if param.significant else ", insignificant (not in the cache key)"
        flag = f"--{name.replace('_', '-')}"
        lines.append(f"  {flag:<{width + 2}} {type(param).__name__}, {shown}{flags}")
        if param.description:
            lines.append(f"  {'':<{width + 2}} {param.description}")
    example = f"--{family}-{params[0][0].replace('_', '-')} VALUE" if params else "--CountWords-chunk 50"
    lines.append(f"Any task of the pipeline takes --Family-param-name VALUE, e.g. {example}.")
    return "\n".join(lines)


def task_from_argv(argv: Sequence[str]) -> Any:
    """Build the root task object from ``TASK [luigi params]``."""
    from luigi.cmdline_parser import CmdlineParser
    from luigi.parameter import MissingParameterException
    from luigi.task_register import TaskClassException

    argv = list(argv)
    if not [a for a in argv if not a.startswith("-")]:
        raise TaskNotFoundError(
            "no task given: name it as luigi does, e.g. 'examples.ml_pipeline.pipeline.Report' or "
            "'--module examples.ml_pipeline.pipeline Report'."
        )
    if sys.path[0] != "" and "" not in sys.path:
        # Like `python -m luigi`: modules in the current directory are importable.
        sys.path.insert(0, "")
    _import_module_flag(argv)
    argv = _import_dotted(argv)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), CmdlineParser.global_instance(argv, allow_override=True) as cp:
            root = cp.get_task_obj()
            from gokart_k8s.steps import luigi_lookups_memoised

            with luigi_lookups_memoised():
                resolve_graph(root, class_level_args(cp.known_args))
            return root
    except MissingParameterException as exc:
        raise ConfigurationError(
            f"a task parameter is missing: {exc}. Pass it after the task name (--param-name value for the "
            "root task, --Family-param-name value for any task) or set it in luigi.cfg ([Family] param_name = "
            "value); 'gokart-k8s plan TASK --help-task' lists the root task's parameters."
        ) from None
    except TaskClassException as exc:
        raise TaskNotFoundError(f"{exc}".strip()) from None
    except SystemExit as exc:
        text = stderr.getvalue().strip().splitlines()
        detail = text[-1] if text else str(exc)
        detail = detail.replace("error: ", "")
        raise ConfigurationError(
            f"task parameters do not parse: {detail}. Pass parameters as luigi does "
            "(--param-name value, after the task name); see 'gokart-k8s plan TASK --help-task'."
        ) from None
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"task parameters do not parse: {exc}") from None


class _Pinned:
    """A task's ``requires()`` as resolved under the command line (picklable, unlike a lambda)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return self.value


def class_level_args(known_args: Any) -> tuple[str, ...]:
    """luigi's class-level arguments (``--Family-param value``) found in a parsed command line.

    Rebuilt from luigi's own parse (``CmdlineParser.known_args``), so every spelling luigi accepts
    (``--X-y=v``, a flag) comes out in one form. Left out: luigi's and gokart's own classes and
    gokart's infrastructure parameters (``--TaskOnKart-workspace-directory``...), which describe where
    this process runs, not what a step computes; a pod takes them from its own config and environment.
    """
    import gokart
    from luigi.task_register import Register

    infrastructure = {name for name, param in gokart.TaskOnKart.get_params() if not param.significant}
    args: list[str] = []
    for family, without_section, name, _param in Register.get_all_params():
        if without_section or name in infrastructure:
            continue
        cls = Register.get_task_cls(family)
        if cls.__module__.split(".")[0] in ("luigi", "gokart", "gokart_k8s"):
            continue
        dest = f"{family}_{name}"
        value = getattr(known_args, dest, None)
        if not value:  # luigi ignores a falsy value too (Parameter._parse_or_no_value)
            continue
        flag = "--" + dest.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return tuple(args)


def resolve_graph(root: Any, luigi_args: Sequence[str]) -> None:
    """Call every ``requires()`` under ``root`` now (inside the command line's context) and pin it.

    Each task keeps the objects its ``requires()`` returned here, and its unique id is computed now,
    so plan, run, render and schedule -- and luigi's own workers in the inline backend -- see the
    graph the command line means. Pinned tasks leave luigi's instance cache, so a later task built
    elsewhere in this process with the same parameters is resolved afresh.
    """
    from gokart_k8s.steps import luigi_lookups_memoised

    with luigi_lookups_memoised():
        _pin_graph(root, luigi_args)


def _pin_graph(root: Any, luigi_args: Sequence[str]) -> None:
    import luigi.task
    from luigi.parameter import MissingParameterException
    from luigi.task_register import Register

    from gokart_k8s.steps import unique_id_of

    seen: dict[int, Any] = {}
    stack = [root]
    while stack:
        task = stack.pop()
        if id(task) in seen:
            continue
        seen[id(task)] = task
        try:
            required = task.requires()
        except MissingParameterException:
            raise  # one clear error (task_from_argv), naming the parameter
        except Exception:  # left unpinned: the plan's graph walk reports it with the others
            continue
        task.requires = _Pinned(required)
        setattr(task, LUIGI_ARGS_ATTR, tuple(luigi_args))
        stack.extend(luigi.task.flatten(required))
    # Leaves first (the reverse of the order found): gokart's make_unique_id() recurses through
    # requires() and caches on each task, so a dependency's id is already known when its dependent
    # hashes it. Root first would recurse the whole depth at once (a 1,000-step chain passes
    # Python's recursion limit, and every failed attempt is redone one level lower).
    for task in reversed(list(seen.values())):
        try:
            unique_id_of(task)  # gokart caches it on the task (make_unique_id hashes requires())
        except MissingParameterException:
            raise
        except Exception:  # a dependency that cannot be made: the plan reports it with the others
            continue
    cache = getattr(Register, "_Register__instance_cache", None)
    if isinstance(cache, dict):
        for key in [k for k, v in cache.items() if id(v) in seen]:
            del cache[key]


def luigi_args_of(task: Any) -> tuple[str, ...]:
    """The class-level command-line arguments ``task`` was resolved under (empty if none)."""
    return tuple(getattr(task, LUIGI_ARGS_ATTR, ()))


@contextlib.contextmanager
def command_line(family: str, luigi_args: Sequence[str]) -> Iterator[None]:
    """Open luigi's command-line context with ``luigi_args``, as ``luigi`` does around a run.

    Used by the in-pod command and the inline backend, so tasks built later (a pod's ``requires()``,
    dynamic dependencies) see the class-level parameters. Does nothing without arguments.
    """
    if not luigi_args:
        yield
        return
    from luigi.cmdline_parser import CmdlineParser

    # What CmdlineParser.global_instance does, with one parse per set of arguments: a plan opens the
    # context once per step, and luigi's parser knows every parameter of every registered class.
    # Class-level arguments mean the same whichever task is named first.
    key = tuple(luigi_args)
    parser = _parsers.get(key)
    if parser is None:
        parser = _parsers[key] = CmdlineParser([family, *luigi_args])
    previous = CmdlineParser._instance
    CmdlineParser._instance = parser
    try:
        yield
    finally:
        CmdlineParser._instance = previous


_parsers: dict[tuple[str, ...], Any] = {}
