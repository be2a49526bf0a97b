"""A process holding claims dies by SIGKILL: its tasks come back after the lease and nothing is lost
(the shared check of sheppy-conformance, run against Redis)."""

from __future__ import annotations

from collections.abc import Callable

from sheppy_conformance.crash import check_killed_worker_claims_are_redelivered
from sheppy_redis import RedisBackend
from sheppy_redis_testing import REDIS_URL


async def test_sigkilled_worker_tasks_are_redelivered_after_the_lease(
    make_backend: Callable[..., RedisBackend], prefix: str
) -> None:
    make_backend()  # the fixture deletes every key under the prefix afterwards
    await check_killed_worker_claims_are_redelivered(f"{REDIS_URL}?prefix={prefix}", "crash", lease=1.0)
