"""Cron, rate-limit and workflow storage of :class:`~sheppy_postgres.PostgresBackend`.

Capabilities ``CRON``, ``RATE_LIMIT`` and ``WORKFLOWS``. Kept apart from the task queue proper; the
atomic parts (rate-limit budgets, workflow compare-and-set and completion counting) are plpgsql
functions of the schema, so each call is one round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sheppy_core.backend import check_rate_limit, record_from_json, record_to_json, task_id_of
from sheppy_postgres._records import encode_name, int_or_none, row_to_record

if TYPE_CHECKING:
    import asyncpg

__all__ = ["OptionalCapabilities"]



class OptionalCapabilities:
    """Mixed into ``PostgresBackend``, which provides the query plumbing declared here."""

    if TYPE_CHECKING:

        async def _fetch(
            self, name: str, *args: Any, conn: Any = None, retry: bool = False
        ) -> list[asyncpg.Record]: ...

        async def _fetchval(self, name: str, *args: Any, conn: Any = None, retry: bool = False) -> Any: ...

        @staticmethod
        def _queue(queue_name: str) -> str: ...

    # -- cron ------------------------------------------------------------------------------------

    async def add_cron(self, queue_name: str, deterministic_id: str, task_cron: dict[str, Any]) -> bool:
        queue = self._queue(queue_name)
        # Crons alone do not make a queue known ([list_queues.known]): only appended or scheduled tasks do.
        cron_id = encode_name(str(deterministic_id))
        rows = await self._fetch("add_cron", queue, cron_id, record_to_json(task_cron))
        return bool(rows)

    async def delete_cron(self, queue_name: str, deterministic_id: str) -> bool:
        """The definition and its waiting occurrences, in one statement."""
        cron_id = str(deterministic_id)
        # Occurrences carry their cron's UUID in cron_id; an id with NUL (which a text parameter cannot
        # hold) is no UUID, so no occurrence can name it: NULL matches none.
        occurrence_key = None if "\x00" in cron_id else cron_id
        rows = await self._fetch("delete_cron", self._queue(queue_name), encode_name(cron_id), occurrence_key)
        return bool(rows)

    async def get_crons(self, queue_name: str) -> list[dict[str, Any]]:
        rows = await self._fetch("get_crons", self._queue(queue_name), retry=True)
        return [record_from_json(r["data"]) for r in rows]

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
        queue = self._queue(queue_name)
        check_rate_limit(max_rate, rate_period, strategy)
        wait = await self._fetchval(
            "acquire_rate_limit", queue, encode_name(str(key)), max_rate, float(rate_period),
            encode_name(str(task_id)), strategy,
        )
        return None if wait is None else float(wait)

    # -- workflows -------------------------------------------------------------------------------

    async def store_workflow(
        self, queue_name: str, workflow_data: dict[str, Any], *, if_version: int | None = None
    ) -> bool:
        queue = self._queue(queue_name)
        workflow_id = encode_name(task_id_of(workflow_data))
        version = int_or_none(workflow_data.get("version")) or 0
        finished = workflow_data.get("finished_at") is not None or workflow_data.get("completed") is True
        pending = [encode_name(str(t)) for t in workflow_data.get("pending_task_ids") or ()]
        stored = await self._fetchval(
            "store_workflow",
            queue,
            workflow_id,
            record_to_json(workflow_data),
            version,
            if_version,
            finished,
            pending,
        )
        return bool(stored)

    async def get_workflows(self, queue_name: str, workflow_ids: list[str]) -> dict[str, dict[str, Any]]:
        queue = self._queue(queue_name)
        if not workflow_ids:
            return {}
        wanted = {encode_name(str(w)): str(w) for w in workflow_ids}
        rows = await self._fetch("get_workflows", queue, list(wanted), retry=True)
        return {wanted[r["id"]]: record_from_json(r["data"]) for r in rows}

    async def get_all_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        rows = await self._fetch("get_all_workflows", self._queue(queue_name), retry=True)
        return [record_from_json(r["data"]) for r in rows]

    async def get_pending_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        rows = await self._fetch("get_pending_workflows", self._queue(queue_name), retry=True)
        return [record_from_json(r["data"]) for r in rows]

    async def delete_workflow(self, queue_name: str, workflow_id: str) -> bool:
        queue = self._queue(queue_name)
        count = await self._fetchval("delete_workflow", queue, encode_name(str(workflow_id)))
        return bool(count)

    async def mark_workflow_task_complete(self, queue_name: str, workflow_id: str, task_id: str) -> int:
        left = await self._fetchval(
            "mark_workflow_task_complete", self._queue(queue_name), encode_name(str(workflow_id)),
            encode_name(str(task_id)),
        )
        return int(left)

    async def get_workflow_results(self, queue_name: str, workflow_id: str) -> dict[str, dict[str, Any]]:
        queue = self._queue(queue_name)
        rows = await self._fetch("get_workflow_results", queue, encode_name(str(workflow_id)), retry=True)
        records = [row_to_record(r) for r in rows]
        return {str(record["id"]): record for record in records}
