"""Progress of a run: a live line on a terminal, plain lines elsewhere, a summary at the end.

Every backend reports the same step states through :meth:`ProgressDisplay.step_state`, so the
inline run, the rehearsal and a cluster run look alike.

States: ``cached`` (already in the cache, not run), ``pending``, ``submitted``, ``running``,
``evicted`` (will resume), ``succeeded``, ``failed``, ``skipped`` (a requirement failed),
``interrupted`` (in flight when the run was stopped with Ctrl-C or SIGTERM).

The live line is cut to the terminal's width, queried again at every redraw (so it follows a
resize): a line longer than the terminal wraps, and ``\r`` then returns only to the start of its
last row, so every redraw would leave a copy of the rest on screen.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Protocol

from gokart_k8s.steps import StepSpec


class ProgressSink(Protocol):
    def step_state(self, spec: StepSpec, state: str, detail: str = "") -> None: ...


DONE_STATES = frozenset({"cached", "succeeded", "failed", "skipped", "interrupted"})
#: States that stay on a terminal as a line of their own, above the live status line: every change
#: of a step but the uneventful ones (``pending``, ``submitted`` -- the next line says ``running``).
_NOTABLE = frozenset({"cached", "running", "evicted", "succeeded", "failed", "skipped", "interrupted"})
#: States of a step that is (or was, when the run stopped) on its way.
_IN_FLIGHT = frozenset({"running", "submitted", "evicted"})


def first_line(text: str) -> str:
    """The first line of a (possibly multi-line) detail: what fits in a table cell or a status line."""
    lines = text.strip().splitlines()
    return lines[0] + (" …" if len(lines) > 1 else "") if lines else ""


def columns(stream: IO[str]) -> int:
    """Columns of the terminal ``stream`` writes to (asked each time: the terminal may be resized)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size().columns


def fitted(line: str, width: int) -> str:
    """``line`` cut to one column short of ``width`` (a line filling the last column makes some terminals wrap)."""
    room = max(width - 1, 10)
    return line if len(line) <= room else line[: room - 1] + "…"


class Redrawer:
    """A daemon thread that calls ``redraw`` under ``lock`` every ``every_seconds`` until :meth:`stop`.

    What keeps a live line moving (its clock) while the work it reports on is silent.
    """

    def __init__(self, name: str, every_seconds: float, lock: threading.Lock, redraw: Callable[[], None]) -> None:
        self._every = every_seconds
        self._lock = lock
        self._redraw = redraw
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Redrawer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with self._lock:
                self._redraw()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class WorkNotice:
    """A live line for long work before there are steps to show: planning a large graph.

    Used as the ``on_progress`` callback of :func:`gokart_k8s.plan.make_plan` (what is being done,
    with the steps found so far). On a terminal only, and only once the work has taken
    ``after_seconds``, so a quick plan prints nothing more than before; redrawn every
    ``every_seconds`` (the elapsed time shows it is alive during a long stage), and erased when
    the work ends, so what follows starts on a clean line. Elsewhere (a log, CI) it writes nothing.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        live: bool | None = None,
        after_seconds: float = 1.0,
        every_seconds: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._after = after_seconds
        self._every = every_seconds
        self._clock = clock
        self._started = clock()
        self._what = "importing the pipeline"
        self._steps = 0
        self._drawn = False
        self._last = float("-inf")
        self._lock = threading.Lock()
        self._ticker: Redrawer | None = None

    def __call__(self, what: str, steps: int) -> None:
        with self._lock:
            changed = what != self._what
            self._what, self._steps = what, steps
            if changed or self._clock() - self._last >= self._every:
                self.draw()

    def line(self) -> str:
        seconds = int(self._clock() - self._started)
        found = f" {self._steps:,} steps" if self._steps else ""
        return f"planning: {self._what}…{found} · {seconds // 60:02d}:{seconds % 60:02d}"

    def draw(self) -> None:
        if not self.live or self._clock() - self._started < self._after:
            return
        self.stream.write("\r\033[K" + fitted(self.line(), columns(self.stream)))
        self.stream.flush()
        self._drawn = True
        self._last = self._clock()

    def __enter__(self) -> WorkNotice:
        if self.live:
            self._ticker = Redrawer("gokart-k8s-planning", self._every, self._lock, self.draw).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        with self._lock:
            if self._drawn:
                self.stream.write("\r\033[K")
                self.stream.flush()


#: A detail longer than this, the same as the last one of its step family and state, is not
#: repeated on a plain (non-terminal) line; a short one (a Job's name) always is.
_REPEAT_AFTER = 40

#: Past this many steps the run's summary counts alike steps on one row (as ``plan.TABLE_STEPS``).
SUMMARY_STEPS = 60


def _time_range(times: list[float | None]) -> str:
    """``1.2s``, or ``0.3-1.2s`` for a group, or ``-`` when no step of it started."""
    known = [t for t in times if t is not None]
    if not known:
        return "-"
    low, high = min(known), max(known)
    return f"{low:.1f}s" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}s"


@dataclass
class StepProgress:
    spec: StepSpec
    state: str = "pending"
    detail: str = ""
    started: float | None = None
    finished: float | None = None
    evictions: int = 0
    history: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.monotonic()) - self.started


class ProgressDisplay:
    """Collects step states; draws them live on a TTY and as plain lines otherwise."""

    def __init__(self, specs: Iterable[StepSpec], *, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.steps: dict[str, StepProgress] = {s.unique_id: StepProgress(s) for s in specs}
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._ticker: Redrawer | None = None
        #: Also told every step state (the run record, gokart_k8s.history).
        self.observers: list[ProgressSink] = []
        #: Lines the summary ends with (the run report's path).
        self.notes: list[str] = []
        self._last_detail: dict[tuple[str, str], str] = {}

    # -- the sink every backend calls -------------------------------------------------------
    def step_state(self, spec: StepSpec, state: str, detail: str = "") -> None:
        with self._lock:
            entry = self.steps.setdefault(spec.unique_id, StepProgress(spec))
            if state == entry.state and detail == entry.detail:
                return
            now = time.monotonic()
            if state in ("running", "submitted") and entry.started is None:
                entry.started = now
            if state == "evicted":
                entry.evictions += 1
            if state in DONE_STATES:
                entry.finished = now
            entry.state = state
            entry.detail = detail
            entry.history.append(state)
            for observer in self.observers:
                observer.step_state(spec, state, detail)
            if self.live:
                if state in _NOTABLE:
                    # Kept on screen above the live line: what happened to a step, not just where it is.
                    extra = f"  {first_line(detail)}" if detail else ""
                    self.stream.write(f"\r\033[K{self._elapsed():>7}  {state:<9}  {spec.family}{extra}\n")
                self._draw(force=True)
            else:
                extra = f"  {self._said(spec.family, state, first_line(detail))}" if detail else ""
                self.stream.write(f"{self._elapsed():>7}  {state:<9}  {spec.family}{extra}\n")
                self.stream.flush()

    def _said(self, family: str, state: str, detail: str) -> str:
        """``detail``, or a pointer to the line above when the last step of this family in this state
        said the same: 200 spokes waiting for a node do not repeat one 300-character reason 200 times."""
        key = (family, state)
        if self._last_detail.get(key) == detail and len(detail) > _REPEAT_AFTER:
            return f"(the same as for the {family} above)"
        self._last_detail[key] = detail
        return detail

    def log(self, text: str) -> None:
        """A line of output from a step (pod logs), kept apart from the status line."""
        with self._lock:
            if self.live:
                self.stream.write("\r\033[K")
            self.stream.write(text.rstrip("\n") + "\n")
            if self.live:
                self._draw(force=True)
            self.stream.flush()

    # -- drawing ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {"done": 0, "running": 0, "pending": 0, "failed": 0, "skipped": 0, "interrupted": 0}
        for entry in self.steps.values():
            if entry.state in ("cached", "succeeded"):
                out["done"] += 1
            elif entry.state in ("failed", "skipped", "interrupted"):
                out[entry.state] += 1
            elif entry.state in _IN_FLIGHT:
                out["running"] += 1
            else:
                out["pending"] += 1
        return out

    def mark_interrupted(self) -> None:
        """The run was stopped (Ctrl-C, SIGTERM): steps on their way become ``interrupted``."""
        for entry in list(self.steps.values()):
            if entry.state in _IN_FLIGHT:
                self.step_state(entry.spec, "interrupted")

    @property
    def interrupted(self) -> bool:
        return any(e.state == "interrupted" for e in self.steps.values())

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def status_line(self) -> str:
        c = self.counts()
        total = len(self.steps)
        width = 20
        filled = int(width * c["done"] / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        running = [e.spec.family for e in self.steps.values() if e.state in ("running", "submitted", "evicted")]
        names = ", ".join(running[:3]) + ("…" if len(running) > 3 else "")
        failed = f" · {c['failed']} failed" if c["failed"] else ""
        skipped = f" · {c['skipped']} skipped" if c["skipped"] else ""
        return (
            f"[{bar}] {c['done']}/{total} done · {c['running']} running · {c['pending']} pending{failed}{skipped}"
            f" · {self._elapsed()}" + (f" · {names}" if names else "")
        )

    def width(self) -> int:
        """Columns of the terminal the live line is drawn on, asked again at every redraw."""
        return columns(self.stream)

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        line = fitted(self.status_line(), self.width())
        self.stream.write("\r\033[K" + line)
        self.stream.flush()

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._ticker = Redrawer("gokart-k8s-progress", 1.0, self._lock, lambda: self._draw(force=True)).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self.live:
            with self._lock:
                self._draw(force=True)
                self.stream.write("\n")
                self.stream.flush()

    # -- summary ----------------------------------------------------------------------------
    def summary(self, outputs: Iterable[str] = (), *, every_step_up_to: int | None = SUMMARY_STEPS) -> str:
        """The table of steps, one line of counts, and where the root's outputs are.

        Past ``every_step_up_to`` steps (None: never), steps alike in family, state, evictions and
        detail share one row with their count and the range of their times, as the plan's table
        does: 10,000 rows of ``Leaf succeeded`` show nothing a reader can take in. A failed step
        keeps its own row whenever its detail is its own. The run report lists every step.
        """
        cells: list[tuple[tuple[str, str, str, str], float | None]] = [
            ((e.spec.family, e.state, str(e.evictions), first_line(e.detail)), e.seconds) for e in self.steps.values()
        ]
        grouped = every_step_up_to is not None and len(cells) > every_step_up_to
        rows = [("STEP", "STATE", "TIME", "EVICTIONS", "DETAIL")]
        if grouped:
            kinds: dict[tuple[str, str, str, str], list[float | None]] = {}
            for kind, secs in cells:
                kinds.setdefault(kind, []).append(secs)
            for (family, state, evictions, detail), times in kinds.items():
                name = family if len(times) == 1 else f"{family} x{len(times)}"
                rows.append((name, state, _time_range(times), evictions, detail))
        else:
            for (family, state, evictions, detail), secs in cells:
                rows.append((family, state, _time_range([secs]), evictions, detail))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
        c = self.counts()
        others = "".join(f", {c[k]} {k}" for k in ("skipped", "interrupted") if c[k])
        lines.append(
            f"{c['done']}/{len(self.steps)} steps done, {c['failed']} failed{others}, "
            f"in {time.monotonic() - self.started:.1f}s" + (" (interrupted)" if c["interrupted"] else "")
        )
        if grouped:
            lines.append(
                f"(alike steps counted on one row: {len(rows) - 1} rows for {len(cells)} steps; "
                "the run report lists every step)"
            )
        lines.extend(self.notes)
        paths = list(outputs)
        if paths:
            lines.append("output: " + paths[0] if len(paths) == 1 else "outputs:")
            lines += [f"  {p}" for p in paths] if len(paths) > 1 else []
        return "\n".join(line.rstrip() for line in lines)
