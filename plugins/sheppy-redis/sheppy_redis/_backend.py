"""``RedisBackend``: the sheppy-core ``Backend`` contract on Redis 7.0+, single node or Cluster.

Data model
----------
Every key of a queue starts with ``<prefix>:{<tag>}:`` (``<tag>``: base64url of the queue name, see
:mod:`sheppy_redis._keys`), so one queue lives in one cluster slot and each operation is ONE Lua script:

==================  ======  =====================================================================
key                 type    holds
==================  ======  =====================================================================
``t:<id>``          HASH    the record: ``r`` = JSON as given; backend-written fields (status, claim,
                            deliveries, ...) as JSON values; ``_fin``/``_rc``/``_undo`` internal. A
                            finished record gets a PEXPIRE of its retention time (TTL).
``ids``             SET     every task id with a record (get_all_tasks, clear)
``q``               ZSET    queued tasks, score = per-queue sequence number (``seq``): append order
``lease``           ZSET    claimed tasks, score = lease expiry (ms, server clock)
``sched``           ZSET    scheduled/retrying tasks, score = due time (ms)
``fin:<status>``    ZSET    finished tasks per status, score = expiry (ms; +inf kept for ever)
``wake``            LIST    wake-up tokens for workers blocked in ``pop`` (BLPOP)
``cron``            HASH    cron id -> JSON
``co:<cid>``        SET     ids of occurrences of cron ``cid`` scheduled (pruned as they leave the
                            schedule); ``crok`` SET: which ``co`` sets exist
``wf`` / ``wfv``    HASH    workflow id -> JSON / version (compare-and-set without parsing JSON)
``wfp:<wid>``       SET     pending task ids of an unfinished workflow; ``wfo`` SET: unfinished ids
``wft:<wid>``       SET     task ids carrying that workflow_id (``wftk``: which ``wft`` sets exist)
``rl:s:<k>``        ZSET    sliding-window starts, made or reserved (task id -> time); ``rl:fw:<k>``
                            STRING: when the current fixed window began, ``rl:fs:<k>`` ZSET: its
                            starts; ``rlk`` SET: the rate-limit keys in use
``ls``, ``ls:<set>``  ZSET    the listing index (list_tasks): members ``<listing key hex><id>``, score 0;
``lf:<func>``               all records, per status set, per spec.func; ``lm`` HASH id -> listing key
                            and func; ``lfk`` SET of funcs; ``lsv``: all records indexed (_listing)
==================  ======  =====================================================================

plus ``<prefix>:queues`` (HASH of queue names, for ``list_queues``) and the pub/sub channel
``<prefix>:{<tag>}:done`` (ids of finished tasks; an empty message per adding call, for ``wait_for_change``).

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

Cancelled pops (a worker's graceful stop): when the caller is cancelled, the claim script may already
have run on the server with its reply still on the way. The script call is therefore shielded; once its
reply is in, what it claimed is handed back (``hand_back.lua``: each task to where it was, its claim
fields and ``deliveries`` as before, from the ``_undo`` field the claim wrote), before the cancellation
goes on. A cancelled ``BLPOP`` may have taken a wake-up token nobody uses, so the tokens are topped up.

Blocking waits and socket timeouts: ``BLPOP`` runs on a client of its own whose connections have no
socket timeout (redis-py's default of 5 s would race a 5 s wait); the wait bounds its read itself, to
the blocking time plus the socket timeout in force (the user's ``socket_timeout`` or redis-py's
default, at least ``_MIN_REPLY_GRACE``), so a server that stops answering is still reported.

Time: leases, retention and rate-limit windows use the Redis server's clock (``TIME`` inside the
scripts), so workers on hosts with skewed clocks agree. Due times of scheduled tasks are the callers'.

Cron, rate-limit and workflow methods live in :mod:`sheppy_redis._extras`; ``list_tasks`` in
:mod:`sheppy_redis._listing`; the worker registry in :mod:`sheppy_redis._workers`.

Errors: no redis-py exception escapes (see :mod:`sheppy_redis._errors`). redis-py's automatic command
retries are switched off by default: replaying a claim or a unique append whose reply was lost would
lie about what happened; the pool still replaces connections that went stale (e.g. after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio import connection as redis_connection
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from sheppy_core.backend import (
    BLOCKING_POP,
    CHANGE_FEED,
    CONTRACT_VERSION,
    CRON,
    DEFAULT_TTL_SECONDS,
    RATE_LIMIT,
    RESULT_NOTIFY,
    SHARED_STORE,
    STATS_KEYS,
    TASK_PAGES,
    TTL,
    WORKER_REGISTRY,
    WORKFLOWS,
    Backend,
    check_aware,
    check_count,
    check_no_connection,
    check_seconds,
    check_task_id,
    check_task_ids,
    decode_record,
    from_iso,
    is_finished,
    is_quarantined,
    record_to_json,
    redact_url,
    to_iso,
    unfinished_delete_error,
)
from sheppy_core.exceptions import (
    BackendConnectionError,
    BackendInputError,
    ConfigurationError,
    CorruptRecordError,
)
from sheppy_redis._batching import ScriptBatcher
from sheppy_redis._config import RedisOptions, check_prefix, parse_url, without_option
from sheppy_redis._errors import translate_errors
from sheppy_redis._extras import OptionalCapabilities
from sheppy_redis._keys import QueueKeys
from sheppy_redis._listener import ResultListener
from sheppy_redis._listing import TaskListing
from sheppy_redis._records import (
    encode_record,
    epoch_ms,
    index_fields,
    listed_status,
    read_record,
    retention_ms,
)
from sheppy_redis._scripts import script
from sheppy_redis._workers import WorkerRegistry

__all__ = ["RedisBackend"]

DEFAULT_TTL = DEFAULT_TTL_SECONDS
"""Retention of finished records when nothing else is said: 30 days, as in sheppy 0.0.7 and as every
bundled backend (:data:`sheppy_core.backend.DEFAULT_TTL_SECONDS`)."""

_APPEND_CHUNK_RECORDS = 1000  # append.lua unpacks 2 values per record: Lua allows ~8000 at once
_APPEND_CHUNK_BYTES = 16 * 1024 * 1024
_MOVE_BATCH = 1000
_FETCH_BATCH = 500
_MIN_REPLY_GRACE = 1.0
"""Seconds a blocking wait's reply may take beyond the blocking time, at the least (a loaded host)."""

logger = logging.getLogger(__name__)
_records_logger = logging.getLogger("sheppy.backend")
"""Where a record set aside as unreadable is reported ([robust.corrupt_record])."""


def _redis_default_socket_timeout() -> float | None:
    """redis-py's own default ``socket_timeout`` (5 s in redis-py 5 to 8), read from its signature."""
    default = inspect.signature(redis_connection.AbstractConnection.__init__).parameters["socket_timeout"]
    value = default.default
    return float(value) if isinstance(value, int | float) else None


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RedisBackend(TaskListing, WorkerRegistry, OptionalCapabilities, Backend):
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
        {BLOCKING_POP, RESULT_NOTIFY, RATE_LIMIT, CRON, TTL, WORKFLOWS, SHARED_STORE, TASK_PAGES,
         WORKER_REGISTRY, CHANGE_FEED}
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
        settings = parse_url(url)
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
        self._waits_client: Any = None  # BLPOP only: connections without a socket timeout
        self._background: set[asyncio.Task[Any]] = set()
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

    def _build_client(self, settings: RedisOptions, *, for_waits: bool = False) -> Any:
        kwargs: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), **self.redis_kwargs}
        kwargs["decode_responses"] = False  # records are read as bytes and parsed by json
        url = settings.redis_url
        if for_waits:
            # The blocking wait bounds its read itself (_block_on_wake); a socket timeout would cut it.
            kwargs["socket_timeout"] = None
            url = without_option(url, "socket_timeout")  # the URL's options win over keywords
        if self.cluster:
            return RedisCluster.from_url(url, **kwargs)
        return Redis.from_url(url, **kwargs)

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
        self._waits_client = self._build_client(self._settings, for_waits=True)  # connects when used
        self._listener = ResultListener(self._make_pubsub)
        self._batcher = ScriptBatcher(client, cluster=isinstance(client, RedisCluster))

    async def disconnect(self) -> None:
        if self._background:
            # Hand-backs of cancelled pops still on their way: let them land first.
            await asyncio.gather(*self._background, return_exceptions=True)
        client, self._client = self._client, None
        waits_client, self._waits_client = self._waits_client, None
        listener, self._listener = self._listener, None
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.close()
        if listener is not None:
            await listener.close()
        pool, self._pubsub_pool = self._pubsub_pool, None
        if pool is not None:
            await pool.disconnect()
        if waits_client is not None:
            await _close_quietly(waits_client)
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

    async def append(
        self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *, connection: object = None
    ) -> list[bool]:
        check_no_connection(self, connection)
        client = self._require()
        keys = self._keys(queue_name)
        if not tasks:
            return []
        stored_at = datetime.now(UTC)
        packed = [encode_record(t, self.ttl, self.error_ttl).packed(stored_at) for t in tasks]
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
        self,
        queue_name: str,
        task_data: dict[str, Any],
        at: datetime,
        unique: bool = True,
        *,
        connection: object = None,
    ) -> bool:
        check_no_connection(self, connection)
        check_aware(at, "at", "schedule")
        client = self._require()
        keys = self._keys(queue_name)
        item = encode_record(task_data, self.ttl, self.error_ttl)
        script_keys, head = self._registry_args(keys)
        due = [epoch_ms(at), json.dumps(to_iso(at))]
        # A cron occurrence is indexed under its cron, so delete_cron finds it without a scan.
        cron_id = item.record.get("cron_id")
        args = [head[0], "1" if unique else "0", *head[1:], *item.args(), *due,
                "" if cron_id is None else str(cron_id), *index_fields(item.record, datetime.now(UTC))]
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
        check_count(limit, "limit", "pop")
        keys = self._keys(queue_name)
        duration = self.lease_duration if lease is None else lease
        if duration < 0:
            raise BackendInputError(f"lease must be >= 0 seconds, got {duration}")
        owner = json.dumps(worker_id or self.client_id)
        claim_args: list[Any] = [limit, owner, int(duration * 1_000_000)]
        deadline = None if timeout is None or timeout <= 0 else time.monotonic() + timeout
        while True:
            reply = await self._claim(keys, claim_args)
            wait_ms, ids, claimed = _split_claim(reply)
            read = _read_claimed(ids, claimed)
            records: list[dict[str, Any]] = [] if read is None else read
            if read is None:
                # Some record cannot be read as a task (rare): set it aside, keep the good ones.
                # Shielded like the claim: a caller cancelled meanwhile gets the good ones handed back.
                sorting = asyncio.ensure_future(self._sort_claimed(keys, ids, owner))
                try:
                    records, set_aside = await asyncio.shield(sorting)
                except asyncio.CancelledError:
                    await self._settle(self._hand_back_sorted(keys, sorting, owner))
                    raise
                if set_aside and not records:
                    continue  # good tasks may wait behind it: claim on at once
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

    async def _claim(self, keys: QueueKeys, claim_args: list[Any]) -> bytes:
        """Run the claim script; if the caller is cancelled meanwhile, hand back what it claimed."""
        attempt = asyncio.ensure_future(self._run("pop", "pop", keys, claim_args))
        try:
            reply: bytes = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The script may have run (or still run) on the server with nobody left to read its reply.
            await self._settle(self._hand_back(keys, attempt, claim_args[1]))
            raise
        return reply

    async def _hand_back(self, keys: QueueKeys, attempt: asyncio.Future[bytes], owner: str) -> None:
        try:
            reply = await attempt
        except Exception:
            # No reply (the connection broke): whatever the script claimed returns after its lease.
            return
        _, ids, claimed = _split_claim(reply)
        records = _read_claimed(ids, claimed)
        if records is None:
            # A record that cannot be read as a task among them: set it aside, hand back the rest.
            records, _ = await self._sort_claimed(keys, ids, owner)
        await self._give_back(keys, records, owner)

    async def _hand_back_sorted(
        self, keys: QueueKeys, sorting: asyncio.Future[tuple[list[dict[str, Any]], int]], owner: str
    ) -> None:
        try:
            records, _ = await sorting
        except Exception:
            return  # no reply: what was claimed returns after its lease
        await self._give_back(keys, records, owner)

    async def _give_back(self, keys: QueueKeys, records: list[dict[str, Any]], owner: str) -> None:
        """Undo this claim of ``records`` exactly (position, status, delivery count): nobody got them."""
        if not records:
            return
        args: list[Any] = [owner, json.dumps(records[0]["lease_expires_at"])]
        for record in records:
            args += [record["id"], record["deliveries"]]
        try:
            await self._run("pop", "hand_back", keys, args)
        except Exception as exc:
            logger.warning(
                "could not hand back %d task(s) of queue %r claimed by a cancelled pop (%s); "
                "they return after their lease", len(records), keys.name, exc,
            )

    async def _sort_claimed(
        self, keys: QueueKeys, ids: list[str], owner: str
    ) -> tuple[list[dict[str, Any]], int]:
        """The records a claim returned when some cannot be read as tasks: the good ones, and how many
        others were quarantined ([robust.corrupt_record]: stored as their quarantine records, finished,
        out of the claims, each logged). A record no longer held by this claim is left to its holder."""
        reply = await self._run("pop", "get_tasks", keys, ids)
        good: list[dict[str, Any]] = []
        unreadable: dict[str, bytes] = {}
        for task_id, text in zip(ids, reply, strict=True):
            if text is None:
                continue  # deleted since the claim
            record = read_record(text, task_id)
            if record is None:
                unreadable[task_id] = text
            else:
                good.append(record)
        if not unreadable:
            return good, 0
        stand_ins = await self._stand_ins(keys, unreadable)
        args: list[Any] = [owner]
        for task_id, stand_in in stand_ins.items():
            args += [task_id, record_to_json(stand_in), retention_ms(stand_in, self.ttl, self.error_ttl)]
        flags = await self._run("pop", "quarantine", keys, args)
        for (task_id, stand_in), flag in zip(stand_ins.items(), flags, strict=True):
            if flag == 0x31:
                reason = stand_in["quarantine"]["reason"]
                _records_logger.warning("%s", CorruptRecordError(keys.name, task_id, reason))
        return good, len(stand_ins)

    async def _read_records(
        self, keys: QueueKeys, pairs: Iterable[tuple[str, bytes | None]]
    ) -> dict[str, dict[str, Any]]:
        """Records by id from (id, record JSON or None) pairs of a script's reply, missing ones left
        out. One that cannot be read as a task is handed out as its quarantine record, built from the
        stored body (one more round trip, only then: [robust.corrupt_record])."""
        found: dict[str, dict[str, Any]] = {}
        unreadable: dict[str, bytes] = {}
        for task_id, text in pairs:
            if text is None:
                continue
            record = read_record(text, task_id)
            if record is None:
                unreadable[task_id] = text
                found[task_id] = {}  # keeps its place in the order; replaced below
            else:
                found[task_id] = record
        if unreadable:
            found.update(await self._stand_ins(keys, unreadable))
        return found

    async def _stand_ins(self, keys: QueueKeys, unreadable: dict[str, bytes]) -> dict[str, dict[str, Any]]:
        """Quarantine records of records that could not be read, keeping their stored bodies."""
        stand_ins: dict[str, dict[str, Any]] = {}
        ids = list(unreadable)
        for chunk in _chunks(ids, _FETCH_BATCH):
            bodies = await self._run("get_tasks", "get_raw", keys, chunk)
            for task_id, body in zip(chunk, bodies, strict=True):
                stand_in = decode_record(body, task_id)
                if not is_quarantined(stand_in):
                    # The body reads well but a field the backend keeps next to it does not.
                    stand_in = decode_record(unreadable[task_id], task_id)
                stand_ins[task_id] = stand_in
        return stand_ins

    async def _corrupt_body(self, keys: QueueKeys, task_id: str) -> bytes | None:
        """The stored body of ``task_id`` if its record cannot be read as a task (b"" for none)."""
        (text,) = await self._run("delete_task", "get_tasks", keys, [task_id])
        if text is None or read_record(text, task_id) is not None:
            return None
        (body,) = await self._run("delete_task", "get_raw", keys, [task_id])
        return b"" if body is None else bytes(body)

    async def _settle(self, work: Coroutine[Any, Any, None]) -> None:
        """Run clean-up after a cancellation to its end, even if the caller is cancelled once more
        (then it finishes in the background; ``disconnect`` waits for it)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        with contextlib.suppress(Exception):
            await asyncio.shield(task)

    async def _block_on_wake(self, keys: QueueKeys, seconds: float) -> None:
        self._require()
        waits_client = self._waits_client
        # BLPOP's timeout is in seconds with decimals (Redis >= 6); 0 would mean "for ever", hence the
        # floor. Its read may take the blocking time plus the socket timeout, never less.
        seconds = max(seconds, 0.001)
        grace = self._socket_timeout()
        bound = None if grace is None else seconds + max(grace, _MIN_REPLY_GRACE)
        try:
            async with asyncio.timeout(bound):
                with translate_errors("pop", self.safe_url):
                    # BLPOP takes a connection of its own from the pool for as long as it blocks.
                    await waits_client.blpop([keys.wake], timeout=seconds)
        except asyncio.CancelledError:
            # The server may have popped a token for this wait just before the cancel: top the tokens
            # up, or another idle worker could sleep through a task that is waiting.
            await self._settle(self._rewake(keys))
            raise
        except TimeoutError:
            if bound is None:  # not this wait's own bound
                raise
            raise BackendConnectionError(
                f"Redis at {self.safe_url} unreachable during pop: no reply to a {seconds:.3g} s "
                f"blocking wait within {bound:.3g} s"
            ) from None

    async def _rewake(self, keys: QueueKeys) -> None:
        with contextlib.suppress(Exception):
            await self._run("pop", "wake", keys, [])

    def _socket_timeout(self) -> float | None:
        """The socket timeout the connections use: the URL's (it wins in redis-py), the keyword's, or
        redis-py's default; None for no timeout."""
        options = self._settings.redis_options
        if "socket_timeout" in options:
            value = options["socket_timeout"]
        elif "socket_timeout" in self.redis_kwargs:
            value = self.redis_kwargs["socket_timeout"]
        else:
            return _redis_default_socket_timeout()
        return float(value) if value is not None else None

    async def acknowledge(self, queue_name: str, task_id: str) -> bool:
        keys, task_id = self._keys(queue_name), check_task_id(task_id)
        return bool(await self._run("acknowledge", "acknowledge", keys, [task_id]))

    async def heartbeat(
        self,
        queue_name: str,
        task_ids: list[str],
        *,
        worker_id: str | None = None,
        lease: float | None = None,
    ) -> list[str]:
        keys = self._keys(queue_name)
        task_ids = check_task_ids(task_ids)
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
        # The listing index files the record under its new status and func (see _listing).
        listed, func = listed_status(item.record) or "-", item.func()
        if item.finished:
            retention = retention_ms(item.record, self.ttl, self.error_ttl)
            mode, arg = "finished", f"{item.finished_bucket()} {retention} {listed} {func}"
        elif item.record.get("status") in ("retrying", "scheduled"):
            mode, arg = "scheduled", f"{item.due_ms()} {listed} {func}"
        else:
            mode, arg = "queued", func
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
        wanted = list(dict.fromkeys(check_task_ids(task_ids)))
        done_now = await self._finished(keys, wanted)
        if timeout is None or timeout < 0 or len(done_now) == len(wanted):
            return done_now
        listener = self._listener
        assert listener is not None
        loop = asyncio.get_running_loop()
        deadline = None if timeout == 0 else loop.time() + timeout
        try:
            # Every wait gets a timeout of its own, to the one deadline: on Python 3.11 redis-py's
            # writes (through asyncio.wait_for) can swallow the cancellation a timeout fires, and a
            # single timeout round the whole call would then never fire again. (Each timeout wraps
            # translate_errors, which would take the TimeoutError, an OSError, for a lost connection.)
            pending = {t for t in wanted if t not in done_now}
            async with contextlib.AsyncExitStack() as stack:
                async with asyncio.timeout_at(deadline):
                    with translate_errors("get_results", self.safe_url):
                        waiter = await stack.enter_async_context(listener.watch(keys.done_channel, pending))
                # Read again once subscribed: a task may have finished in between.
                found = done_now
                while True:
                    waiter.event.clear()
                    missing = [t for t in wanted if t not in found]
                    async with asyncio.timeout_at(deadline):
                        found.update(await self._finished(keys, missing))
                    if len(found) == len(wanted):
                        return {t: found[t] for t in wanted}
                    waiter.ids = {t for t in wanted if t not in found}
                    async with asyncio.timeout_at(deadline):
                        await waiter.event.wait()
        except TimeoutError:
            raise TimeoutError(
                f"task(s) of queue {queue_name!r} did not finish within {timeout} s"
            ) from None

    async def wait_for_change(self, queue_names: list[str], timeout: float) -> bool:
        """Subscribe the queues' ``done`` channels on the result listener's pub/sub connection (no
        connection of its own) and wait for any message: a finished task's id, or the empty payload
        that ``append``/``schedule``/a requeue publish once per call."""
        seconds = check_seconds(timeout, "timeout", "wait_for_change")
        channels = list(dict.fromkeys(self._keys(name).done_channel for name in queue_names))
        self._require()
        listener = self._listener
        assert listener is not None
        changed = asyncio.Event()
        deadline = asyncio.get_running_loop().time() + seconds
        try:
            # A timeout per step, as in get_results (redis-py's writes can swallow one cancellation).
            async with contextlib.AsyncExitStack() as stack:
                for channel in channels:
                    async with asyncio.timeout_at(deadline):
                        with translate_errors("wait_for_change", self.safe_url):
                            await stack.enter_async_context(
                                listener.watch(channel, set(), event=changed, every=True)
                            )
                # A first subscription's confirmation wakes the channel's waiters (messages may have been
                # lost before it); nothing was lost for this call, which has not read anything yet.
                changed.clear()
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
        except TimeoutError:
            return False
        return True

    async def _finished(self, keys: QueueKeys, ids: list[str]) -> dict[str, dict[str, Any]]:
        records = await self._fetch(keys, ids)
        return {t: r for t, r in records.items() if is_finished(r)}

    async def _fetch(self, keys: QueueKeys, ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), _FETCH_BATCH):
            reply = await self._run("get_tasks", "get_tasks", keys, chunk)
            found.update(await self._read_records(keys, zip(chunk, reply, strict=True)))
        return found

    # -- inspection ------------------------------------------------------------------------------

    async def get_tasks(self, queue_name: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        keys = self._keys(queue_name)
        self._require()
        return await self._fetch(keys, check_task_ids(task_ids))

    async def get_all_tasks(self, queue_name: str) -> list[dict[str, Any]]:
        keys = self._keys(queue_name)
        ids = await self._run("get_all_tasks", "get_all_ids", keys, [])
        records = await self._fetch(keys, [i.decode("utf-8", "surrogatepass") for i in ids])
        return list(records.values())

    async def get_pending(self, queue_name: str, count: int = 1) -> list[dict[str, Any]]:
        check_count(count, "count", "get_pending")
        keys = self._keys(queue_name)
        reply = await self._run("get_pending", "get_range", keys, ["q", count])
        return list((await self._read_records(keys, _pairs(reply))).values())

    async def get_scheduled(self, queue_name: str) -> list[dict[str, Any]]:
        keys = self._keys(queue_name)
        reply = await self._run("get_scheduled", "get_range", keys, ["sched", -1])
        return list((await self._read_records(keys, _pairs(reply))).values())

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
        return {name: int(count) for name, count in zip(STATS_KEYS, counts, strict=True)}

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
        if now is not None:
            check_aware(now, "now", "pop_scheduled")
        keys = self._keys(queue_name)
        moment = "" if now is None else epoch_ms(now)
        moved: list[dict[str, Any]] = []
        while True:
            taken, reply = await self._run("pop_scheduled", "pop_scheduled", keys, [moment, _MOVE_BATCH])
            moved.extend((await self._read_records(keys, _pairs(reply))).values())
            if int(taken) < _MOVE_BATCH:
                return moved

    # -- cancel / delete -------------------------------------------------------------------------

    async def cancel(self, queue_name: str, task_id: str) -> dict[str, Any] | None:
        keys, task_id = self._keys(queue_name), check_task_id(task_id)
        reply = await self._run("cancel", "cancel", keys, [task_id])
        if reply is None:
            return None
        return (await self._read_records(keys, [(task_id, reply)]))[task_id]

    async def delete_task(self, queue_name: str, task_id: str) -> bool:
        keys, task_id = self._keys(queue_name), check_task_id(task_id)
        reply = await self._run("delete_task", "delete_task", keys, [task_id])
        if isinstance(reply, bytes):
            # A record that cannot be read as a task reads as quarantined, so finished: it goes too.
            body = await self._corrupt_body(keys, task_id)
            if body is not None:
                reply = await self._run("delete_task", "delete_task", keys, [task_id, body])
        if isinstance(reply, bytes):
            raise unfinished_delete_error(task_id, json.loads(reply))
        return bool(reply)


def _pairs(flat: list[Any]) -> Iterable[tuple[str, bytes | None]]:
    """(id, record) pairs of a script reply that lists id, record, id, record, ..."""
    for i in range(0, len(flat), 2):
        yield flat[i].decode("utf-8", "surrogatepass"), flat[i + 1]


def _split_claim(reply: bytes) -> tuple[bytes, list[str], bytes]:
    """``pop.lua``'s reply: wait ms, the claimed ids, and the JSON array of the claimed records."""
    wait_ms, _, rest = reply.partition(b"\n")
    ids, _, claimed = rest.partition(b"\n")
    return wait_ms, json.loads(ids), claimed


def _read_claimed(ids: list[str], claimed: bytes) -> list[dict[str, Any]] | None:
    """The claimed records, or None if one of them cannot be read as the task of its key."""
    try:
        records: list[dict[str, Any]] = json.loads(claimed)
    except (ValueError, RecursionError):
        return None
    if len(records) != len(ids):
        return None
    for record, task_id in zip(records, ids, strict=True):
        if not (isinstance(record, dict) and record.get("id") == task_id):
            return None
    return records


async def _close_quietly(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:
        # Closing a client whose server is gone may raise; the connections are dropped regardless.
        return
