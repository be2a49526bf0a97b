"""The FastAPI router: sheppy's routes and status codes; only registered @task functions are called."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tasks_for_tests as t
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from sheppy_core import MemoryBackend, Queue
from sheppy_core.fastapi import create_router


@pytest.fixture
def memory() -> MemoryBackend:
    return MemoryBackend(instant_processing=False)


@pytest.fixture
def client(memory: MemoryBackend) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(create_router(memory, prefix="/sheppy"))
    with TestClient(app) as test_client:
        yield test_client


def add(client: TestClient, func: str = "tasks_for_tests:add", **body: Any) -> Any:
    return client.post("/sheppy/q/tasks", json={"func": func, **body})


def test_add_list_get_and_size(client: TestClient) -> None:
    created = add(client, args=[1], kwargs={"y": 2})
    assert created.status_code == 200, created.text
    task = created.json()
    assert task["spec"] == {"func": "tasks_for_tests:add", "args": [1], "kwargs": {"y": 2}}
    assert client.get("/sheppy/q/size").json() == 1
    assert client.get("/sheppy/queues").json() == {"q": 1}
    assert [x["id"] for x in client.get("/sheppy/q/tasks").json()] == [task["id"]]
    assert [x["id"] for x in client.get("/sheppy/q/tasks/pending", params={"limit": 5}).json()] == [
        task["id"]
    ]
    fetched = client.get(f"/sheppy/q/tasks/{task['id']}")
    assert fetched.status_code == 200 and fetched.json()["status"] == "pending"
    assert client.get(f"/sheppy/q/tasks/{uuid.uuid4()}").status_code == 404
    assert client.get("/sheppy/q/tasks/pending", params={"limit": 0}).status_code == 422


def test_task_options_are_kept(client: TestClient) -> None:
    created = add(client, func="tasks_for_tests:fails_once", args=["k"])
    assert created.json()["config"]["retry"] == 2


@pytest.mark.parametrize(
    ("func", "args", "reason"),
    [
        ("os:system", ["echo hacked"], "not a registered @task"),
        ("tasks_for_tests:plain_function", [], "not a registered @task"),
        ("not a name", [], "module:function"),
        ("tasks_for_tests:add", ["x", 1], "invalid arguments"),
        ("tasks_for_tests:add", [1], "invalid arguments"),
    ],
)
def test_bad_tasks_are_400_and_enqueue_nothing(
    client: TestClient, func: str, args: list[Any], reason: str
) -> None:
    response = add(client, func=func, args=args)
    assert response.status_code == 400 and reason in response.json()["detail"]
    assert client.get("/sheppy/q/tasks").json() == []
    assert t.calls["plain_function"] == 0


def test_a_request_never_imports_the_module_it_names(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "side_effect_mod_fastapi.py").write_text(
        "from sheppy_core import task\n"
        "open(__file__ + '.imported', 'w').close()\n"
        "@task\ndef f() -> None: ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    response = add(client, func="side_effect_mod_fastapi:f")
    assert response.status_code == 400
    assert "side_effect_mod_fastapi" not in sys.modules
    assert not (tmp_path / "side_effect_mod_fastapi.py.imported").exists()


def test_unknown_body_fields_are_rejected(client: TestClient) -> None:
    assert add(client, args=[1, 2], extra=True).status_code == 422


def test_schedule_by_delay_and_at(client: TestClient) -> None:
    delayed = client.post(
        "/sheppy/q/tasks/schedule", json={"func": "tasks_for_tests:add", "args": [1, 2], "delay_seconds": 60}
    )
    assert delayed.status_code == 200 and delayed.json()["status"] == "scheduled"
    at = client.post(
        "/sheppy/q/tasks/schedule",
        json={"func": "tasks_for_tests:add", "args": [3, 4], "at": "2099-01-01T00:00:00"},
    )
    assert at.status_code == 200 and at.json()["scheduled_at"].startswith("2099-01-01T00:00:00")
    assert len(client.get("/sheppy/q/tasks/scheduled").json()) == 2
    neither = client.post("/sheppy/q/tasks/schedule", json={"func": "tasks_for_tests:add", "args": [1, 2]})
    assert neither.status_code == 400 and "must be provided" in neither.json()["detail"]  # as sheppy


async def test_retry_routes(client: TestClient, memory: MemoryBackend) -> None:
    task = add(client, args=[1, 2]).json()
    refused = client.post(f"/sheppy/q/tasks/{task['id']}/retry")
    assert refused.status_code == 400 and "only finished tasks" in refused.json()["detail"]
    assert client.post(f"/sheppy/q/tasks/{uuid.uuid4()}/retry").status_code == 400  # as sheppy
    # Finish it through the same backend, as a worker would.
    queue = Queue(memory, "q")
    portal_claim = client.portal.call  # type: ignore[union-attr]
    claimed = portal_claim(queue._pop_pending)
    finished = claimed[0].model_copy(
        update={"status": "completed", "result": 3, "finished_at": claimed[0].created_at}
    )
    portal_claim(queue._store_result, finished)
    assert client.post(f"/sheppy/q/tasks/{task['id']}/retry").status_code == 400  # completed needs force
    again = client.post(f"/sheppy/q/tasks/{task['id']}/retry", json={"force": True})
    assert again.status_code == 200 and "queued for retry" in again.json()
    assert client.get("/sheppy/q/size").json() == 1


def test_crons_and_clear(client: TestClient) -> None:
    body = {"func": "tasks_for_tests:stamp", "expression": "*/5 * * * *"}
    assert client.post("/sheppy/q/crons", json=body).json() is True
    assert client.post("/sheppy/q/crons", json=body).status_code == 409
    (cron,) = client.get("/sheppy/q/crons").json()
    assert cron["expression"] == "*/5 * * * *" and cron["spec"]["func"] == "tasks_for_tests:stamp"
    bad = client.post("/sheppy/q/crons", json={**body, "expression": "every day"})
    assert bad.status_code == 400
    impossible = client.post("/sheppy/q/crons", json={**body, "expression": "*/61 * * * *"})
    assert impossible.status_code == 400 and "step 61 in the minute field" in impossible.json()["detail"]
    assert client.request("DELETE", "/sheppy/q/crons", json=body).json() == "Cron job deleted"
    assert client.request("DELETE", "/sheppy/q/crons", json=body).status_code == 404
    add(client, args=[1, 2])
    assert client.post("/sheppy/q/tasks/clear").json() == 1
    assert client.get("/sheppy/q/size").json() == 0


def test_tags_prefix_and_a_protecting_dependency(memory: MemoryBackend) -> None:
    def require_token(x_token: str = Header(default="")) -> None:
        if x_token != "s3cret":
            raise HTTPException(401, "bad token")

    app = FastAPI()
    app.include_router(
        create_router(memory, prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_token)])
    )
    with TestClient(app) as client:
        assert client.get("/jobs/queues").status_code == 401
        assert client.get("/jobs/queues", headers={"x-token": "s3cret"}).json() == {}
        operation = app.openapi()["paths"]["/jobs/queues"]["get"]
        assert operation["tags"] == ["jobs"]
    default_tags = FastAPI()
    default_tags.include_router(create_router(memory))
    assert default_tags.openapi()["paths"]["/queues"]["get"]["tags"] == ["sheppy"]
