"""Commits are create-only: racing processes produce exactly one complete winner."""

from __future__ import annotations

import multiprocessing

from cache_support import race_to_commit, racer_payload

from gokart_k8s.testing.gcs import FakeGCSServer

RACERS = 4


def test_processes_racing_on_one_output_leave_exactly_one_complete_winner(
    gcs_emulator: FakeGCSServer, gcs_bucket: str
) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(RACERS) as pool:
        start = manager.Event()
        pending = [pool.apply_async(race_to_commit, (gcs_emulator.url, gcs_bucket, i, start)) for i in range(RACERS)]
        start.set()
        results = [p.get(timeout=120) for p in pending]

    winners = [i for i, (won, _, _) in enumerate(results) if won]
    assert len(winners) == 1
    assert {ckpt for _, ckpt, _ in results} == {racer_payload(winners[0])}
    # gokart-style put(): every racer returns cleanly and reads the same complete winner's bytes.
    outputs = {out for _, _, out in results}
    assert len(outputs) == 1
    assert outputs.pop() in {racer_payload(i) for i in range(RACERS)}
