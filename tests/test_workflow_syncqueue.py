"""``SyncQueue``: the blocking, thread-safe wrapper around ``Queue`` (later sheppy, experimental)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import workflows_for_tests as wf

from sheppy_core.exceptions import TaskCancellationError
from sheppy_core.experimental import SyncQueue


def test_tasks_and_workflows_through_a_sync_queue() -> None:
    with SyncQueue("memory://", "sync") as q:
        assert q.name == "sync"
        t = wf.add(1, 2)
        assert q.add(t) is True  # memory:// runs it inline
        assert q.wait_for(t, timeout=1).result == 3  # type: ignore[union-attr]
        assert q.get_task(t.id).status == "completed"  # type: ignore[union-attr]
        assert q.add([wf.add(2, 2), wf.add(3, 3)]) == [True, True]
        assert len(q.get_all_tasks()) == 3 and q.size() == 0 and q.get_pending() == []
        assert q.retry(t, force=True) is True

        started = q.add_workflow(wf.fan_out_fan_in(3))
        done = q.wait_for_workflow(started.workflow, timeout=1)
        assert done is not None and done.final_result == 6
        assert q.get_workflow(done.id) == done and q.get_workflow([done.id]) == {done.id: done}
        assert q.get_all_workflows() == [done] and q.get_pending_workflows() == []
        assert q.delete_workflow(done) is True
        assert q.clear() >= 3


def test_schedule_cancel_delete_and_crons() -> None:
    with SyncQueue("memory://?instant_processing=false", "sync") as q:
        later = wf.add(5, 5)
        assert q.schedule(later, timedelta(hours=1)) is True
        assert [s.id for s in q.get_scheduled()] == [later.id]
        assert q.cancel(later).status == "cancelled"
        with pytest.raises(TaskCancellationError):
            q.cancel(later)
        assert q.delete(later) is True
        assert q.add_cron(wf.add(1, 1), "*/5 * * * *") is True
        assert len(q.get_crons()) == 1
        assert q.delete_cron(wf.add(1, 1), "*/5 * * * *") is True
        assert q.wait_for([later.id], timeout=-1) == {}


def test_shared_between_threads() -> None:
    q = SyncQueue("memory://?instant_processing=false", "threads")
    errors: list[BaseException] = []

    def producer(offset: int) -> None:
        try:
            for i in range(20):
                assert q.add(wf.add(offset, i)) is True
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert q.size() == 100
    q.close()
    q.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        q.size()


def test_url_only() -> None:
    from sheppy_core import MemoryBackend

    with pytest.raises(TypeError):
        SyncQueue(MemoryBackend())  # type: ignore[arg-type]
