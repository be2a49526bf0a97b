"""A PostgreSQL restart mid-run, on a server this test starts itself: the backend reconnects (pool
and LISTEN) and goes on; every task is completed, none lost.

The server is a throw-away cluster (initdb + pg_ctl from /usr/lib/postgresql/*/bin) on a free loopback
port, run as a non-root user (``postgres`` when the tests run as root). Missing binaries fail the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sheppy_postgres import PostgresBackend

from sheppy_core.exceptions import BackendConnectionError

from .conftest import finished, task


@dataclass
class OwnServer:
    bindir: str
    datadir: str
    port: int

    def _run(self, *args: str) -> None:
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.datadir, "-o", options, "-l", f"{self.datadir}/log", "-w", *args)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert bindirs, "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
    root = tempfile.mkdtemp(prefix="sheppy-pg-")
    os.chmod(root, 0o755)
    datadir = os.path.join(root, "data")
    os.mkdir(datadir, 0o700)
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
    server = OwnServer(bindirs[-1], datadir, _free_port())
    server._run("initdb", "-D", datadir, "-A", "trust", "-U", "postgres", "--no-sync")
    server.pg_ctl("start")
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


FAILURES: list[str] = []


async def _retrying(call: Any) -> Any:
    """What a worker does: retry a call that failed because the server was away."""
    for _ in range(300):
        try:
            return await call()
        except BackendConnectionError as exc:
            FAILURES.append(str(exc))
            await asyncio.sleep(0.05)
    raise AssertionError("the backend never reconnected")


async def test_backend_survives_a_server_restart(own_server: OwnServer) -> None:
    url = own_server.url + "?schema=restart&lease=2"
    async with PostgresBackend.from_url(url) as producer, PostgresBackend.from_url(url) as worker:
        queue = "restart-q"
        await producer.append(queue, [task(f"before-{i}") for i in range(40)])
        done: set[str] = set()
        done_when_restarting: list[int] = []
        ten_done = asyncio.Event()
        FAILURES.clear()

        async def work() -> None:
            while len(done) < 80:
                batch = await _retrying(lambda: worker.pop(queue, 2, timeout=1))
                for record in batch:
                    await asyncio.sleep(0.02)  # the task's work: spreads the run across the restart
                    if await _retrying(lambda r=record: worker.store_result(queue, finished(r))):
                        done.add(record["id"])
                        if len(done) >= 10:
                            ten_done.set()

        async def restart_midway() -> None:
            await ten_done.wait()
            done_when_restarting.append(len(done))
            await asyncio.to_thread(own_server.pg_ctl, "restart", "-m", "fast")
            await _retrying(lambda: producer.append(queue, [task(f"after-{i}") for i in range(40)]))

        await asyncio.wait_for(asyncio.gather(work(), restart_midway()), 90)
        assert done_when_restarting[0] < 40  # the restart really happened mid-run
        # Calls that failed meanwhile raised BackendConnectionError (anything else would have escaped
        # _retrying and failed the test), each naming the backend.
        assert all(f.startswith("PostgreSQL backend at postgresql://") for f in FAILURES)
        assert done == {f"before-{i}" for i in range(40)} | {f"after-{i}" for i in range(40)}
        stats = await _retrying(lambda: producer.get_stats(queue))
        assert stats["completed"] == 80 and stats["pending"] == stats["processing"] == 0

        # LISTEN came back too: an idle pop is woken by NOTIFY again, well under the 1 s poll.
        for _ in range(100):
            if (await worker.server_info())["listening"]:
                break
            await asyncio.sleep(0.05)
        waiter = asyncio.create_task(worker.pop(queue, timeout=5))
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await producer.append(queue, [task("wake")])
        assert [t["id"] for t in await waiter] == ["wake"]
        assert loop.time() - started < 0.5
