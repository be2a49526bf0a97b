"""The whole sheppy-core Backend contract, run against JsonFileBackend."""

import asyncio
import fcntl
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sheppy_conformance import BackendConformance
from sheppy_jsonfile import JsonFileBackend

from sheppy_core.backend import Backend


def write_raw_task(path: Path, queue_name: str, task_id: str, text: str) -> None:
    """Edit the file behind the backend's back (under its lock): queue ``task_id`` at the tail with
    ``text`` as its stored record, a string where an object belongs — what a record stored encoded
    twice, or pasted in by hand, leaves."""
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        empty = {"version": 1, "queues": {}}
        document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else empty
        queue = document["queues"].setdefault(
            queue_name, {"records": {}, "queued": [], "claims": {}, "scheduled": {}}
        )
        queue["records"][task_id] = text
        queue["queued"].append(task_id)
        path.write_text(json.dumps(document), encoding="utf-8")


class TestJsonFileBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], JsonFileBackend]:
        # Every call: a new object on the same file, as a second worker process would have.
        return lambda: JsonFileBackend(tmp_path / "store.json")

    async def write_stored_text(self, backend: Backend, queue_name: str, task_id: str, text: str) -> None:
        """Store ``text`` as a queued task's record in the file (robust.corrupt_record)."""
        assert isinstance(backend, JsonFileBackend)
        await asyncio.to_thread(write_raw_task, backend.path, queue_name, task_id, text)
