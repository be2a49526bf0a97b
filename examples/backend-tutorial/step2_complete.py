"""Step 2: the whole contract, written the obvious way. The suite says what the obvious way misses."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from step1_toy import ToyBackend

from sheppy_core.backend import STATS_KEYS, TaskStateError, due_at, is_finished, to_iso

Queue = dict[str, Any]


class CompleteBackend(ToyBackend):
    def _queue(self, queue_name: str) -> Queue:
        queue: Queue = self.queues.setdefault(queue_name, {"records": {}, "queued": []})
        queue.setdefault("claimed", [])  # ids, in claim order
        queue.setdefault("scheduled", {})  # id -> due time
        return queue

    async def schedule(self, queue_name: str, task_data: dict[str, Any], at: datetime, unique: bool = True,
                       *, connection: Any = None) -> bool:
        queue = self._queue(queue_name)
        if unique and task_data["id"] in queue["records"]:
            return False
        queue["records"][task_data["id"]] = dict(task_data, status="scheduled", scheduled_at=to_iso(at))
        queue["scheduled"][task_data["id"]] = at
        return True

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        taken, queue["queued"] = queue["queued"][:limit], queue["queued"][limit:]
        expiry = datetime.now(UTC) + timedelta(seconds=lease or self.lease_duration)
        for task_id in taken:
            record = queue["records"][task_id]
            record.update(status="processing", claimed_by=worker_id or self.client_id,
                          lease_expires_at=to_iso(expiry), deliveries=record.get("deliveries", 0) + 1)
            queue["claimed"].append(task_id)
        return [dict(queue["records"][task_id]) for task_id in taken]

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        queue = self._queue(queue_name)
        if task_id not in queue["claimed"]:
            return False
        queue["claimed"].remove(task_id)
        return True

    async def heartbeat(self, queue_name: str, task_ids: list[str], *, worker_id: str | None = None,
                        lease: float | None = None) -> list[str]:
        return [task_id for task_id in task_ids if task_id in self._queue(queue_name)["claimed"]]

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        queue = self._queue(queue_name)
        task_id = task_data["id"]
        if task_id not in queue["records"]:
            return False
        record = queue["records"][task_id] = dict(task_data, claimed_by=None, lease_expires_at=None)
        if task_id in queue["claimed"]:
            queue["claimed"].remove(task_id)
        if not is_finished(record):
            if record.get("status") in ("retrying", "scheduled"):
                queue["scheduled"][task_id] = due_at(record)
            else:
                record["status"] = "pending"
                queue["queued"].append(task_id)
        return True

    async def get_results(self, queue_name: str, task_ids: list[str],
                          timeout: float | None = None) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + (timeout or float("inf"))
        while True:
            found = {t: r for t, r in (await self.get_tasks(queue_name, task_ids)).items() if is_finished(r)}
            if timeout is None or timeout < 0 or len(found) == len(set(task_ids)):
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(set(task_ids)) - len(found)} task(s) unfinished after {timeout} s")
            await asyncio.sleep(0.01)

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        records = self._queue(queue_name)["records"]
        return {task_id: dict(records[task_id]) for task_id in task_ids if task_id in records}

    async def get_all_tasks(self, queue_name: str) -> list[dict[str, Any]]:
        return [dict(record) for record in self._queue(queue_name)["records"].values()]

    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        return [dict(queue["records"][task_id]) for task_id in queue["queued"][:count]]

    async def get_scheduled(self, queue_name: str) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        by_due = sorted(queue["scheduled"], key=queue["scheduled"].__getitem__)
        return [dict(queue["records"][task_id]) for task_id in by_due]

    async def get_stats(self, queue_name: str) -> dict[str, int]:
        queue = self._queue(queue_name)
        stats = dict.fromkeys(STATS_KEYS, 0)
        stats.update(pending=len(queue["queued"]), processing=len(queue["claimed"]),
                     scheduled=len(queue["scheduled"]))
        for record in queue["records"].values():
            if is_finished(record):
                stats[record["status"]] += 1
        return stats

    async def list_queues(self) -> dict[str, int]:
        return {name: len(queue["queued"]) for name, queue in self.queues.items()}

    async def clear(self, queue_name: str) -> int:
        return len(self.queues.pop(queue_name, {}).get("records", {}))

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        queue = self._queue(queue_name)
        moment = now or datetime.now(UTC)
        due = sorted((at, task_id) for task_id, at in queue["scheduled"].items() if at <= moment)
        for _, task_id in due:
            del queue["scheduled"][task_id]
            queue["records"][task_id]["status"] = "pending"
            queue["queued"].append(task_id)
        return [dict(queue["records"][task_id]) for _, task_id in due]

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        queue = self._queue(queue_name)
        if task_id in queue["queued"]:
            queue["queued"].remove(task_id)
        elif queue["scheduled"].pop(task_id, None) is None:
            return None
        record = queue["records"][task_id]
        record.update(status="cancelled", finished_at=to_iso(datetime.now(UTC)))
        return dict(record)

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        records = self._queue(queue_name)["records"]
        if task_id not in records:
            return False
        if not is_finished(records[task_id]):
            raise TaskStateError(f"task {task_id} is not finished")
        del records[task_id]
        return True


def build() -> CompleteBackend:
    return CompleteBackend.from_url("toy://tutorial")
