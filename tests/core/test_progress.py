"""Progress: a live status line on a terminal, plain lines elsewhere, and a summary."""

from __future__ import annotations

import io

from gokart_k8s.progress import ProgressDisplay
from tests.core.pipelines import step_spec as spec


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_status_line_is_redrawn_below_one_line_per_state_change() -> None:
    a, b, c = spec("Load"), spec("Train"), spec("Report")
    out = Terminal()
    with ProgressDisplay([a, b, c], stream=out) as progress:
        progress.step_state(a, "cached")
        progress.step_state(b, "running")
        line = progress.status_line()
        progress.step_state(b, "succeeded")
    assert "1/3 done · 1 running · 1 pending" in line and "Train" in line
    assert "\r\033[K[" in out.getvalue()  # redrawn in place, not printed line by line
    # Above it, one line per change of a step (nothing for the uneventful 'pending').
    rows = [row.split("\033[K")[-1] for row in out.getvalue().split("\n")]
    kept = [row.split() for row in rows if row and "done ·" not in row]
    assert [row[1:3] for row in kept] == [["cached", "Load"], ["running", "Train"], ["succeeded", "Train"]]


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


def test_skipped_steps_are_counted_as_skipped_not_failed() -> None:
    a, b, c = spec("Parse"), spec("Train"), spec("Report")
    progress = ProgressDisplay([a, b, c], stream=io.StringIO())
    progress.step_state(a, "failed", "RuntimeError: boom")
    progress.step_state(b, "skipped", "a requirement failed")
    progress.step_state(c, "skipped", "a requirement failed")
    assert progress.summary().splitlines()[-1].startswith("0/3 steps done, 1 failed, 2 skipped, in ")
    assert "1 failed · 2 skipped" in progress.status_line()


def test_a_multi_line_detail_keeps_the_table_one_row_per_step() -> None:
    a, b = spec("Parse"), spec("Report")
    progress = ProgressDisplay([a, b], stream=io.StringIO())
    progress.step_state(a, "failed", "Step Parse failed: ValueError: bad row\nFix the error in the step's code.")
    progress.step_state(b, "skipped", "a requirement failed")
    summary = progress.summary().splitlines()
    assert len(summary) == 4
    assert summary[1].startswith("Parse ") and summary[1].endswith("Step Parse failed: ValueError: bad row …")
    assert summary[2].startswith("Report ")


def test_an_interrupted_run_says_interrupted_and_where_the_outputs_are_when_done() -> None:
    a, b = spec("Load"), spec("Train")
    progress = ProgressDisplay([a, b], stream=io.StringIO())
    progress.step_state(a, "succeeded")
    progress.step_state(b, "running")
    progress.mark_interrupted()
    lines = progress.summary().splitlines()
    assert lines[2].split()[:2] == ["Train", "interrupted"]
    assert lines[-1].startswith("1/2 steps done, 0 failed, 1 interrupted") and lines[-1].endswith("(interrupted)")

    done = ProgressDisplay([a], stream=io.StringIO())
    done.step_state(a, "succeeded")
    assert done.summary(outputs=["gs://bucket/p/Load_1.pkl"]).splitlines()[-1] == "output: gs://bucket/p/Load_1.pkl"


def test_an_attempt_deleted_before_it_was_scheduled_is_said_to_have_never_run_not_to_have_failed() -> None:
    from gokart_k8s.cluster.outcomes import Attempt
    from gokart_k8s.runner import attempt_verdict

    def attempt(**changes: object) -> Attempt:
        base: dict[str, object] = dict(
            pod="train-1",
            node=None,
            pool="spot-large",
            capacity_type="spot",
            submitted=1.0,
            started=None,
            ended=2.0,
            outcome="failed",
            reason="Error",
            exit_code=None,
        )
        return Attempt(**{**base, **changes})  # type: ignore[arg-type]

    assert attempt_verdict(attempt()) == "never ran (deleted before it was scheduled on a node)"
    # Anything the cluster said of it is kept: an unschedulable pod, a pod that ran, one still waiting.
    assert attempt_verdict(attempt(reason="Unschedulable")) == "failed (Unschedulable)"
    assert attempt_verdict(attempt(node="n1", started=1.5, exit_code=1)) == "failed (Error, exit 1)"
    assert attempt_verdict(attempt(outcome="pending", reason="")) == "pending"
    assert attempt_verdict(
        attempt(node="n1", started=1.5, outcome="evicted", reason="TerminationByKubelet", exit_code=143)
    ) == ("evicted (TerminationByKubelet, exit 143)")


def test_a_large_runs_summary_counts_alike_steps_on_one_row_with_their_times_range_and_keeps_failures() -> None:
    import dataclasses

    specs = [dataclasses.replace(spec("Leaf"), unique_id=f"leaf{i:028d}") for i in range(70)]
    progress = ProgressDisplay([spec("Source"), *specs], stream=io.StringIO())
    for s in specs[:68]:
        progress.step_state(s, "running")
        progress.step_state(s, "succeeded")
    progress.step_state(specs[68], "failed", "RuntimeError: row 68")
    progress.step_state(specs[69], "failed", "RuntimeError: row 69")
    lines = progress.summary().splitlines()
    rows = [line.split() for line in lines[1:-2]]
    assert [r[:2] for r in rows] == [["Source", "pending"], ["Leaf", "x68"], ["Leaf", "failed"], ["Leaf", "failed"]]
    assert rows[1][2] == "succeeded" and rows[1][3].endswith("s")
    assert [line for line in lines if "RuntimeError" in line][1].endswith("RuntimeError: row 69")
    assert lines[-2].startswith("68/71 steps done, 2 failed")
    assert lines[-1] == "(alike steps counted on one row: 4 rows for 71 steps; the run report lists every step)"
    # Below the threshold (or with every_step_up_to=None) every step keeps its own row.
    assert len(progress.summary(every_step_up_to=None).splitlines()) == 1 + 71 + 1


def test_a_plain_log_says_a_long_reason_shared_by_steps_of_one_family_once() -> None:
    import dataclasses

    out = io.StringIO()
    a, b = (dataclasses.replace(spec("Leaf"), unique_id=f"leaf{i:028d}") for i in range(2))
    c = spec("Train")
    progress = ProgressDisplay([a, b, c], stream=out, live=False)
    why = "Unschedulable: Step Leaf cannot be scheduled: no node has room for requests [cpu=1, memory=4Gi]"
    progress.step_state(a, "pending", why)
    progress.step_state(b, "pending", why)
    progress.step_state(c, "pending", why.replace("Leaf", "Train"))
    progress.step_state(a, "running", "leaf-0")
    progress.step_state(b, "running", "leaf-0")  # short: a Job's name is always said
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(why)
    assert lines[1].endswith("pending    Leaf  (the same as for the Leaf above)")
    assert lines[2].endswith(why.replace("Leaf", "Train"))
    assert lines[3].endswith("leaf-0") and lines[4].endswith("leaf-0")
