"""Step logs: what a step shows of itself -- by default its own output and nothing else.

A step's log is read by a person watching a run: each line should be the step's own ``print``
or ``logging`` output. luigi wraps every run in ~15 INFO lines ("Informed scheduler that task ...
has status PENDING", "Running Worker with 1 processes") and a 7-line "Luigi Execution Summary",
and its worker logs every exception with a full traceback, so an ordinary eviction (SIGTERM, which
the step turns into :class:`~gokart_k8s.termination.StepTerminated`) looks like a crash.

So, by default, in a step's pod (``gokart-k8s step``) and around the inline backend:

- the step's own logging (the root logger, INFO and up) goes to the step's stream;
- luigi's and gokart's own loggers are silent (``FRAMEWORK_LOGGERS``);
- a failure is shown once: its traceback (without luigi's frames around the task's ``run()``),
  then one verdict line naming the exception (:func:`failure_lines`);
- an eviction is one line: the SIGTERM warning of :mod:`gokart_k8s.termination`.

``gokart-k8s run --verbose`` (``GOKART_K8S_VERBOSE=1`` in the pod) shows everything luigi says.
luigi would otherwise add its own handler to ``luigi-interface`` on its first ``build`` in a process
(``InterfaceLogging.setup``, once per process; https://luigi.readthedocs.io/en/stable/logging.html);
within :func:`step_logging` it is told logging is configured, so the handler here is the only one.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

#: Set to ``1`` in a step's pod by ``gokart-k8s run --verbose``: luigi's own log lines stay in.
VERBOSE_ENV = "GOKART_K8S_VERBOSE"

#: Loggers of the frameworks around a step; silent unless verbose.
FRAMEWORK_LOGGERS = ("luigi", "luigi-interface", "gokart")

#: How a line of the step's own logging looks.
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

_FRAMEWORK_DIRS = tuple(
    str(Path(module.__file__).resolve().parent) + os.sep
    for module in (__import__("luigi"), __import__("gokart"))
    if module.__file__
)


def verbose_from_env(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(VERBOSE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes")


@contextmanager
def step_logging(stream: IO[str], *, verbose: bool) -> Iterator[None]:
    """Within the block, the step's logging goes to ``stream``; luigi and gokart speak only if ``verbose``.

    Every logger touched is restored on exit (the inline backend runs in the user's process).
    """
    from luigi.setup_logging import InterfaceLogging

    configured = InterfaceLogging._configured
    InterfaceLogging._configured = True  # luigi.build must not add its own handler (see the module docstring)
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    saved_root = root.level
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).disabled) for name in FRAMEWORK_LOGGERS}
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    for name in FRAMEWORK_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO if verbose else logging.CRITICAL + 1)
    try:
        yield
    finally:
        InterfaceLogging._configured = configured
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for name, (level, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.disabled = disabled


def is_eviction(exc: BaseException) -> bool:
    from gokart_k8s.termination import StepTerminated

    return isinstance(exc, StepTerminated)


def verdict(exc: BaseException) -> str:
    """The one line that says why a step failed: the exception, as Python names it."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def failure_lines(exc: BaseException) -> list[str]:
    """The traceback of a step's exception, once, starting at the first frame outside luigi and gokart."""
    summary = traceback.extract_tb(exc.__traceback__)
    frames = list(summary)
    while frames and frames[0].filename.startswith(_FRAMEWORK_DIRS):
        frames = frames[1:]
    lines = ["Traceback (most recent call last):"]
    lines += "".join(traceback.format_list(frames or list(summary))).rstrip("\n").splitlines()
    lines += "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n").splitlines()
    return lines


class LineWriter:
    """A text stream that hands each complete line to ``sink`` (for step output shown with a prefix)."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self.sink(line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            line, self._buffer = self._buffer, ""
            self.sink(line)

    def isatty(self) -> bool:
        return False
