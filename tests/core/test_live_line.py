"""The live progress line fits the terminal, follows a resize, and leaves no copies when redrawn.

Checked in a real pseudo-terminal of 40 columns (the ``pty`` module) and replayed on a small
terminal model: a line longer than the terminal wraps, and ``\\r`` only returns to the start of its
last row, so each redraw of a too-long line would leave its first rows behind.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

from gokart_k8s.progress import ProgressDisplay
from tests.core.pipelines import step_spec as spec

REPO = Path(__file__).resolve().parents[2]
STATUS = re.compile(r"\d+/\d+ done")


def set_columns(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def screen(data: str, width: int) -> list[str]:
    """What a terminal of ``width`` columns shows after ``data`` (wrapping, \\r, \\n, erase-line)."""
    rows, col, i = [""], 0, 0
    while i < len(data):
        if data.startswith("\033[K", i):
            rows[-1] = rows[-1][:col]
            i += 3
            continue
        ch, i = data[i], i + 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            rows.append("")
            col = 0
        else:
            if col >= width:  # the terminal wraps: the rest goes on a new row
                rows.append("")
                col = 0
            row = rows[-1].ljust(col)
            rows[-1] = row[:col] + ch + row[col + 1 :]
            col += 1
    return rows


class Reader(threading.Thread):
    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd, self.chunks = fd, []

    def run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            if not data:
                return
            self.chunks.append(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


def test_in_a_40_column_terminal_redraws_leave_one_status_line_and_follow_a_resize() -> None:
    master, slave = pty.openpty()
    set_columns(slave, 40)
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # the model reads \n as a new row at column 0: keep it as written
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    reader = Reader(master)
    reader.start()
    stream = os.fdopen(slave, "w", encoding="utf-8", closefd=False)
    steps = [spec("LoadTheWholeDataSet"), spec("BuildAllTheFeatures"), spec("TrainTheBigModel")]
    widths: list[int] = []
    progress = ProgressDisplay(steps, stream=stream)
    assert progress.live
    with progress:
        for step in steps:
            progress.step_state(step, "submitted")  # no line of its own: only the live line redraws
        for _ in range(5):
            progress._draw(force=True)
        widths.append(progress.width())
        set_columns(slave, 60)  # the terminal is resized
        progress._draw(force=True)
        widths.append(progress.width())
        drawn_at_60 = progress.status_line()
    stream.flush()
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    output = reader.text()
    assert widths == [40, 60]
    _, _, after_resize = output.rpartition("\r\033[K")[0].rpartition("\r\033[K")
    assert len(drawn_at_60) > 60 and len(after_resize) <= 59 and len(after_resize) > 40
    rows = screen(output.split("\r\033[K" + after_resize)[0], 40)
    status_rows = [row for row in rows if STATUS.search(row)]
    assert len(status_rows) == 1, rows
    assert all(len(row) <= 40 for row in rows)


def test_the_cli_run_in_a_40_column_terminal_shows_one_status_line(tmp_path: Path) -> None:
    (tmp_path / "luigi.cfg").write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path}/ws/\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")}
    master, slave = pty.openpty()
    set_columns(slave, 40)
    command = [sys.executable, "-m", "gokart_k8s", "run", "tests.core.words.TopWords"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    reader = Reader(master)
    reader.start()
    assert proc.wait(timeout=180) == 0
    reader.join(timeout=30)
    os.close(master)
    rows = screen(reader.text().replace("\r\n", "\n"), 40)
    assert len([row for row in rows if STATUS.search(row)]) == 1, rows
    assert any(row.startswith("3/3 steps done") for row in rows)
