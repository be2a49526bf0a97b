"""The optional capabilities of :class:`~sheppy_redis.RedisBackend`: cron, rate limits, workflows.

Kept apart from the core claim/result path; single-key operations are plain commands (atomic by
themselves), multi-key ones are Lua scripts like everything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sheppy_core.backend import check_rate_limit, is_finished, task_id_of
from sheppy_core.exceptions import BackendInputError
from sheppy_redis._errors import translate_errors
from sheppy_redis._keys import QueueKeys

__all__ = ["OptionalCapabilities"]


class OptionalCapabilities:
    """Mixin of :class:`RedisBackend` (which provides the plumbing declared here)."""

    safe_url: str

    def _keys(self, queue_name: str) -> QueueKeys:
        raise NotImplementedError

    def _require(self) -> Any:
        raise NotImplementedError

    async def _run(self, operation: str, name: str, keys: QueueKeys, args: list[Any]) -> Any:
        raise NotImplementedError

    async def _read_records(
        self, keys: QueueKeys, pairs: Iterable[tuple[str, bytes | None]]
    ) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    # -- cron ------------------------------------------------------------------------------------

    async def add_cron(self, queue_name: str, deterministic_id: str, task_cron: dict[str, Any]) -> bool:
        keys = self._keys(queue_name)
        client = self._require()
        body = _json(task_cron, "cron definition")
        with translate_errors("add_cron", self.safe_url):
            return bool(await client.hsetnx(keys.crons, str(deterministic_id), body))

    async def delete_cron(self, queue_name: str, deterministic_id: str) -> bool:
        """The definition and its waiting occurrences, in one script (``lua/delete_cron.lua``)."""
        keys = self._keys(queue_name)
        return bool(await self._run("delete_cron", "delete_cron", keys, [str(deterministic_id)]))

    async def get_crons(self, queue_name: str) -> list[dict[str, Any]]:
        keys = self._keys(queue_name)
        client = self._require()
        with translate_errors("get_crons", self.safe_url):
            values = await client.hvals(keys.crons)
        return [json.loads(v) for v in values]

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
        check_rate_limit(max_rate, rate_period, strategy)
        args = [strategy, str(key), int(max_rate), float(rate_period) * 1000.0, str(task_id)]
        wait = float(await self._run("acquire_rate_limit", "rate_limit", self._keys(queue_name), args))
        return None if wait < 0 else wait / 1000.0

    # -- workflows -------------------------------------------------------------------------------

    async def store_workflow(
        self, queue_name: str, workflow_data: dict[str, Any], *, if_version: int | None = None
    ) -> bool:
        keys = self._keys(queue_name)
        if not isinstance(workflow_data, dict):
            raise BackendInputError("a workflow record must be a dict")
        workflow_id = task_id_of(workflow_data)
        record = {**workflow_data, "id": workflow_id}
        try:
            version = int(record.get("version") or 0)
        except (TypeError, ValueError):
            raise BackendInputError(f"workflow {workflow_id}: 'version' must be an integer") from None
        finished = record.get("finished_at") is not None or record.get("completed") is True
        pending = [str(t) for t in record.get("pending_task_ids") or []]
        args = [
            workflow_id,
            _json(record, "workflow record"),
            "" if if_version is None else int(if_version),
            version,
            "1" if finished else "0",
            *pending,
        ]
        return bool(await self._run("store_workflow", "store_workflow", keys, args))

    async def get_workflows(self, queue_name: str, workflow_ids: list[str]) -> dict[str, dict[str, Any]]:
        keys = self._keys(queue_name)
        client = self._require()
        ids = list(dict.fromkeys(str(w) for w in workflow_ids))
        if not ids:
            return {}
        with translate_errors("get_workflows", self.safe_url):
            values = await client.hmget(keys.workflows, ids)
        return {w: json.loads(v) for w, v in zip(ids, values, strict=True) if v is not None}

    async def get_all_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        keys = self._keys(queue_name)
        client = self._require()
        with translate_errors("get_all_workflows", self.safe_url):
            values = await client.hvals(keys.workflows)
        return [json.loads(v) for v in values]

    async def get_pending_workflows(self, queue_name: str) -> list[dict[str, Any]]:
        keys = self._keys(queue_name)
        reply = await self._run("get_pending_workflows", "workflow_ops", keys, ["pending", ""])
        return [json.loads(v) for v in reply]

    async def delete_workflow(self, queue_name: str, workflow_id: str) -> bool:
        keys = self._keys(queue_name)
        return bool(await self._run("delete_workflow", "workflow_ops", keys, ["delete", str(workflow_id)]))

    async def mark_workflow_task_complete(self, queue_name: str, workflow_id: str, task_id: str) -> int:
        keys = self._keys(queue_name)
        args = ["complete", str(workflow_id), str(task_id)]
        return int(await self._run("mark_workflow_task_complete", "workflow_ops", keys, args))

    async def get_workflow_results(self, queue_name: str, workflow_id: str) -> dict[str, dict[str, Any]]:
        keys = self._keys(queue_name)
        reply = await self._run("get_workflow_results", "workflow_results", keys, [str(workflow_id)])
        pairs = ((reply[i].decode("utf-8", "surrogatepass"), reply[i + 1]) for i in range(0, len(reply), 2))
        results: dict[str, dict[str, Any]] = {}
        for record in (await self._read_records(keys, pairs)).values():
            if not is_finished(record):
                continue
            if str(record.get("workflow_id")) == str(workflow_id):
                results[str(record["id"])] = record
        return results


def _json(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise BackendInputError(f"{what} is not JSON-serialisable: {exc}") from exc

