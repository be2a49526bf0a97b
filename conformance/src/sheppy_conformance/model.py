"""A plain, obviously-correct model of one queue under the Backend contract.

It is the oracle of the stateful test: every method returns what a conforming backend must return. No
time passes in the model — leases are long and due times are explicit — so it has no clock.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sheppy_core.backend import STATS_KEYS, due_at, is_finished, to_iso

__all__ = ["QueueModel"]


@dataclass
class QueueModel:
    """Where each task is: ``queued`` (ordered), ``claimed``, ``scheduled`` (id -> due), or finished.

    A task that was acknowledged is in none of them: its record stays, but it is neither claimable nor
    counted by ``size`` or the ``pending``/``processing``/``scheduled`` stats.
    """

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    queued: list[str] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)
    scheduled: dict[str, datetime] = field(default_factory=dict)

    def _forget_position(self, task_id: str) -> None:
        if task_id in self.queued:
            self.queued.remove(task_id)
        self.claimed.discard(task_id)
        self.scheduled.pop(task_id, None)

    def append(self, records: list[dict[str, Any]], unique: bool) -> list[bool]:
        results = []
        for record in records:
            task_id = record["id"]
            if unique and task_id in self.records:
                results.append(False)
                continue
            self._forget_position(task_id)
            self.records[task_id] = dict(copy.deepcopy(record), status="pending")
            self.queued.append(task_id)
            results.append(True)
        return results

    def schedule(self, record: dict[str, Any], at: datetime, unique: bool) -> bool:
        task_id = record["id"]
        if unique and task_id in self.records:
            return False
        self._forget_position(task_id)
        self.records[task_id] = dict(copy.deepcopy(record), status="scheduled", scheduled_at=to_iso(at))
        self.scheduled[task_id] = at
        return True

    def pop(self, limit: int, worker_id: str) -> list[str]:
        taken, self.queued = self.queued[:limit], self.queued[limit:]
        for task_id in taken:
            record = self.records[task_id]
            record.update(status="processing", claimed_by=worker_id,
                          deliveries=int(record.get("deliveries") or 0) + 1)
            self.claimed.add(task_id)
        return taken

    def acknowledge(self, task_id: str) -> bool:
        if task_id not in self.claimed:
            return False
        self.claimed.discard(task_id)
        return True

    def pop_scheduled(self, now: datetime) -> list[str]:
        due = sorted((at, t) for t, at in self.scheduled.items() if at <= now)
        for _, task_id in due:
            del self.scheduled[task_id]
            self.queued.append(task_id)
            self.records[task_id]["status"] = "pending"
        return [t for _, t in due]

    def store_result(self, record: dict[str, Any]) -> bool:
        task_id = record["id"]
        if task_id not in self.records:
            return False
        stored = dict(copy.deepcopy(record), claimed_by=None, lease_expires_at=None)
        self._forget_position(task_id)
        if not is_finished(stored):
            if stored.get("status") in ("retrying", "scheduled"):
                self.scheduled[task_id] = due_at(stored)
            else:
                stored["status"] = "pending"
                self.queued.append(task_id)
        self.records[task_id] = stored
        return True

    def cancel(self, task_id: str) -> bool:
        """True (and the task is cancelled) when it was waiting; the backend sets ``finished_at``."""
        if task_id not in self.queued and task_id not in self.scheduled:
            return False
        self._forget_position(task_id)
        self.records[task_id].update(status="cancelled", finished_at="set by backend")
        return True

    def delete_task(self, task_id: str) -> bool | None:
        """True/False as the contract says; None means ``TaskStateError`` must be raised."""
        record = self.records.get(task_id)
        if record is None:
            return False
        if not is_finished(record):
            return None
        del self.records[task_id]
        return True

    def clear(self) -> int:
        count = len(self.records)
        self.records.clear()
        self.queued.clear()
        self.claimed.clear()
        self.scheduled.clear()
        return count

    # -- observations ----------------------------------------------------------------------------

    def size(self) -> int:
        return len(self.queued)

    def stats(self) -> dict[str, int]:
        stats = dict.fromkeys(STATS_KEYS, 0)
        stats.update(pending=len(self.queued), processing=len(self.claimed), scheduled=len(self.scheduled))
        for record in self.records.values():
            if is_finished(record):
                stats[record["status"]] += 1
        return stats

    def scheduled_order(self) -> list[str]:
        return [t for _, t in sorted((at, t) for t, at in self.scheduled.items())]

    def statuses(self) -> dict[str, str]:
        return {t: r["status"] for t, r in self.records.items()}
