"""Peer: huey's SqliteHuey (``huey`` from PyPI), its consumer with one worker thread.

Config keys: ``path`` (the SQLite file); ``fsync`` (SqliteHuey's option: absent/None = its default,
which leaves SQLite's ``synchronous=FULL``; False = ``synchronous=OFF``, its fastest setting);
``consumer`` (keyword arguments of ``Huey.create_consumer``, e.g. ``initial_delay``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import _probe
from huey import SqliteHuey


def noop() -> None:
    _probe.hit()


def probe(stamp: float) -> None:
    _probe.latency(stamp)


class App:
    """A Huey on the case's file with the two tasks registered (same names in driver and worker)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.huey = SqliteHuey("bench", filename=config["path"], fsync=config.get("fsync"))
        self.noop = self.huey.task(name="noop")(noop)
        self.probe = self.huey.task(name="probe")(probe)


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        self.app = App(config)

    async def open(self) -> None:
        pass

    async def reset(self) -> None:
        self.app.huey.flush()

    async def close(self) -> None:
        self.app.huey.storage.close()

    async def enqueue_one(self) -> None:
        self.app.noop()

    async def enqueue_batch(self, n: int) -> None:
        for _ in range(n):  # huey has no batch enqueue
            self.app.noop()

    async def enqueue_probe(self, stamp: float) -> None:
        self.app.probe(stamp)

    async def settled(self, n: int) -> bool | None:
        return None


def run_worker(config: dict[str, Any], ready: Callable[[], None]) -> None:
    app = App(config)
    consumer = app.huey.create_consumer(workers=1, worker_type="thread", **config.get("consumer", {}))
    ready()
    consumer.run()
