"""A process holding claims in the JSON file dies by SIGKILL: its tasks come back after the lease (the
shared check of sheppy-conformance, which every SHARED_STORE backend's tests can call)."""

from __future__ import annotations

from pathlib import Path

from sheppy_conformance.crash import check_killed_worker_claims_are_redelivered


async def test_sigkilled_worker_tasks_are_redelivered_after_the_lease(tmp_path: Path) -> None:
    await check_killed_worker_claims_are_redelivered(f"jsonfile://{tmp_path}/store.json", "crash", lease=1.0)
