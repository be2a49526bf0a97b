"""A process holding claims on the file dies by SIGKILL: its tasks come back after the lease and each
completes once (the shared check of sheppy-conformance, run against SQLite)."""

from __future__ import annotations

from pathlib import Path

from sheppy_conformance.crash import check_killed_worker_claims_are_redelivered


async def test_sigkilled_worker_tasks_are_redelivered_after_the_lease(tmp_path: Path) -> None:
    await check_killed_worker_claims_are_redelivered(f"sqlite:///{tmp_path}/crash.db", "crash", lease=1.0)
