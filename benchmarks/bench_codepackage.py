"""Code packages: pack, upload and in-pod download/verify/extract times.

Run:  PYTHONPATH=. python benchmarks/bench_codepackage.py [--files 2000] [--repeat 3]

Projects measured: the example pipeline (``examples/`` copied into a project of its own, with its
luigi.cfg), this checkout (what a run from the repository root packs: gokart_k8s, tests, examples,
benchmarks) and a generated project of ``--files`` Python modules (about 2 KB each, in packages of
50, plus a little package data). Each store: a local workspace directory and fake-gcs-server
(gs://, through the same GCSFileSystem a run uses). Figures are the best of ``--repeat``; the upload
is of a fresh package (a second upload of the same code is skipped after one existence check,
shown as "recheck"). "fetch+extract" is what a step pod does first: download, verify the sha256,
extract into a fresh cache directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gokart_k8s.codepackage import build
from gokart_k8s.codepackage.contents import digest
from gokart_k8s.codepackage.pod import fetch
from gokart_k8s.codepackage.sources import gather
from gokart_k8s.codepackage.store import upload
from gokart_k8s.testing.gcs import FakeGCSServer

REPO = Path(__file__).resolve().parents[1]
MODULE = '''"""Generated module {i}."""

import math


def feature_{i}(values):
    """A feature of no importance, long enough to weigh like real code."""
    total = 0.0
    for v in values:
        total += math.sqrt(abs(v)) * {i}
    return total / max(len(values), 1)


class Step{i}:
    name = "step-{i}"

    def run(self, rows):
        return [feature_{i}(r) for r in rows]
'''


def generate(root: Path, files: int) -> None:
    for i in range(files):
        package = root / "genproj" / f"part{i // 50:03d}"
        package.mkdir(parents=True, exist_ok=True)
        if i % 50 == 0:
            (package / "__init__.py").write_text("")
            (package / "schema.json").write_text('{"columns": ["a", "b", "c"]}\n' * 20)
        (package / f"mod{i:04d}.py").write_text(MODULE.format(i=i) * 2)
    (root / "genproj" / "__init__.py").write_text("")


def best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return min(times), value


def measure(name: str, root: Path, workspaces: dict[str, str], repeat: int) -> list[str]:
    rows = []
    pack_s, data = best(repeat, lambda: build(gather([str(root)], config_files=[], environ={}), limit_bytes=10**9))
    contents = gather([str(root)], config_files=[], environ={})
    for store, workspace in workspaces.items():
        uploads = []
        for attempt in range(repeat):
            fresh = f"{workspace.rstrip('/')}/{name}-{attempt}"
            started = time.perf_counter()
            upload(fresh, data)
            uploads.append(time.perf_counter() - started)
        first = f"{workspace.rstrip('/')}/{name}-0"
        recheck_s, _ = best(repeat, lambda: upload(first, data))  # noqa: B023 (called right here)
        url = f"{first}/gokart_k8s/code/{digest(data)}.tar.gz"
        extracts = []
        for _ in range(repeat):
            cache = Path(tempfile.mkdtemp(prefix="bench-code-cache-"))
            started = time.perf_counter()
            fetch(url, digest(data), cache)
            extracts.append(time.perf_counter() - started)
            shutil.rmtree(cache)
        rows.append(
            f"| {name} | {store} | {len(contents.files())} | {contents.size() / 1e3:.0f} | {len(data) / 1e3:.0f} "
            f"| {pack_s * 1000:.0f} | {min(uploads) * 1000:.0f} | {recheck_s * 1000:.0f} | {min(extracts) * 1000:.0f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeGCSServer() as server:
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        bucket = server.create_bucket()
        workspaces = {"local": str(Path(tmp) / "ws"), "gs:// (fake-gcs-server)": f"gs://{bucket}/ws"}
        example = Path(tmp) / "example"
        shutil.copytree(REPO / "examples", example / "examples", ignore=shutil.ignore_patterns("__pycache__"))
        generated = Path(tmp) / "generated"
        generate(generated, args.files)
        print("| project | store | files | size kB | packed kB | pack ms | upload ms | recheck ms | fetch+extract ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, root in (("example", example), ("this checkout", REPO), (f"generated {args.files}", generated)):
            for row in measure(name.replace(" ", "-"), root, workspaces, args.repeat):
                print(row.replace(f"| {name.replace(' ', '-')} |", f"| {name} |", 1))


if __name__ == "__main__":
    main()
