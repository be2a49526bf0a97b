"""The worker registry on Redis (capability ``WORKER_REGISTRY``).

Two keys for the whole store, not per queue (a worker may serve several): ``<prefix>:{workers}:w``, a
HASH of worker id -> the record's JSON as given, and ``<prefix>:{workers}:exp``, a ZSET of worker id ->
expiry in ms on the Redis server's clock (so workers on skewed hosts agree). The hash tag puts both in
one cluster slot; ``lua/workers.lua`` removes expired workers in the same step as every operation, and
gives both keys a TTL as long as the last live worker's, so a registry nobody uses any more vanishes.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sheppy_core.exceptions import BackendInputError
from sheppy_redis._errors import translate_errors
from sheppy_redis._records import encode_json
from sheppy_redis._scripts import script

__all__ = ["WorkerRegistry"]


class WorkerRegistry:
    """Mixin of :class:`RedisBackend` (which provides the plumbing declared here)."""

    prefix: str
    safe_url: str

    def _require(self) -> Any:
        raise NotImplementedError

    def _worker_keys(self) -> list[str]:
        return [f"{self.prefix}:{{workers}}:w", f"{self.prefix}:{{workers}}:exp"]

    async def _workers(self, operation: str, args: list[Any]) -> Any:
        client = self._require()
        with translate_errors(operation, self.safe_url):
            return await script("workers").run(client, self._worker_keys(), args)

    async def register_worker(self, worker: dict[str, Any], *, ttl: float) -> None:
        if not isinstance(worker, dict) or not isinstance(worker.get("id"), str) or not worker["id"]:
            raise BackendInputError(f"register_worker() needs a record with a string 'id', got {worker!r}")
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
            raise BackendInputError(f"register_worker() ttl must be a number of seconds > 0, got {ttl!r}")
        body = encode_json(worker)
        await self._workers("register_worker", ["register", worker["id"], body, ttl * 1000.0])

    async def unregister_worker(self, worker_id: str) -> bool:
        if not isinstance(worker_id, str) or not worker_id:
            raise BackendInputError(f"unregister_worker() needs a worker id string, got {worker_id!r}")
        return bool(await self._workers("unregister_worker", ["unregister", worker_id]))

    async def list_workers(self) -> list[dict[str, Any]]:
        flat = await self._workers("list_workers", ["list"])
        by_id = {flat[i].decode("utf-8", "surrogatepass"): flat[i + 1] for i in range(0, len(flat), 2)}
        return [json.loads(by_id[worker_id]) for worker_id in sorted(by_id)]
