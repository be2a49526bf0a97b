"""``RedisBackend``: the sheppy-core ``Backend`` contract on Redis 7.0+, single node or Cluster.

Data model
----------
Every key of a queue starts with ``<prefix>:{<tag>}:`` (``<tag>``: base64url of the queue name, see
:mod:`sheppy_redis._keys`), so one queue lives in one cluster slot and each operation is ONE Lua script:

==================  ======  =====================================================================
key                 type    holds
==================  ======  =====================================================================
``t:<id>``          HASH    the record: ``r`` = JSON as given; backend-written fields (status, claim,
                            deliveries, ...) as JSON values; ``_fin``/``_rc`` internal. A finished
                            record gets a PEXPIRE of its retention time (TTL).
``ids``             SET     every task id with a record (get_all_tasks, clear)
``q``               ZSET    queued tasks, score = per-queue sequence number (``seq``): append order
``lease``           ZSET    claimed tasks, score = lease expiry (ms, server clock)
``sched``           ZSET    scheduled/retrying tasks, score = due time (ms)
``fin:<status>``    ZSET    finished tasks per status, score = expiry (ms; +inf kept for ever)
``wake``            LIST    wake-up tokens for workers blocked in ``pop`` (BLPOP)
``cron``            HASH    cron id -> JSON
``wf`` / ``wfv``    HASH    workflow id -> JSON / version (compare-and-set without parsing JSON)
``wfp:<wid>``       SET     pending task ids of an unfinished workflow; ``wfo`` SET: unfinished ids
``wft:<wid>``       SET     task ids carrying that workflow_id (``wftk``: which ``wft`` sets exist)
``rl:s:<k>``        ZSET    sliding-window grants (task id -> grant time); ``rl:f:<k>`` HASH: fixed
                            window index and count; ``rlk`` SET: the rate-limit keys in use
==================  ======  =====================================================================

plus ``<prefix>:queues`` (HASH of queue names, for ``list_queues``) and the pub/sub channel
``<prefix>:{<tag>}:done`` (ids of finished tasks).

Why sorted sets rather than the seed's stream + consumer group: the contract wants per-claim leases of
any length that a heartbeat extends and any client can see, expired claims redelivered *before* queued
tasks, and queued tasks that can be cancelled, replaced or peeked by id. With a stream, a lease is the
consumer group's idle time (one length for all, visible only through XPENDING), removing a queued
entry needs its message id, and a claim cannot be made atomic with the record update because
XREADGROUP cannot block inside a script. A ZSET of leases keyed by expiry makes "expired first" one
``ZRANGEBYSCORE``; a ZSET queue scored by a counter keeps FIFO order with O(log n) removal; and the
claim script moves ids and writes the record in one atomic step. Blocking stays on the server: an idle
``pop`` waits in ``BLPOP`` on the ``wake`` list, which the append/re-queue scripts feed (one token per
queued task, at most 64) and the claim script passes on while work is left.

Time: leases, retention and rate-limit windows use the Redis server's clock (``TIME`` inside the
scripts), so workers on hosts with skewed clocks agree. Due times of scheduled tasks are the callers'.

Cron, rate-limit and workflow methods live in :mod:`sheppy_redis._extras`.

Errors: no redis-py exception escapes (see :mod:`sheppy_redis._errors`). redis-py's automatic command
retries are switched off by default: replaying a claim or a unique append whose reply was lost would
lie about what happened; the pool still replaces connections that went stale (e.g. after a restart).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from sheppy_core.backend import (
    BLOCKING_POP,
    CONTRACT_VERSION,
    CRON,
    RATE_LIMIT,
    RESULT_NOTIFY,
    SHARED_STORE,
    TTL,
    WORKFLOWS,
    Backend,
    from_iso,
    is_finished,
    redact_url,
    to_iso,
)
from sheppy_core.exceptions import (
    BackendConnectionError,
    BackendInputError,
    ConfigurationError,
    TaskStateError,
)
from sheppy_redis._batching import ScriptBatcher
from sheppy_redis._config import RedisSettings, check_prefix, parse_redis_url
from sheppy_redis._errors import translate_errors
from sheppy_redis._extras import OptionalCapabilities
from sheppy_redis._keys import QueueKeys
from sheppy_redis._listener import ResultListener
from sheppy_redis._records import decode_record, encode_record, epoch_ms, retention_ms
from sheppy_redis._scripts import script

__all__ = ["RedisBackend"]

DEFAULT_TTL = 30 * 24 * 60 * 60
"""Retention of finished records when nothing else is said: 30 days, as in sheppy 0.0.7."""

_APPEND_CHUNK_RECORDS = 1000  # append.lua unpacks 2 values per record: Lua allows ~8000 at once
_APPEND_CHUNK_BYTES = 16 * 1024 * 1024
_MOVE_BATCH = 1000
_FETCH_BATCH = 500


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RedisBackend(OptionalCapabilities, Backend):
    """Task storage in Redis (redis-py's asyncio client).

    :param url: ``redis://[[user]:password@]host[:port][/db][?options]``, ``rediss://`` (TLS) or
        ``unix:///path/to/redis.sock``; options are described in :mod:`sheppy_redis._config`.
    :param consumer_group: accepted for compatibility with sheppy 0.0.7's ``RedisBackend``; this backend
        has no consumer groups (claims are leases in the store), so it is only kept as an attribute.
    :param ttl: retention of finished records in seconds (None: for ever). Default 30 days.
    :param error_ttl: retention of failed/cancelled/crashed records (``"inherit"``: ``ttl``).
    :param lease: default claim lease in seconds.
    :param prefix: key prefix (no braces).
    :param cluster: use ``RedisCluster`` (also ``?cluster=true`` in the URL).
    :param redis_kwargs: passed on to redis-py (e.g. ``max_connections=50``, ``socket_timeout=5``).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix")
    contract_version: ClassVar[int] = CONTRACT_VERSION
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {BLOCKING_POP, RESULT_NOTIFY, RATE_LIMIT, CRON, TTL, WORKFLOWS, SHARED_STORE}
    )

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        consumer_group: str = "workers",
        ttl: float | None = DEFAULT_TTL,
        *,
        error_ttl: float | str | None = "inherit",
        lease: float | None = None,
        prefix: str | None = None,
        cluster: bool | None = None,
        **redis_kwargs: Any,
    ) -> None:
        settings = parse_redis_url(url)
        self.url = url
        self.safe_url = redact_url(url)
        self.consumer_group = consumer_group
        self.ttl: float | None = settings.ttl if settings.ttl_given else ttl
        self.error_ttl = error_ttl if settings.error_ttl == "inherit" else settings.error_ttl
        lease = lease if lease is not None else settings.lease
        if lease is not None:
            if not lease > 0:
                raise ConfigurationError(f"lease must be > 0 seconds, got {lease}")
            self.lease_duration = float(lease)
        self.prefix = check_prefix(prefix) if prefix is not None else settings.prefix
        self.cluster = settings.cluster if cluster is None else cluster
        self.redis_kwargs = redis_kwargs
        self._settings = settings
        self._client: Any = None
        self._listener: ResultListener | None = None
        self._pubsub_pool: ConnectionPool | None = None  # cluster only: the pub/sub node's pool
        self._batcher: ScriptBatcher | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build from a URL (no I/O); ``ConfigurationError`` names what is wrong with it."""
        return cls(url)

    def __repr__(self) -> str:
        mode = "cluster" if self.cluster else "single"
        return f"<RedisBackend {self.safe_url} prefix={self.prefix!r} {mode}>"

    # -- connection ------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._client is not None

    def _build_client(self, settings: RedisSettings) -> Any:
        kwargs: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), **self.redis_kwargs}
        kwargs["decode_responses"] = False  # records are read as bytes and parsed by json
        if self.cluster:
            return RedisCluster.from_url(settings.redis_url, **kwargs)
        return Redis.from_url(settings.redis_url, **kwargs)

    def _make_pubsub(self) -> Any:
        if isinstance(self._client, RedisCluster):
            # Classic PUBLISH reaches subscribers on every node, so one plain connection to any node
            # serves all queues.
            node = self._client.get_default_node()
            pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
            self._pubsub_pool = pool
            return Redis(connection_pool=pool).pubsub(ignore_subscribe_messages=False)
        return self._client.pubsub(ignore_subscribe_messages=False)

    async def connect(self) -> None:
        if self._client is not None:
            return
        client = None
        try:
            with translate_errors("connect", self.safe_url):
                client = self._build_client(self._settings)
                if isinstance(client, RedisCluster):
                    await client.initialize()
                await client.ping()
        except BaseException:
            if client is not None:
                await _close_quietly(client)
            raise
        self._client = client
        self._listener = ResultListener(self._make_pubsub)
        self._batcher = ScriptBatcher(client, cluster=isinstance(client, RedisCluster))

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        listener, self._listener = self._listener, None
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.close()
        if listener is not None:
            await listener.close()
        pool, self._pubsub_pool = self._pubsub_pool, None
        if pool is not None:
            await pool.disconnect()
        if client is not None:
            await _close_quietly(client)

    async def server_info(self) -> dict[str, Any]:
        client = self._require()
        with translate_errors("server_info", self.safe_url):
            info = await client.info("server")
        if "redis_version" not in info:  # a cluster may answer per node
            info = next((v for v in info.values() if isinstance(v, dict)), {})
        version = info.get("redis_version")
        return {
            "server_version": version.decode() if isinstance(version, bytes) else version,
            "cluster": self.cluster,
            "prefix": self.prefix,
        }

    def _require(self) -> Any:
        if self._client is None:
            raise BackendConnectionError(f"RedisBackend for {self.safe_url} is not connected; call connect()")
        return self._client

    def _keys(self, queue_name: str) -> QueueKeys:
        return QueueKeys.for_queue(self.prefix, queue_name)

    @property
    def _registry(self) -> str:
        return f"{self.prefix}:queues"

    def _registry_args(self, keys: QueueKeys) -> tuple[list[str], list[Any]]:
        """Keys and leading args that make a script register the queue name; on a cluster the registry
        is in another slot, so the caller writes it separately (see ``_register``)."""
        if self.cluster:
            return [keys.ids], [keys.base, "", keys.name]
        return [keys.ids, self._registry], [keys.base, self._registry, keys.name]

    async def _register(self, client: Any, keys: QueueKeys) -> None:
        # Before the script: if this fails, nothing was stored and the caller is told so; a queue
        # registered without tasks only shows in list_queues with size 0.
        if self.cluster:
            await client.hset(self._registry, keys.name, "1")

    async def _run(self, operation: str, name: str, keys: QueueKeys, args: list[Any]) -> Any:
        client = self._require()
        with translate_errors(operation, self.safe_url):
            return await script(name).run(client, [keys.ids], [keys.base, *args])

    # -- enqueue ---------------------------------------------------------------------------------

    async def append(self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True) -> list[bool]:
        client = self._require()
        keys = self._keys(queue_name)
        if not tasks:
            return []
        packed = [encode_record(t, self.ttl, self.error_ttl).packed() for t in tasks]
        script_keys, head = self._registry_args(keys)
        head = [head[0], "1" if unique else "0", *head[1:]]
        chunks: list[list[bytes]] = [[]]
        size = 0
        for item in packed:
            if len(chunks[-1]) >= _APPEND_CHUNK_RECORDS or size >= _APPEND_CHUNK_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += len(item)
        flat_args = [[*head, b"".join(chunk)] for chunk in chunks]
        append_script = script("append")
        with translate_errors("append", self.safe_url):
            await self._register(client, keys)
            if len(chunks) == 1:
                replies = [await append_script.run(client, script_keys, flat_args[0])]
            else:
                # One round trip for every chunk, in order on one connection (FIFO across chunks).
                pipe = client.pipeline(transaction=False)
                for args in flat_args:
                    append_script.queue_eval(pipe, script_keys, args)
                replies = await pipe.execute()
        # Each reply is one '0'/'1' character per record (cheaper to read than a list of integers).
        return [flag == 0x31 for reply in replies for flag in reply]

    async def schedule(
        self, queue_name: str, task_data: dict[str, Any], at: datetime, unique: bool = True
    ) -> bool:
        if at.tzinfo is None:
            raise BackendInputError("schedule() needs an aware datetime for 'at'")
        client = self._require()
        keys = self._keys(queue_name)
        item = encode_record(task_data, self.ttl, self.error_ttl)
        script_keys, head = self._registry_args(keys)
        due = [epoch_ms(at), json.dumps(to_iso(at))]
        args = [head[0], "1" if unique else "0", *head[1:], *item.args(), *due]
        with translate_errors("schedule", self.safe_url):
            await self._register(client, keys)
            stored = await script("schedule").run(client, script_keys, args)
        return bool(stored)

    # -- claim -----------------------------------------------------------------------------------

    async def pop(
        self,
        queue_name: str,
        limit: int = 1,
        timeout: float | None = None,
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[dict[str, Any]]:
        if limit < 1:
            raise BackendInputError(f"pop() limit must be >= 1, got {limit}")
        keys = self._keys(queue_name)
        duration = self.lease_duration if lease is None else lease
        if duration < 0:
            raise BackendInputError(f"lease must be >= 0 seconds, got {duration}")
        claim_args = [limit, json.dumps(worker_id or self.client_id), int(duration * 1_000_000)]
        deadline = None if timeout is None or timeout <= 0 else time.monotonic() + timeout
        while True:
            reply = await self._run("pop", "pop", keys, claim_args)
            wait_ms, _, claimed = reply.partition(b"\n")
            records: list[dict[str, Any]] = json.loads(claimed)
            if records or deadline is None:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            # Sleep on the server until a token arrives or, at the latest, until the earliest live
            # lease expires (an expired lease is claimable but nobody pushes a token for it).
            lease_wait = float(wait_ms) / 1000.0
            block = remaining if lease_wait < 0 else min(remaining, lease_wait + 0.001)
            await self._block_on_wake(keys, block)

    async def _block_on_wake(self, keys: QueueKeys, seconds: float) -> None:
        client = self._require()
        socket_timeout = self._socket_timeout()
        if socket_timeout is not None:
            seconds = min(seconds, max(socket_timeout - 0.1, 0.01))
        with translate_errors("pop", self.safe_url):
            # BLPOP takes a connection of its own from the pool for as long as it blocks. Its timeout
            # is in seconds with decimals (Redis >= 6); 0 would mean "for ever", hence the floor.
            await client.blpop([keys.wake], timeout=max(seconds, 0.001))

    def _socket_timeout(self) -> float | None:
        value = self.redis_kwargs.get("socket_timeout", self._settings.redis_options.get("socket_timeout"))
        return float(value) if value is not None else None

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        return bool(await self._run("acknowledge", "acknowledge", self._keys(queue_name), [task_id]))

    async def heartbeat(
        self,
        queue_name: str,
        task_ids: list[str],
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[str]:
        keys = self._keys(queue_name)
        if not task_ids:
            self._require()
            return []
        duration = self.lease_duration if lease is None else lease
        args = [json.dumps(worker_id or self.client_id), int(duration * 1_000_000), *task_ids]
        held = await self._run("heartbeat", "heartbeat", keys, args)
        return [h.decode() for h in held]

    # -- results ---------------------------------------------------------------------------------

    async def store_result(self, queue_name: str, task_data: dict[str, Any]) -> bool:
        keys = self._keys(queue_name)
        item = encode_record(task_data, self.ttl, self.error_ttl)
        if item.finished:
            retention = retention_ms(item.record, self.ttl, self.error_ttl)
            mode, arg = "finished", f"{item.finished_bucket()} {retention}"
        elif item.record.get("status") in ("retrying", "scheduled"):
            mode, arg = "scheduled", str(item.due_ms())
        else:
            mode, arg = "queued", ""
        self._require()
        assert self._batcher is not None
        # Results of concurrently running tasks share one script call (see _batching).
        with translate_errors("store_result", self.safe_url):
            stored = self._batcher.run_merged(
                script("store_result"), [keys.ids], keys.base, [*item.args(), mode, arg]
            )
            return bool((await stored) == 0x31)  # this record's byte of the reply, b"1"[0]: stored

    async def get_results(
        self, queue_name: str, task_ids: list[str], timeout: float | None = None
    ) -> dict[str, dict[str, Any]]:
        keys = self._keys(queue_name)
        self._require()
        if not task_ids:
            return {}
        wanted = list(dict.fromkeys(task_ids))
        done_now = await self._finished(keys, wanted)
        if timeout is None or timeout < 0 or len(done_now) == len(wanted):
            return done_now
        listener = self._listener
        assert listener is not None
        try:
            async with asyncio.timeout(None if timeout == 0 else timeout):
                with translate_errors("get_results", self.safe_url):
                    pending = {t for t in wanted if t not in done_now}
                    async with listener.watch(keys.done_channel, pending) as waiter:
                        # Read again once subscribed: a task may have finished in between.
                        found = done_now
                        while True:
                            waiter.event.clear()
                            missing = [t for t in wanted if t not in found]
                            found.update(await self._finished(keys, missing))
                            if len(found) == len(wanted):
                                return {t: found[t] for t in wanted}
                            waiter.ids = {t for t in wanted if t not in found}
                            await waiter.event.wait()
        except TimeoutError:
            raise TimeoutError(
                f"task(s) of queue {queue_name!r} did not finish within {timeout} s"
            ) from None

    async def _finished(self, keys: QueueKeys, ids: list[str]) -> dict[str, dict[str, Any]]:
        records = await self._fetch(keys, ids)
        return {t: r for t, r in records.items() if is_finished(r)}

    async def _fetch(self, keys: QueueKeys, ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), _FETCH_BATCH):
            reply = await self._run("get_tasks", "get_tasks", keys, chunk)
            for task_id, flat in zip(chunk, reply, strict=True):
                record = decode_record(flat)
                if record is not None:
                    found[task_id] = record
        return found

    # -- inspection ------------------------------------------------------------------------------

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        keys = self._keys(queue_name)
        self._require()
        return await self._fetch(keys, [str(t) for t in task_ids])

    async def get_all_tasks(self, queue_name: str) -> list[dict[str, Any]]:
        keys = self._keys(queue_name)
        ids = await self._run("get_all_tasks", "get_all_ids", keys, [])
        records = await self._fetch(keys, [i.decode("utf-8", "surrogatepass") for i in ids])
        return list(records.values())

    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        if count < 1:
            raise BackendInputError(f"get_pending() count must be >= 1, got {count}")
        reply = await self._run("get_pending", "get_range", self._keys(queue_name), ["q", count])
        return [r for r in map(decode_record, reply) if r is not None]

    async def get_scheduled(self, queue_name: str) -> list[dict[str, Any]]:
        reply = await self._run("get_scheduled", "get_range", self._keys(queue_name), ["sched", -1])
        return [r for r in map(decode_record, reply) if r is not None]

    async def next_scheduled_at(self, queue_name: str) -> datetime | None:
        keys = self._keys(queue_name)
        client = self._require()
        with translate_errors("next_scheduled_at", self.safe_url):
            head = await client.zrange(keys.scheduled, 0, 0, withscores=True)
        if not head:
            return None
        record = (await self._fetch(keys, [head[0][0].decode("utf-8", "surrogatepass")])).values()
        for found in record:
            # The record's own due time, exact to the microsecond (the score is a float of ms).
            value = found.get("next_retry_at") if found.get("status") == "retrying" else None
            value = value or found.get("scheduled_at")
            if value:
                return from_iso(value)
        return datetime.fromtimestamp(head[0][1] / 1000.0, UTC)

    async def size(self, queue_name: str) -> int:
        keys = self._keys(queue_name)
        client = self._require()
        with translate_errors("size", self.safe_url):
            return int(await client.zcard(keys.queued))

    async def get_stats(self, queue_name: str) -> dict[str, int]:
        counts = await self._run("get_stats", "stats", self._keys(queue_name), [])
        names = ("pending", "processing", "scheduled", "completed", "failed", "cancelled", "crashed")
        return {name: int(count) for name, count in zip(names, counts, strict=True)}

    async def list_queues(self) -> dict[str, int]:
        client = self._require()
        with translate_errors("list_queues", self.safe_url):
            names = sorted(n.decode("utf-8", "surrogatepass") for n in await client.hkeys(self._registry))
            if not names:
                return {}
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.zcard(self._keys(name).queued)
            sizes = await pipe.execute()
        return {name: int(size) for name, size in zip(names, sizes, strict=True)}

    async def clear(self, queue_name: str) -> int:
        keys = self._keys(queue_name)
        client = self._require()
        script_keys, args = self._registry_args(keys)
        with translate_errors("clear", self.safe_url):
            removed = await script("clear").run(client, script_keys, args)
            if self.cluster:
                await client.hdel(self._registry, keys.name)
        return int(removed)

    # -- scheduling ------------------------------------------------------------------------------

    async def pop_scheduled(self, queue_name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        if now is not None and now.tzinfo is None:
            raise BackendInputError("pop_scheduled() needs an aware datetime for 'now'")
        keys = self._keys(queue_name)
        moment = "" if now is None else epoch_ms(now)
        moved: list[dict[str, Any]] = []
        while True:
            reply = await self._run("pop_scheduled", "pop_scheduled", keys, [moment, _MOVE_BATCH])
            moved.extend(r for r in map(decode_record, reply) if r is not None)
            if len(reply) < _MOVE_BATCH:
                return moved

    # -- cancel / delete -------------------------------------------------------------------------

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        reply = await self._run("cancel", "cancel", self._keys(queue_name), [str(task_id)])
        return decode_record(reply)

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        reply = await self._run("delete_task", "delete_task", self._keys(queue_name), [str(task_id)])
        if isinstance(reply, bytes):
            raise TaskStateError(
                f"task {task_id} is not finished (status {json.loads(reply)!r}); "
                "only finished tasks can be deleted"
            )
        return bool(reply)


async def _close_quietly(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:
        # Closing a client whose server is gone may raise; the connections are dropped regardless.
        return
