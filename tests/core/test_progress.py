"""Progress: a live status line on a terminal, plain lines elsewhere, and a summary."""

from __future__ import annotations

import io

from gokart_k8s.eviction import Eviction
from gokart_k8s.progress import ProgressDisplay
from gokart_k8s.resources import ResourceClass
from gokart_k8s.steps import StepSpec


def spec(family: str) -> StepSpec:
    return StepSpec(
        family=family,
        module="m",
        unique_id=family.lower() * 4,
        task_id=family,
        params={},
        resource_class=ResourceClass(name="small"),
        eviction=Eviction.TOLERATE,
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_status_line_is_redrawn_with_done_running_pending_and_elapsed_time() -> None:
    a, b, c = spec("Load"), spec("Train"), spec("Report")
    out = Terminal()
    with ProgressDisplay([a, b, c], stream=out) as progress:
        progress.step_state(a, "cached")
        progress.step_state(b, "running")
        line = progress.status_line()
        progress.step_state(b, "succeeded")
    assert "1/3 done · 1 running · 1 pending" in line and "Train" in line
    assert "\r\033[K[" in out.getvalue()  # redrawn in place, not printed line by line
    assert "\n" not in out.getvalue().rstrip("\n")


def test_on_a_terminal_evictions_and_failures_stay_on_screen_above_the_live_line() -> None:
    a, b = spec("Train"), spec("Report")
    out = Terminal()
    with ProgressDisplay([a, b], stream=out) as progress:
        progress.step_state(a, "running")
        progress.step_state(a, "evicted", "TerminationByKubelet")
        progress.step_state(a, "succeeded")
        progress.step_state(b, "failed", "RuntimeError: boom")
    lines = out.getvalue().split("\n")
    kept = [line.split("\033[K")[-1] for line in lines if "evicted" in line or "failed  " in line]
    assert any("evicted    Train  TerminationByKubelet" in line for line in kept)
    assert any("failed     Report  RuntimeError: boom" in line for line in kept)


def test_off_a_terminal_each_change_is_one_plain_line() -> None:
    a = spec("Load")
    out = io.StringIO()
    with ProgressDisplay([a], stream=out) as progress:
        progress.step_state(a, "running")
        progress.step_state(a, "evicted", "TerminationByKubelet")
        progress.step_state(a, "succeeded")
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["running", "evicted", "succeeded"]
    assert "\033" not in out.getvalue()


def test_the_summary_lists_every_step_with_its_state_time_and_evictions() -> None:
    a, b = spec("Load"), spec("Train")
    progress = ProgressDisplay([a, b], stream=io.StringIO())
    progress.step_state(a, "running")
    progress.step_state(a, "evicted")
    progress.step_state(a, "succeeded")
    progress.step_state(b, "failed", "RuntimeError: boom")
    summary = progress.summary().splitlines()
    assert summary[0].split() == ["STEP", "STATE", "TIME", "EVICTIONS", "DETAIL"]
    assert summary[1].split()[:2] == ["Load", "succeeded"] and summary[1].split()[3] == "1"
    assert "RuntimeError: boom" in summary[2]
    assert summary[-1].startswith("1/2 steps done, 1 failed")
