"""The report of the example's chaos rehearsal, opened in headless Chromium, shows what the record says.

Chromium comes from the OS packages (Debian ``chromium``; ``.ci/run`` installs it). Without it the
test is skipped locally and fails in CI (``CI=1``), so it can never silently stop guarding.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest

from gokart_k8s.history import load_record
from gokart_k8s.history.report import COLOURS
from gokart_k8s.history.store import open_store

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples.ml_pipeline.pipeline.Report"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing in CI: .ci/run must apt-get install -y chromium")
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    return found


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def gokart_k8s(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LUIGI_CONFIG_PATH": str(REPO / "examples" / "ml_pipeline" / "luigi.cfg"),
    }
    env = {k: v for k, v in env.items() if not k.startswith("GOKART_K8S_")}
    return subprocess.run(
        [sys.executable, "-m", "gokart_k8s", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Width, height, unfiltered rows and bytes per pixel of an 8-bit RGB(A) PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    i = 0
    for _ in range(height):
        kind_ = raw[i]
        line = bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = previous[x]
            c = previous[x - channels] if x >= channels else 0
            if kind_ == 1:
                line[x] = (line[x] + a) & 255
            elif kind_ == 2:
                line[x] = (line[x] + b) & 255
            elif kind_ == 3:
                line[x] = (line[x] + ((a + b) >> 1)) & 255
            elif kind_ == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, rows, channels


def colour_counts(png: bytes) -> Counter[tuple[int, int, int]]:
    _, _, rows, channels = png_pixels(png)
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        for x in range(0, len(row), channels):
            counts[(row[x], row[x + 1], row[x + 2])] += 1
    return counts


def rgb(hex_colour: str | None) -> tuple[int, int, int]:
    assert hex_colour is not None
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def test_the_chaos_rehearsals_report_shows_a_row_per_step_a_bar_per_attempt_and_its_evictions(tmp_path: Path) -> None:
    browser = chromium_binary()
    done = gokart_k8s(tmp_path, "run", EXAMPLE, "--backend", "local-cluster", "--chaos", "--run-id", "chaos")
    assert done.returncode == 0, done.stderr[-3000:]
    written = tmp_path / "resources" / "gokart_k8s" / "runs" / "chaos" / "report.html"
    assert f"run chaos: report {written}" in done.stdout and written.is_file()

    record = load_record(open_store(str(tmp_path / "resources")), "chaos")
    evicted = [a for s in record.steps for a in s.attempts if a.outcome == "evicted"]
    assert evicted, "the default chaos plan evicts TrainModel"
    assert {a.capacity_type for s in record.steps for a in s.attempts} >= {"spot", "on-demand"}

    page = tmp_path / "report.html"
    shown = gokart_k8s(tmp_path, "report", "latest", "-o", str(page))
    assert shown.returncode == 0, shown.stderr

    dom = chromium(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    # What the browser laid out (counted by the page's own script from rendered boxes).
    rendered = json.loads(re.search(r'<pre id="rendered"[^>]*>(.*?)</pre>', dom.stdout, re.S).group(1))  # type: ignore[union-attr]
    drawn_attempts = [a for s in record.steps for a in s.attempts if (a.submitted or a.started) is not None]
    assert rendered["step_rows"] == len(record.steps) == 5
    assert rendered["attempt_bars"] == len(drawn_attempts)
    assert rendered["eviction_marks"] == len(evicted)
    assert rendered["failure_marks"] == 0
    assert rendered["lost_work"] >= 1
    assert rendered["node_rows"] == len({n.name for n in record.nodes or []}) >= 3
    assert rendered["table_rows"] == 5
    # Per step: as many bars and eviction marks as the record has attempts and evictions.
    for step in record.steps:
        bars = re.findall(rf'<g class="attempt" data-step="{step.family}" [^>]*data-outcome="(\w+)"', dom.stdout)
        assert len(bars) == len(step.attempts), step.family
        assert bars.count("evicted") == sum(a.outcome == "evicted" for a in step.attempts), step.family

    shot = tmp_path / "report.png"
    taken = chromium(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1240,820", page.as_uri())
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    colours = colour_counts(shot.read_bytes())
    # Spot bars, on-demand bars and the eviction crosses are on the picture (short steps, forked from
    # the warm interpreter in a fraction of a second, draw short bars: a few hundred pixels).
    assert colours[rgb(COLOURS["spot"])] > 100
    assert colours[rgb(COLOURS["on-demand"])] > 100
    assert colours[rgb(COLOURS["evicted"])] > 20
