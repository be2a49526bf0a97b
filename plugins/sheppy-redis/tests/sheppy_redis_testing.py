"""Helpers for sheppy-redis's tests: clean-up, and Redis servers of their own on free loopback ports.

A test that needs to kill or restart Redis, or a cluster, starts its own ``redis-server`` here (same
binaries as the shared server) and stops it afterwards; the shared server at 6379 is never touched.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import redis
import redis.asyncio as redis_asyncio

from sheppy_core import task
from sheppy_core.backend import Backend

__all__ = [
    "REDIS_URL",
    "RedisClusterNodes",
    "RedisServer",
    "delete_prefix",
    "double",
    "fail_once",
    "free_cluster_port",
    "free_port",
    "write_stored_text",
]

REDIS_URL = "redis://127.0.0.1:6379/0"


async def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key under ``prefix`` (test clean-up)."""
    client = redis_asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


async def write_stored_text(backend: Backend, queue_name: str, task_id: str, text: str) -> None:
    """Store ``text`` as the record of a task queued at the tail of ``queue_name``, with plain Redis
    commands behind the backend's back: the hash and index entries ``append`` writes (listing index
    included), but a body
    (field ``r``) that a bug or a manual ``HSET`` left behind (the conformance hook for
    ``robust.corrupt_record``, and the fault tests')."""
    from datetime import UTC, datetime

    from sheppy_redis import RedisBackend
    from sheppy_redis._keys import QueueKeys
    from sheppy_redis._records import listing_member_key

    from sheppy_core.backend import listing_key

    assert isinstance(backend, RedisBackend)
    client = backend._client
    base = QueueKeys.for_queue(backend.prefix, queue_name).base
    await client.hset(
        f"{base}t:{task_id}",
        mapping={"r": text, "deliveries": "0", "_rc": "-1", "status": '"pending"', "_ls": "pending"},
    )
    if not await client.scard(f"{base}ids"):
        await client.set(f"{base}lsv", "1")  # a new queue: its listing index is complete
    member = listing_member_key(listing_key({}, datetime.now(UTC))) + task_id
    await client.hset(f"{base}lm", task_id, member[:16])
    await client.zadd(f"{base}ls", {member: 0})
    await client.zadd(f"{base}ls:active", {member: 0})  # pending and processing share it
    await client.sadd(f"{base}ids", task_id)
    await client.zadd(f"{base}q", {task_id: await client.incr(f"{base}seq")})
    await client.rpush(f"{base}wake", "1")
    await client.hset(f"{backend.prefix}:queues", queue_name, "1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(taken: set[int] | None = None) -> int:
    """A free port whose cluster bus port (+10000) is free too; cluster ports must be <= 55535.

    ``taken``: ports already given to other nodes of the same cluster (not listening yet, so not seen
    as busy): neither of the pair may be one of them or one of their bus ports, and the pair is added.
    """
    taken = set() if taken is None else taken
    for _ in range(200):
        port = random.randint(20000, 45000)
        pair = {port, port + 10000}
        if pair & taken or not (_bindable(port) and _bindable(port + 10000)):
            continue
        taken |= pair
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisServer:
    """A ``redis-server`` on a free loopback port with its data in ``directory``.

    ``appendfsync always`` makes every acknowledged write durable, so a SIGKILL loses nothing that a
    client was told is stored (what the restart test checks).
    """

    def __init__(self, directory: Path, port: int | None = None, *extra: str) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"), *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5) as client:
                    client.ping()
                    return
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save — only what was fsynced survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


class RedisClusterNodes:
    """Three cluster-enabled ``redis-server`` masters on free loopback ports, joined with
    ``redis-cli --cluster create`` (no replicas)."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        # One node's port may not be another's bus port: they are chosen together.
        taken: set[int] = set()
        self.servers = [
            RedisServer(
                directory / f"node{i}", free_cluster_port(taken),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000", "--appendonly", "no",
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.servers[0].port}/0?cluster=true"

    def start(self) -> None:
        for server in self.servers:
            server.start()
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        for server in self.servers:
            with redis.Redis(host="127.0.0.1", port=server.port) as client:
                while client.cluster("info").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the test cluster did not reach cluster_state:ok")
                    time.sleep(0.1)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


# -- tasks for the Worker tests (importable by name, as a worker process needs) ---------------------

ATTEMPTS: dict[str, int] = {}


@task
async def double(x: int) -> int:
    return 2 * x


@task(retry=2, retry_delay=0.05)
async def fail_once(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] == 1:
        raise RuntimeError("first attempt fails")
    return f"{key} after {ATTEMPTS[key]} attempts"
