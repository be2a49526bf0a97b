from __future__ import annotations

import uuid
from datetime import timedelta

import tasks_for_tests as t

from sheppy_core import TestQueue


def test_process_all_runs_retries_and_chains_without_delays() -> None:
    queue = TestQueue()
    flaky = t.fails_once(f"tq-{uuid.uuid4()}")
    queue.add([flaky, t.parent(1)])
    processed = queue.process_all()
    assert len(processed) == 6  # flaky twice, parent once, three children
    assert [f.id for f in queue.failed_tasks] == [flaky.id]
    done = queue.get_task(flaky)
    assert done is not None and done.status == "completed" and done.retry_count == 1
    assert queue.size() == 0


def test_process_next_and_scheduled() -> None:
    queue = TestQueue(name="other")
    assert queue.process_next() is None
    later = t.add(2, 2)
    queue.schedule(later, timedelta(minutes=5))
    assert queue.process_all() == []
    ran = queue.process_scheduled(timedelta(minutes=6))
    assert [r.id for r in ran] == [later.id] and ran[0].result == 4


def test_dependency_overrides() -> None:
    queue = TestQueue(dependency_overrides={t.get_resource: lambda: "stub"})
    task = t.uses_dependency(3)
    queue.add(task)
    assert queue.process_next() is not None
    done = queue.get_task(task)
    assert done is not None and done.result == "stub:3"


def test_not_collected_by_pytest() -> None:
    assert TestQueue.__test__ is False


def test_sync_facades_mirror_the_queue_api() -> None:
    """TestQueue and SyncQueue share one implementation of the blocking methods; both must offer every
    public Queue operation."""
    from sheppy_core import Queue
    from sheppy_core.experimental import SyncQueue

    # resume_workflow is what a worker calls (0.0.7 spelling), not part of the facades' API; store is
    # the storage layer under a Queue, not an operation.
    public = {name for name in vars(Queue) if not name.startswith("_")} - {
        "experimental",
        "store",
        "list_queues",
        "stats",
        "resume_workflow",
    }
    for facade in (TestQueue, SyncQueue):
        missing = {name for name in public if not callable(getattr(facade, name, None))}
        assert not missing, f"{facade.__name__} lacks {sorted(missing)}"
