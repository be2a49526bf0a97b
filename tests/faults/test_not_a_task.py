"""A claimed record that is JSON but not a task ends quarantined at once (item 2), and the Queue's
reads skip quarantined records with a warning instead of failing (item 1's "listing skips it").

On the reference backend (the real-server versions, with ``sheppy work``, are in
``test_corrupt_records.py``).
"""

from __future__ import annotations

import logging

import pytest
import tasks_for_tests as t

from sheppy_core import MemoryBackend, Queue, Worker
from sheppy_core.backend import QUARANTINED


async def test_a_record_that_is_not_a_task_is_quarantined_once_and_the_rest_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryBackend(instant_processing=False)
    queue = Queue(backend, "q")
    await backend.connect()
    backend.inject_stored_text("q", "bad1", '{"id": "bad1", "hello": "world"}')
    backend.inject_stored_text("q", "bad2", "not json{")
    good = [t.add(i, 1) for i in range(3)]
    await queue.add(good)
    with caplog.at_level(logging.WARNING):
        await Worker("q", backend, enable_cron_manager=False, lease=0.5).work(
            oneshot=True, register_signal_handlers=False
        )
    done = await queue.get_task(good)
    assert {task.status for task in done.values()} == {"completed"}
    stored = await backend.get_tasks("q", ["bad1", "bad2"])
    assert {r["status"] for r in stored.values()} == {QUARANTINED}
    assert '"hello":"world"' in stored["bad1"]["quarantine"]["raw"]
    assert "not a task" in stored["bad1"]["quarantine"]["reason"]
    assert stored["bad2"]["quarantine"]["raw"] == "not json{"
    stats = await queue.stats()
    assert stats[QUARANTINED] == 2 and stats["processing"] == 0 and stats["completed"] == 3
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("'bad1'" in m and "quarantined" in m for m in logged) == 1, logged

    # Once, for good: a later claim finds nothing, however long one waits for leases to lapse.
    assert await backend.pop("q", limit=10, lease=0.01) == []
    with caplog.at_level(logging.WARNING, logger="sheppy.queue"):
        listed = await queue.get_all_tasks()
    assert sorted(str(task.id) for task in listed) == sorted(str(task.id) for task in good)
    assert any("bad1" in r.getMessage() and r.name == "sheppy.queue" for r in caplog.records)
    assert await queue.get_task(good[0]) is not None
    assert await backend.delete_task("q", "bad1") is True
