"""Step 4: a capability. ``pop(timeout=...)`` waits for work and is woken by the call that brings it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar

from step3_claims import ClaimingBackend

from sheppy_core.backend import BLOCKING_POP

WAITERS: dict[str, dict[str, set[asyncio.Event]]] = {}  # store -> queue -> the events of blocked pops


class TutorialBackend(ClaimingBackend):
    capabilities: ClassVar[frozenset[str]] = frozenset({BLOCKING_POP})  # declared, so the suite tests it

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.waiters = WAITERS.setdefault(name, {})

    def _wake(self, queue_name: str) -> None:
        for event in self.waiters.get(queue_name, set()):
            event.set()

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or 0)
        while True:
            taken = await super().pop(queue_name, limit, worker_id=worker_id, lease=lease)
            remaining = deadline - loop.time()
            if taken or remaining <= 0:
                return taken
            # Nothing awaits between the claim above and here, so no append can slip in unseen. A
            # cancellation lands in the wait below, where nothing is claimed yet ([pop.cancel_mid_claim]).
            event = asyncio.Event()
            self.waiters.setdefault(queue_name, set()).add(event)
            try:
                # asyncio.timeout rather than wait_for: on Python 3.11 wait_for can swallow a cancellation
                # that arrives as the event is set, and the cancelled pop would go on waiting.
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                pass  # one last look, then []
            finally:
                self.waiters[queue_name].discard(event)

    async def append(self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *,
                     connection: Any = None) -> list[bool]:
        stored = await super().append(queue_name, tasks, unique, connection=connection)
        if any(stored):
            self._wake(queue_name)
        return stored

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        stored = await super().store_result(queue_name, task_data)
        self._wake(queue_name)  # a re-queued task is work too
        return stored

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        moved = await super().pop_scheduled(queue_name, now)
        if moved:
            self._wake(queue_name)
        return moved


def build() -> TutorialBackend:
    return TutorialBackend.from_url("toy://tutorial")
