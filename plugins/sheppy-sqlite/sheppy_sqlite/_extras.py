"""Cron, rate-limit and workflow storage of :class:`~sheppy_sqlite.SQLiteBackend`.

Capabilities ``CRON``, ``RATE_LIMIT`` and ``WORKFLOWS``, kept apart from the task queue proper. Every
step that reads and then writes (a rate-limit budget, a workflow compare-and-set, counting a workflow's
last task) runs in one ``BEGIN IMMEDIATE`` transaction, so it is atomic across connections and
processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from sheppy_core.backend import (
    BackendInputError,
    FixedWindow,
    check_queue_name,
    check_rate_limit,
    record_from_json,
    take_fixed_window,
    take_sliding_window,
    task_id_of,
)
from sheppy_sqlite._listener import notify
from sheppy_sqlite._records import decoded_by_id, dumps, workflow_finished
from sheppy_sqlite._store import Conn

__all__ = ["OptionalCapabilities"]

T = TypeVar("T")


class OptionalCapabilities:
    """Mixed into ``SQLiteBackend``, which provides the statement plumbing declared here."""

    _path: str

    if TYPE_CHECKING:

        async def _rows(
            self, operation: str, name: str, params: dict[str, Any], *, inline: bool = True
        ) -> list[Any]: ...

        async def _transaction(self, operation: str, body: Callable[[Conn], Awaitable[T]]) -> T: ...

        @staticmethod
        async def _fetch(conn: Conn, name: str, params: dict[str, Any]) -> list[Any]: ...

    # -- cron ------------------------------------------------------------------------------------

    async def add_cron(self, queue_name: str, deterministic_id: str, task_cron: dict[str, Any]) -> bool:
        check_queue_name(queue_name)
        rows = await self._rows("add_cron", "add_cron", {
            "queue": queue_name, "id": str(deterministic_id), "data": dumps(task_cron),
        })
        return bool(rows)

    async def delete_cron(self, queue_name: str, deterministic_id: str) -> bool:
        """The definition and its waiting occurrences, in one ``BEGIN IMMEDIATE`` transaction."""
        check_queue_name(queue_name)
        key = {"queue": queue_name, "id": str(deterministic_id)}

        async def body(conn: Conn) -> bool:
            if not await self._fetch(conn, "delete_cron", key):
                return False
            await self._fetch(conn, "delete_cron_occurrences", key)
            return True

        return await self._transaction("delete_cron", body)

    async def get_crons(self, queue_name: str) -> list[dict[str, Any]]:
        check_queue_name(queue_name)
        return self._records(await self._rows("get_crons", "get_crons", {"queue": queue_name}, inline=False))

    # -- rate limits -----------------------------------------------------------------------------

    async def acquire_rate_limit(
        self,
        queue_name: str,
        key: str,
        max_rate: int,
        rate_period: float,
        task_id: str,
        strategy: str = "sliding_window",
    ) -> float | None:
        check_queue_name(queue_name)
        check_rate_limit(max_rate, rate_period, strategy)
        if strategy == "sliding_window":
            return await self._sliding_window(
                queue_name, str(key), max_rate, float(rate_period), str(task_id)
            )
        return await self._fixed_window(queue_name, str(key), max_rate, float(rate_period), str(task_id))

    async def _sliding_window(
        self, queue_name: str, key: str, max_rate: int, period: float, task_id: str
    ) -> float | None:
        """The key's starts and reservations are read, updated by the shared rule
        (``take_sliding_window``) and written back in one write transaction: atomic across clients."""
        params = {"queue": queue_name, "key": key}

        async def body(conn: Conn) -> float | None:
            before = {str(t): float(at) for t, at in await self._fetch(conn, "rate_starts", params)}
            starts = dict(before)
            wait = take_sliding_window(starts, max_rate, period, task_id, time.time())
            await self._save_starts(conn, params, before, starts, "rate_start")
            return wait

        return await self._transaction("acquire_rate_limit", body)

    async def _fixed_window(
        self, queue_name: str, key: str, max_rate: int, period: float, task_id: str
    ) -> float | None:
        params = {"queue": queue_name, "key": key}

        async def body(conn: Conn) -> float | None:
            rows = await self._fetch(conn, "window_get", params)
            before = {str(t): float(at) for t, at in await self._fetch(conn, "window_starts", params)}
            window = FixedWindow(float(rows[0][0]) if rows else None, dict(before))
            wait = take_fixed_window(window, max_rate, period, task_id, time.time())
            if window.start is None:
                await self._fetch(conn, "window_delete", params)
            else:
                await self._fetch(conn, "window_put", {**params, "start": window.start})
            await self._save_starts(conn, params, before, window.starts, "window_start")
            return wait

        return await self._transaction("acquire_rate_limit", body)

    async def _save_starts(
        self,
        conn: Conn,
        params: dict[str, Any],
        before: dict[str, float],
        after: dict[str, float],
        table: str,
    ) -> None:
        """Write the changes from ``before`` to ``after`` with the ``<table>_delete``/``_put`` queries."""
        for task_id in before.keys() - after.keys():
            await self._fetch(conn, f"{table}_delete", {**params, "task_id": task_id})
        for task_id, at in after.items():
            if before.get(task_id) != at:
                await self._fetch(conn, f"{table}_put", {**params, "task_id": task_id, "at": at})

    # -- workflows -------------------------------------------------------------------------------

    async def store_workflow(
        self, queue_name: str, workflow_data: dict[str, Any], *, if_version: int | None = None
    ) -> bool:
        check_queue_name(queue_name)
        workflow_id = task_id_of(workflow_data)
        record = {**workflow_data, "id": workflow_id}
        finished = workflow_finished(record)
        try:
            version = int(record.get("version") or 0)
        except (TypeError, ValueError):
            raise BackendInputError(f"workflow version must be an integer, got {record.get('version')!r}") \
                from None
        pending = [str(t) for t in (record.get("pending_task_ids") or [])]
        params = {
            "queue": queue_name, "id": workflow_id, "version": version, "finished": int(finished),
            "data": dumps(record), "task_ids": json.dumps(pending),
        }

        async def body(conn: Conn) -> bool:
            if if_version is not None:
                rows = await self._fetch(conn, "workflow_version", params)
                current = int(rows[0][0]) if rows else 0
                if current != if_version:
                    return False
            await self._fetch(conn, "workflow_upsert", params)
            await self._fetch(conn, "workflow_pending_clear", params)
            if not finished:
                await self._fetch(conn, "workflow_pending_fill", params)
            return True

        stored = await self._transaction("store_workflow", body)
        if stored:
            notify(self._path, queue_name)
        return stored

    async def get_workflows(self, queue_name: str, workflow_ids: list[str]) -> dict[str, dict[str, Any]]:
        check_queue_name(queue_name)
        if not workflow_ids:
            return {}
        rows = await self._rows("get_workflows", "get_workflows", {
            "queue": queue_name, "ids": json.dumps([str(w) for w in workflow_ids]),
        })
        return {str(row[0]): record_from_json(row[1]) for row in rows}

    async def get_all_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        check_queue_name(queue_name)
        return self._records(
            await self._rows("get_all_workflows", "get_all_workflows", {"queue": queue_name}, inline=False)
        )

    async def get_pending_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        check_queue_name(queue_name)
        return self._records(
            await self._rows(
                "get_pending_workflows", "get_pending_workflows", {"queue": queue_name}, inline=False
            )
        )

    async def delete_workflow(self, queue_name: str, workflow_id: str) -> bool:
        check_queue_name(queue_name)
        params = {"queue": queue_name, "id": str(workflow_id)}

        async def body(conn: Conn) -> bool:
            await self._fetch(conn, "workflow_pending_clear", params)
            return bool(await self._fetch(conn, "delete_workflow", params))

        return await self._transaction("delete_workflow", body)

    async def mark_workflow_task_complete(self, queue_name: str, workflow_id: str, task_id: str) -> int:
        check_queue_name(queue_name)
        params = {"queue": queue_name, "id": str(workflow_id), "task_id": str(task_id)}

        async def body(conn: Conn) -> int:
            # Delete and count in one write transaction: of several callers removing the last ids,
            # exactly one sees 0.
            if not await self._fetch(conn, "workflow_task_done", params):
                return -1
            return int((await self._fetch(conn, "workflow_pending_count", params))[0][0])

        return await self._transaction("mark_workflow_task_complete", body)

    async def get_workflow_results(self, queue_name: str, workflow_id: str) -> dict[str, dict[str, Any]]:
        check_queue_name(queue_name)
        rows = await self._rows("get_workflow_results", "get_workflow_results", {
            "queue": queue_name, "workflow_id": str(workflow_id), "now": time.time(),
        }, inline=False)
        return decoded_by_id(rows)

    @staticmethod
    def _records(rows: Iterable[Any]) -> list[dict[str, Any]]:
        return [record_from_json(row[0]) for row in rows]
