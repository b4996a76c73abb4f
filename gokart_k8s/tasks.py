"""Find the pipeline's root task from a luigi-style command line.

``TASK [luigi params]`` is named exactly as luigi's own command line names it:
``pkg.module.TaskName --param value`` or ``--module pkg.module TaskName --param value``. Parsing is
luigi's (``CmdlineParser``), so parameters parse exactly as they would under ``luigi`` or
``gokart.run``; this module only turns luigi's exits and tracebacks into clear errors.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from collections.abc import Sequence
from typing import Any

from gokart_k8s.errors import ConfigurationError, TaskNotFoundError


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


def task_from_argv(argv: Sequence[str]) -> Any:
    """Build the root task object from ``TASK [luigi params]``."""
    from luigi.cmdline_parser import CmdlineParser
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
            return cp.get_task_obj()
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
