"""The step supervisor relays its worker's output and leaves the log in the termination message.

The supervisor runs for real (``supervise`` in a child interpreter, its worker a real process); the
message goes to a file named by GOKART_K8S_TERMINATION_MESSAGE_PATH, as the kubelet would read it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from gokart_k8s.conventions import EXIT_EVICTED
from gokart_k8s.supervision.termination_log import (
    COMPLETE,
    MESSAGE_LIMIT,
    MESSAGE_PATH_ENV,
    TAIL,
    message_of,
    message_path,
    read_message,
)

REPO = Path(__file__).resolve().parents[2]
GENEROUS = 120.0


def supervisor(worker: list[str], message: Path, budget: float = 30.0) -> subprocess.Popen[bytes]:
    """``supervise(worker)`` in a fresh interpreter of its own session (so its leftovers can be killed)."""
    code = textwrap.dedent(
        f"""
        import sys
        from gokart_k8s.supervision.step import supervise
        sys.exit(supervise({worker!r}, {budget!r}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), MESSAGE_PATH_ENV: str(message)}
    env.pop("PYTHONUNBUFFERED", None)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=GENEROUS)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the test left behind
        except ProcessLookupError:
            pass
    return proc.returncode, out.decode(), err.decode()


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_a_short_log_of_stdout_and_stderr_is_the_whole_message_and_the_exit_code_is_kept(tmp_path: Path) -> None:
    message = tmp_path / "message"
    worker = python(
        """
        import sys
        print("to stdout", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        print("stdout again", flush=True)
        sys.exit(3)
        """
    )
    code, out, err = finish(supervisor(worker, message))
    assert code == 3
    assert out == "to stdout\nstdout again\n" and err == "to stderr\n"  # each stream stays itself
    read = read_message(message.read_text())
    assert message.read_text().startswith(COMPLETE) and read is not None and read.complete
    # Both streams, each in its own order (between two pipes, arrival order is all there is).
    assert sorted(read.lines) == ["stdout again", "to stderr", "to stdout"]
    assert [line for line in read.lines if "stdout" in line] == ["to stdout", "stdout again"]


def test_a_long_log_is_relayed_whole_and_its_message_is_the_last_whole_lines(tmp_path: Path) -> None:
    message = tmp_path / "message"
    worker = python(
        """
        import sys
        for i in range(3000):
            print(f"line {i}")
            if i % 500 == 0:
                print(f"warning {i}", file=sys.stderr)
        """
    )
    code, out, err = finish(supervisor(worker, message))
    assert code == 0
    assert out.splitlines() == [f"line {i}" for i in range(3000)]  # lossless, in order
    assert err.splitlines() == [f"warning {i}" for i in range(0, 3000, 500)]
    data = message.read_bytes()
    assert len(data) <= MESSAGE_LIMIT and data.startswith(TAIL.encode())
    read = read_message(data.decode())
    assert read is not None and not read.complete
    last = int(read.lines[0].split()[1])  # the first line is a whole one
    assert read.lines == [f"line {i}" for i in range(last, 3000)]


def test_a_grandchild_holding_the_pipes_does_not_hold_the_supervisor(tmp_path: Path) -> None:
    message = tmp_path / "message"
    # The worker leaves a process that inherited its stdout and stderr and runs for ten minutes.
    worker = ["sh", "-c", "echo before; sleep 600 & echo after"]
    code, out, _ = finish(supervisor(worker, message))
    assert code == 0
    assert out == "before\nafter\n"
    assert message.read_text() == COMPLETE + "before\nafter\n"


def test_the_budget_spent_still_leaves_the_message_with_the_supervisors_own_words(tmp_path: Path) -> None:
    message = tmp_path / "message"
    worker = python(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    proc = supervisor(worker, message, budget=1.0)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == EXIT_EVICTED
    assert "termination budget of 1 s is spent" in err
    text = message.read_text()
    assert text.startswith(COMPLETE + "ready\n") and "termination budget of 1 s is spent" in text


def test_the_message_is_whole_up_to_the_limit_and_a_tail_of_whole_lines_beyond() -> None:
    room = MESSAGE_LIMIT - len(COMPLETE)
    exact = b"x" * (room - 1) + b"\n"
    assert message_of(exact, len(exact)) == COMPLETE.encode() + exact
    over = b"first\n" + exact  # one byte too many: the end, from the first whole line that fits
    assert message_of(over, len(over)) == TAIL.encode() + exact
    # The kept bytes start inside a line (the log was longer): that partial line is left out.
    assert message_of(b"5678\nnext\n", 100) == TAIL.encode() + b"next\n"
    one_long_line = b"z" * 10_000
    assert message_of(one_long_line[-MESSAGE_LIMIT:], len(one_long_line)) == TAIL.encode() + b"z" * (
        MESSAGE_LIMIT - len(TAIL)
    )
    lines = b"".join(f"{i:04d}\n".encode() for i in range(2000))
    cut = message_of(lines[-MESSAGE_LIMIT:], len(lines))
    read = read_message(cut.decode())
    assert read is not None and not read.complete
    assert read.lines == [f"{i:04d}" for i in range(2000 - len(read.lines), 2000)]
    assert read_message("some FallbackToLogsOnError text") is None and read_message(None) is None


def test_a_file_in_dev_is_written_only_when_it_exists(tmp_path: Path) -> None:
    kubelet_mounted = "/dev/termination-log" if os.path.exists("/dev/termination-log") else None
    assert message_path({}) == kubelet_mounted
    assert message_path({MESSAGE_PATH_ENV: "/dev/termination-log"}) == kubelet_mounted
    assert message_path({MESSAGE_PATH_ENV: "/dev/gokart-k8s-no-such-message"}) is None
    assert message_path({MESSAGE_PATH_ENV: str(tmp_path / "m")}) == str(tmp_path / "m")
