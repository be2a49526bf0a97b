"""§17 FastAPI integration: ``create_router`` and every route of sheppy-api.md's table, on each store.

The router is built on a backend object of its own on the test's store (memory: the shared memory
backend object) and called through httpx's ASGI transport; the test's ``queue`` and ``worker`` look at
the same store. §18.1: a request names a function as a string; the router only looks it up among the
``@task`` functions of this process — it never imports a module or calls a plain function for it.

Deliberate differences asserted here (docs/migrating-from-sheppy.md): a duplicate cron is 409 (sheppy:
500); a naive ``at`` is UTC (sheppy: a 500 from its offset-aware check); ``limit`` is at most 10000.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from compat import tasks_cli as t
from compat.support import QUEUE_NAME, Store, work
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from httpx import ASGITransport, AsyncClient

from sheppy_core import Queue, Worker
from sheppy_core.fastapi import create_router

BASE = f"/sheppy/{QUEUE_NAME}"
ADD = "compat.tasks_cli:add"


@pytest.fixture
async def client(store: Store) -> AsyncIterator[AsyncClient]:
    app = FastAPI()
    app.include_router(create_router(store.new_backend(), prefix="/sheppy"))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c


# -- create_router -------------------------------------------------------------------------------------


async def test_create_router_returns_an_api_router_tagged_sheppy(store: Store) -> None:
    router = create_router(store.new_backend())
    assert isinstance(router, APIRouter)
    routes = [r for r in router.routes if hasattr(r, "tags")]
    assert routes and all(r.tags == ["sheppy"] for r in routes)
    tagged = create_router(store.new_backend(), tags=["MyTasks"])
    assert all("MyTasks" in r.tags for r in tagged.routes if hasattr(r, "tags"))


async def test_prefix_and_router_keyword_arguments(store: Store) -> None:
    def require_token(authorization: str = Header(default="")) -> None:
        if authorization != "Bearer ok":
            raise HTTPException(401, "no")

    app = FastAPI()
    app.include_router(
        create_router(store.new_backend(), prefix="/custom", dependencies=[Depends(require_token)])
    )
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        assert (await c.get("/custom/queues")).status_code == 401
        allowed = await c.get("/custom/queues", headers={"Authorization": "Bearer ok"})
        assert allowed.status_code == 200 and allowed.json() == {}
        assert (await c.get("/sheppy/queues", headers={"Authorization": "Bearer ok"})).status_code == 404


def test_create_router_without_fastapi_raises_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sheppy_core.fastapi as module

    monkeypatch.setattr(module, "fastapi", None)
    with pytest.raises(ImportError, match="Cannot create APIRouter because FastAPI is not installed"):
        module.create_router("memory://")


# -- queue statistics ----------------------------------------------------------------------------------


async def test_queues_maps_each_queue_to_its_pending_count(client: AsyncClient, queue: Queue) -> None:
    await queue.add([t.add(1, 2), t.add(3, 4)])
    await Queue(queue.backend, "other").add(t.add(5, 6))
    response = await client.get("/sheppy/queues")
    assert response.status_code == 200
    assert response.json()[QUEUE_NAME] == 2 and response.json()["other"] == 1


async def test_size(client: AsyncClient, queue: Queue) -> None:
    empty = await client.get(f"{BASE}/size")
    assert (empty.status_code, empty.json()) == (200, 0)
    await queue.add([t.add(1, 2), t.add(3, 4)])
    assert (await client.get(f"{BASE}/size")).json() == 2


# -- listing -------------------------------------------------------------------------------------------


async def test_tasks_lists_every_task(client: AsyncClient, queue: Queue, worker: Worker) -> None:
    assert (await client.get(f"{BASE}/tasks")).json() == []
    done = t.add(1, 2)
    await queue.add(done)
    await work(worker, max_tasks=1)
    waiting = t.add(3, 4)
    await queue.add(waiting)
    response = await client.get(f"{BASE}/tasks")
    assert response.status_code == 200
    by_id = {row["id"]: row for row in response.json()}
    assert set(by_id) == {str(done.id), str(waiting.id)}
    assert by_id[str(done.id)]["completed"] is True and by_id[str(done.id)]["result"] == 3
    assert by_id[str(waiting.id)]["completed"] is False


async def test_pending_peeks_with_a_limit(client: AsyncClient, queue: Queue) -> None:
    assert (await client.get(f"{BASE}/tasks/pending")).json() == []
    added = [t.add(i, i) for i in range(5)]
    await queue.add(added)
    everything = await client.get(f"{BASE}/tasks/pending")
    assert everything.status_code == 200
    assert [row["id"] for row in everything.json()] == [str(x.id) for x in added]
    limited = await client.get(f"{BASE}/tasks/pending", params={"limit": 3})
    assert [row["id"] for row in limited.json()] == [str(x.id) for x in added[:3]]
    assert await queue.size() == 5  # a peek claims nothing
    assert (await client.get(f"{BASE}/tasks/pending", params={"limit": 0})).status_code == 422


async def test_scheduled_lists_scheduled_tasks(client: AsyncClient, queue: Queue) -> None:
    assert (await client.get(f"{BASE}/tasks/scheduled")).json() == []
    later = t.add(1, 2)
    await queue.schedule(later, timedelta(hours=1))
    await queue.add(t.add(3, 4))
    response = await client.get(f"{BASE}/tasks/scheduled")
    assert response.status_code == 200 and [row["id"] for row in response.json()] == [str(later.id)]


async def test_one_task_by_id_or_404(client: AsyncClient, queue: Queue) -> None:
    task = t.add(1, 2)
    await queue.add(task)
    found = await client.get(f"{BASE}/tasks/{task.id}")
    assert found.status_code == 200 and found.json()["id"] == str(task.id)
    assert found.json()["spec"]["args"] == [1, 2]
    missing = await client.get(f"{BASE}/tasks/{uuid.UUID(int=0)}")
    assert missing.status_code == 404
    assert (await client.get(f"{BASE}/tasks/not-a-uuid")).status_code == 422


# -- retry ---------------------------------------------------------------------------------------------


async def test_retry_a_failed_task(client: AsyncClient, queue: Queue, worker: Worker) -> None:
    failed = t.always_fails()
    await queue.add(failed)
    await work(worker, max_tasks=1)
    response = await client.post(f"{BASE}/tasks/{failed.id}/retry")
    assert response.status_code == 200 and response.json() == f"Task {failed.id} queued for retry"
    assert await queue.size() == 1


async def test_retry_with_a_delay_schedules_it(client: AsyncClient, queue: Queue, worker: Worker) -> None:
    failed = t.always_fails()
    await queue.add(failed)
    await work(worker, max_tasks=1)
    response = await client.post(f"{BASE}/tasks/{failed.id}/retry", json={"delay_seconds": 60})
    assert response.status_code == 200 and response.json() == f"Task {failed.id} queued for retry"
    assert await queue.size() == 0
    assert [x.id for x in await queue.get_scheduled()] == [failed.id]


async def test_retry_of_a_completed_task_needs_force(
    client: AsyncClient, queue: Queue, worker: Worker
) -> None:
    done = t.add(1, 2)
    await queue.add(done)
    await work(worker, max_tasks=1)
    refused = await client.post(f"{BASE}/tasks/{done.id}/retry")
    assert refused.status_code == 400
    forced = await client.post(f"{BASE}/tasks/{done.id}/retry", json={"force": True})
    assert forced.status_code == 200 and forced.json() == f"Task {done.id} queued for retry"
    assert await queue.size() == 1


async def test_retry_of_an_unknown_or_still_waiting_task_is_400(client: AsyncClient, queue: Queue) -> None:
    unknown = await client.post(f"{BASE}/tasks/{uuid.UUID(int=0)}/retry")
    assert unknown.status_code == 400
    # §18.10: a task that still waits is never queued twice, even with force.
    waiting = t.add(1, 2)
    await queue.add(waiting)
    live = await client.post(f"{BASE}/tasks/{waiting.id}/retry", json={"force": True})
    assert live.status_code == 400
    assert await queue.size() == 1


# -- add -----------------------------------------------------------------------------------------------


async def test_add_a_task_by_name(client: AsyncClient, queue: Queue) -> None:
    response = await client.post(f"{BASE}/tasks", json={"func": ADD, "args": [5, 3]})
    assert response.status_code == 200
    created = response.json()
    assert created["spec"]["func"] == ADD and created["spec"]["args"] == [5, 3]
    assert await queue.size() == 1
    stored = await queue.get_task(created["id"])
    assert stored is not None and stored.spec.func == ADD


async def test_add_with_kwargs(client: AsyncClient, queue: Queue) -> None:
    response = await client.post(f"{BASE}/tasks", json={"func": ADD, "kwargs": {"x": 10, "y": 20}})
    assert response.status_code == 200 and response.json()["spec"]["kwargs"] == {"x": 10, "y": 20}
    assert await queue.size() == 1


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        ("nonexistent:func", "Could not import"),
        ("compat.tasks_cli:no_such_function", "Could not import"),
        ("not-a-task-name", "Could not import"),
        ("os:getcwd", "did not return a Task"),
        ("compat.tasks_cli:plain_function", "did not return a Task"),
    ],
)
async def test_add_refuses_a_name_that_does_not_resolve_or_is_not_a_task(
    client: AsyncClient, queue: Queue, func: str, expected: str
) -> None:
    response = await client.post(f"{BASE}/tasks", json={"func": func})
    assert response.status_code == 400
    assert expected in response.json()["detail"]
    assert await queue.size() == 0
    assert t.calls["plain_function"] == 0


async def test_add_with_arguments_that_do_not_fit_is_400(client: AsyncClient, queue: Queue) -> None:
    response = await client.post(f"{BASE}/tasks", json={"func": ADD, "args": ["x", 2]})
    assert response.status_code == 400 and "Error creating task" in response.json()["detail"]
    missing = await client.post(f"{BASE}/tasks", json={"func": ADD, "args": [1]})
    assert missing.status_code == 400
    assert await queue.size() == 0


async def test_a_request_never_imports_the_module_it_names(
    client: AsyncClient, queue: Queue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # §18.1: sheppy imports the named module (running its import side effects) before refusing it.
    module = f"never_imported_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('yes')\n"
        "from sheppy_core import task\n@task\ndef job() -> int:\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for route, extra in (("tasks", {}), ("tasks/schedule", {"delay_seconds": 5})):
        response = await client.post(f"{BASE}/{route}", json={"func": f"{module}:job", **extra})
        assert response.status_code == 400
    cron = await client.post(f"{BASE}/crons", json={"func": f"{module}:job", "expression": "* * * * *"})
    assert cron.status_code == 400
    assert module not in sys.modules and not marker.exists()
    assert await queue.size() == 0


# -- schedule ------------------------------------------------------------------------------------------


async def test_schedule_with_a_delay(client: AsyncClient, queue: Queue) -> None:
    before = datetime.now(UTC)
    response = await client.post(
        f"{BASE}/tasks/schedule", json={"func": ADD, "args": [1, 2], "delay_seconds": 60}
    )
    assert response.status_code == 200 and response.json()["spec"]["args"] == [1, 2]
    assert await queue.size() == 0
    [scheduled] = await queue.get_scheduled()
    assert str(scheduled.id) == response.json()["id"]
    assert scheduled.scheduled_at is not None
    assert before + timedelta(seconds=59) <= scheduled.scheduled_at <= before + timedelta(seconds=120)


async def test_schedule_at_a_time(client: AsyncClient, queue: Queue) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    response = await client.post(
        f"{BASE}/tasks/schedule", json={"func": ADD, "args": [1, 2], "at": future.isoformat()}
    )
    assert response.status_code == 200
    [scheduled] = await queue.get_scheduled()
    assert scheduled.scheduled_at == future


async def test_schedule_at_a_naive_time_is_utc(client: AsyncClient, queue: Queue) -> None:
    response = await client.post(
        f"{BASE}/tasks/schedule", json={"func": ADD, "args": [1, 2], "at": "2031-05-04T12:30:00"}
    )
    assert response.status_code == 200
    [scheduled] = await queue.get_scheduled()
    assert scheduled.scheduled_at == datetime(2031, 5, 4, 12, 30, tzinfo=UTC)


async def test_schedule_needs_a_delay_or_a_time(client: AsyncClient, queue: Queue) -> None:
    response = await client.post(f"{BASE}/tasks/schedule", json={"func": ADD, "args": [1, 2]})
    assert response.status_code == 400 and "must be provided" in response.json()["detail"]
    unknown = await client.post(
        f"{BASE}/tasks/schedule", json={"func": "nonexistent:func", "delay_seconds": 1}
    )
    assert unknown.status_code == 400 and "Could not import" in unknown.json()["detail"]
    assert await queue.get_scheduled() == [] and await queue.size() == 0


# -- clear ---------------------------------------------------------------------------------------------


async def test_clear_returns_the_number_removed(client: AsyncClient, queue: Queue) -> None:
    await queue.add([t.add(i, i) for i in range(5)])
    assert await queue.size() == 5
    response = await client.post(f"{BASE}/tasks/clear")
    assert response.status_code == 200 and response.json() == 5
    assert await queue.size() == 0


# -- crons ---------------------------------------------------------------------------------------------


async def test_crons_list_add_and_delete(client: AsyncClient, queue: Queue) -> None:
    listed = await client.get(f"{BASE}/crons")
    assert (listed.status_code, listed.json()) == (200, [])
    body: dict[str, Any] = {"func": ADD, "args": [1, 2], "expression": "*/5 * * * *"}
    added = await client.post(f"{BASE}/crons", json=body)
    assert added.status_code == 200 and added.json() is True
    [cron] = await queue.get_crons()
    assert cron.expression == "*/5 * * * *" and list(cron.spec.args) == [1, 2]
    [shown] = (await client.get(f"{BASE}/crons")).json()
    assert shown["expression"] == "*/5 * * * *" and shown["spec"]["func"] == ADD
    deleted = await client.request("DELETE", f"{BASE}/crons", json=body)
    assert deleted.status_code == 200 and deleted.json() == "Cron job deleted"
    assert await queue.get_crons() == []


async def test_delete_of_a_cron_added_in_code(client: AsyncClient, queue: Queue) -> None:
    await queue.add_cron(t.add(1, 2), "*/10 * * * *")
    body = {"func": ADD, "args": [1, 2], "expression": "*/10 * * * *"}
    deleted = await client.request("DELETE", f"{BASE}/crons", json=body)
    assert deleted.status_code == 200 and deleted.json() == "Cron job deleted"
    assert await queue.get_crons() == []
    again = await client.request("DELETE", f"{BASE}/crons", json=body)
    assert again.status_code == 404


async def test_cron_with_an_unknown_function_is_400(client: AsyncClient, queue: Queue) -> None:
    response = await client.post(
        f"{BASE}/crons", json={"func": "nonexistent:func", "expression": "* * * * *"}
    )
    assert response.status_code == 400
    absent = await client.request(
        "DELETE", f"{BASE}/crons", json={"func": ADD, "args": [9, 9], "expression": "* * * * *"}
    )
    assert absent.status_code == 404
    assert await queue.get_crons() == []


async def test_a_duplicate_cron_is_409(client: AsyncClient, queue: Queue) -> None:
    # Deliberate difference: sheppy answers 500 "Failed to add cron job" (a client conflict, not a fault).
    body = {"func": ADD, "args": [1, 2], "expression": "0 * * * *"}
    assert (await client.post(f"{BASE}/crons", json=body)).status_code == 200
    duplicate = await client.post(f"{BASE}/crons", json=body)
    assert duplicate.status_code == 409 and "Failed to add cron job" in duplicate.json()["detail"]
    assert len(await queue.get_crons()) == 1


# -- request bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "tasks", {"func": ADD, "args": [1, 2], "priority": 1}),
        ("POST", "tasks/schedule", {"func": ADD, "args": [1, 2], "delay_seconds": 5, "when": "now"}),
        ("POST", "crons", {"func": ADD, "args": [1, 2], "expression": "* * * * *", "extra": True}),
        ("DELETE", "crons", {"func": ADD, "args": [1, 2], "expression": "* * * * *", "extra": True}),
        ("POST", f"tasks/{uuid.UUID(int=1)}/retry", {"force": True, "later": 1}),
    ],
)
async def test_request_bodies_reject_unknown_fields(
    client: AsyncClient, queue: Queue, method: str, path: str, body: dict[str, Any]
) -> None:
    response = await client.request(method, f"{BASE}/{path}", json=body)
    assert response.status_code == 422
    assert await queue.size() == 0 and await queue.get_scheduled() == [] and await queue.get_crons() == []
