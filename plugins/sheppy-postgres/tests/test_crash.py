"""A worker process SIGKILLed mid-task: its claims expire and another backend finishes the tasks (the
shared check of sheppy-conformance, run against PostgreSQL)."""

from __future__ import annotations

from sheppy_conformance.crash import check_killed_worker_claims_are_redelivered


async def test_sigkilled_worker_tasks_complete_elsewhere_after_the_lease(url: str, queue: str) -> None:
    await check_killed_worker_claims_are_redelivered(url, queue, lease=1.5)
