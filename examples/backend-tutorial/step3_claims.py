"""Step 3: what the suite asked for in step 2. Claims live in the store and expire, a task is in one
place at a time, and input no store can hold is refused before anything changes."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

from step2_complete import CompleteBackend, Queue

from sheppy_core.backend import (
    STATS_KEYS,
    BackendConnectionError,
    check_aware,
    check_count,
    check_no_connection,
    check_queue_name,
    check_task_id,
    check_task_ids,
    due_at,
    is_finished,
    task_id_of,
    to_iso,
)


def _new_queue() -> Queue:
    return {"records": {}, "queued": [], "claims": {}, "scheduled": {}}  # claims: id -> lease expiry


class ClaimingBackend(CompleteBackend):
    def _queue(self, queue_name: str, create: bool = False) -> Queue:
        """Every method starts here: refuse a closed backend and a name no store can hold."""
        if not self._connected:
            raise BackendConnectionError(f"{self!r} is not connected; call connect() first")
        check_queue_name(queue_name)
        if not create:
            known: Queue | None = self.queues.get(queue_name)
            return known if known is not None else _new_queue()  # reading a queue does not create it
        created: Queue = self.queues.setdefault(queue_name, _new_queue())
        return created

    @staticmethod
    def _forget_position(queue: Queue, task_id: str) -> None:
        """Before a task goes anywhere, it leaves wherever it was: queued, claimed or scheduled."""
        if task_id in queue["queued"]:
            queue["queued"].remove(task_id)
        queue["claims"].pop(task_id, None)
        queue["scheduled"].pop(task_id, None)

    async def append(self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *,
                     connection: Any = None) -> list[bool]:
        check_no_connection(self, connection)
        records = [copy.deepcopy(task) for task in tasks]  # the store keeps its own copy
        ids = [task_id_of(record) for record in records]
        queue = self._queue(queue_name, create=True)
        stored = []
        for task_id, record in zip(ids, records, strict=True):
            if unique and task_id in queue["records"]:
                stored.append(False)
                continue
            self._forget_position(queue, task_id)
            queue["records"][task_id] = dict(record, status="pending")
            queue["queued"].append(task_id)
            stored.append(True)
        return stored

    async def schedule(self, queue_name: str, task_data: dict[str, Any], at: datetime, unique: bool = True,
                       *, connection: Any = None) -> bool:
        check_no_connection(self, connection)
        check_aware(at, "at", "schedule")
        task_id = task_id_of(task_data)
        queue = self._queue(queue_name, create=True)
        if unique and task_id in queue["records"]:
            return False
        self._forget_position(queue, task_id)
        record = dict(copy.deepcopy(task_data), status="scheduled", scheduled_at=to_iso(at))
        queue["records"][task_id] = record
        queue["scheduled"][task_id] = at.timestamp()
        return True

    async def pop(self, queue_name: str, limit: int = 1, timeout: float | None = None, *,
                  worker_id: str | None = None, lease: float | None = None) -> list[dict[str, Any]]:
        check_count(limit, "limit", "pop")
        queue = self._queue(queue_name)
        now = time.time()
        expiry = now + (self.lease_duration if lease is None else lease)
        expired = [task_id for task_id, until in queue["claims"].items() if until <= now]
        taken = (expired + queue["queued"])[:limit]  # expired leases first, then the queue in order
        for task_id in taken:
            self._forget_position(queue, task_id)
            queue["claims"][task_id] = expiry
            record = queue["records"][task_id]
            record.update(status="processing", claimed_by=worker_id or self.client_id,
                          lease_expires_at=to_iso(datetime.fromtimestamp(expiry, UTC)),
                          deliveries=int(record.get("deliveries") or 0) + 1)
        return [copy.deepcopy(queue["records"][task_id]) for task_id in taken]

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        task_id = check_task_id(task_id)
        queue = self._queue(queue_name)
        if queue["claims"].pop(task_id, None) is None:
            return False
        queue["records"][task_id].update(claimed_by=None, lease_expires_at=None)
        return True

    async def heartbeat(self, queue_name: str, task_ids: list[str], *, worker_id: str | None = None,
                        lease: float | None = None) -> list[str]:
        task_ids = check_task_ids(task_ids)
        queue = self._queue(queue_name)
        expiry = time.time() + (self.lease_duration if lease is None else lease)
        held = [task_id for task_id in task_ids if task_id in queue["claims"]
                and queue["records"][task_id].get("claimed_by") == (worker_id or self.client_id)]
        for task_id in held:
            queue["claims"][task_id] = expiry
            queue["records"][task_id]["lease_expires_at"] = to_iso(datetime.fromtimestamp(expiry, UTC))
        return held

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        task_id = task_id_of(task_data)
        queue = self._queue(queue_name)
        if task_id not in queue["records"]:
            return False
        self._forget_position(queue, task_id)
        record = queue["records"][task_id] = dict(copy.deepcopy(task_data), claimed_by=None,
                                                  lease_expires_at=None)
        if not is_finished(record):
            if record.get("status") in ("retrying", "scheduled"):
                queue["scheduled"][task_id] = due_at(record).timestamp()
            else:
                record["status"] = "pending"
                queue["queued"].append(task_id)
        return True

    async def get_results(self, queue_name: str, task_ids: list[str],
                          timeout: float | None = None) -> dict[str, dict[str, Any]]:
        return await super().get_results(queue_name, check_task_ids(task_ids), timeout)

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        records = self._queue(queue_name)["records"]
        return {t: copy.deepcopy(records[t]) for t in check_task_ids(task_ids) if t in records}

    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        check_count(count, "count", "get_pending")
        return await super().get_pending(queue_name, count)

    async def size(self, queue_name: str) -> int:
        return len(self._queue(queue_name)["queued"])

    async def get_stats(self, queue_name: str) -> dict[str, int]:
        queue = self._queue(queue_name)
        stats = dict.fromkeys(STATS_KEYS, 0)
        stats.update(pending=len(queue["queued"]), processing=len(queue["claims"]),
                     scheduled=len(queue["scheduled"]))
        for record in queue["records"].values():
            if is_finished(record):
                stats[record["status"]] += 1
        return stats

    async def list_queues(self) -> dict[str, int]:
        self._queue("any")  # the connection check
        return await super().list_queues()

    async def clear(self, queue_name: str) -> int:
        self._queue(queue_name)
        return await super().clear(queue_name)

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        moment = check_aware(now, "now", "pop_scheduled").timestamp() if now is not None else time.time()
        queue = self._queue(queue_name)
        due = sorted((at, task_id) for task_id, at in queue["scheduled"].items() if at <= moment)
        for _, task_id in due:
            del queue["scheduled"][task_id]
            queue["records"][task_id]["status"] = "pending"
            queue["queued"].append(task_id)
        return [copy.deepcopy(queue["records"][task_id]) for _, task_id in due]

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        task_id = check_task_id(task_id)
        self._queue(queue_name)
        return await super().cancel(queue_name, task_id)

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        task_id = check_task_id(task_id)
        self._queue(queue_name)
        return await super().delete_task(queue_name, task_id)


def build() -> ClaimingBackend:
    return ClaimingBackend.from_url("toy://tutorial")
