"""A large plan says what it is doing on a terminal, and nothing anywhere else."""

from __future__ import annotations

import io
from typing import Any

from gokart_k8s.plan import make_plan
from gokart_k8s.progress import WorkNotice
from gokart_k8s.settings import load_settings
from tests.core.pipelines import Star


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_plan_reports_each_stage_with_the_steps_found_so_far(tmp_path: Any) -> None:
    heard: list[tuple[str, int]] = []
    make_plan(
        [Star(n=1200)],
        load_settings(),
        backend="local-cluster",
        workspace=str(tmp_path) + "/",
        on_progress=lambda what, steps: heard.append((what, steps)),
    )
    assert heard == [
        ("resolving the graph", 500),
        ("resolving the graph", 1000),
        ("checking the cache", 1201),
        ("checking each step's parameters survive the trip to a pod", 1201),
    ]


def test_the_notice_shows_only_on_a_terminal_only_after_a_second_and_is_erased_at_the_end() -> None:
    clock = Clock()
    screen = Terminal()
    with WorkNotice(screen, clock=clock, every_seconds=3600) as notice:
        notice("resolving the graph", 500)
        assert screen.getvalue() == ""  # a quick plan prints nothing more than before
        clock.now += 1.5
        notice("resolving the graph", 1000)
        assert screen.getvalue().endswith("planning: resolving the graph… 1,000 steps · 00:01")
    assert screen.getvalue().endswith("\r\033[K")  # the table starts on a clean line

    log = io.StringIO()  # not a terminal: a log or CI
    clock.now += 10
    with WorkNotice(log, clock=lambda: clock.now) as notice:
        clock.now += 5
        notice("checking the cache", 10)
    assert log.getvalue() == ""
