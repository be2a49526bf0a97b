"""Bad input gets one clear error, and nothing is lost (items 10 and 11 of "Nothing lost, nothing run
twice"): non-finite floats, unstorable queue names and task ids, empty queue names, absurd delays and
absurdly nested JSON — from the Python API, the command line and the web router.

Where the behaviour crosses a backend, the tests run on memory and on the real backends: SQLite (a file
under tmp_path), Redis (127.0.0.1:6379, a key prefix of its own) and PostgreSQL (127.0.0.1:5432,
database ``test``, a schema of its own). A server that is down fails the test, never skips it.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bad_input_tasks as t
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from sheppy_core import MemoryBackend, Queue, Task, Worker, get_backend
from sheppy_core.backend import Backend, BackendInputError, check_queue_name, check_task_id
from sheppy_core.cli import app
from sheppy_core.fastapi import create_router

REDIS_URL = "redis://127.0.0.1:6379"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

runner = CliRunner()


# -- non-finite floats -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, float("1e309"), "inf", "-Infinity", "nan"])
def test_a_non_finite_float_argument_is_refused_when_the_task_is_built(value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        t.double(value)
    message = str(raised.value)
    assert "argument 'x' is not a finite number" in message and "JSON cannot carry it" in message


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: t.double(x=math.inf), "argument 'x' is not"),
        (lambda: t.total([1.0, math.inf]), "argument 'xs': xs[1] is not"),
        (lambda: t.total([1.0], weights={"a": math.nan}), "argument 'weights': weights['a'] is not"),
        (lambda: t.measure(t.Reading(value=math.inf)), "argument 'reading': reading.value is not"),
        (lambda: t.measure({"value": "-inf"}), "argument 'reading': reading.value is not"),
        (
            lambda: t.echo({"deep": [1, {"deeper": math.nan}]}),
            "argument 'value': value['deep'][1]['deeper'] is not",
        ),
        (lambda: t.echo(math.inf), "argument 'value' is not"),
        (lambda: t.options(limit=math.inf), "argument 'limit' is not"),
    ],
)
def test_a_non_finite_float_is_refused_wherever_it_hides(build: Callable[[], Task[Any]], named: str) -> None:
    with pytest.raises(ValidationError) as raised:
        build()
    assert f"{named} a finite number" in str(raised.value)


def test_finite_floats_and_huge_finite_ones_still_build() -> None:
    assert t.double(1e308).spec.args == (1e308,)
    assert t.total([0.5, -2.0], weights={"a": 1.5}).spec.kwargs == {"weights": {"a": 1.5}}


# -- backends ----------------------------------------------------------------------------------------


async def _drop_postgres_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _delete_redis_prefix(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A connected backend of each kind, on a store of this test's own, emptied afterwards."""
    unique = uuid.uuid4().hex[:10]
    urls = {
        "memory": "memory://?instant_processing=false",
        "sqlite": f"sqlite:///{tmp_path}/bad-input.db",
        "redis": f"{REDIS_URL}?prefix=sheppy-test-bad-input-{unique}",
        "postgres": f"{POSTGRES_URL}?schema=sheppy_test_bad_input_{unique}",
    }
    backend = get_backend(urls[request.param])
    await backend.connect()
    try:
        yield backend
    finally:
        try:
            for name in await backend.list_queues():
                await backend.clear(name)
        finally:
            await backend.disconnect()
            if request.param == "redis":
                await _delete_redis_prefix(f"sheppy-test-bad-input-{unique}")
            elif request.param == "postgres":
                await _drop_postgres_schema(f"sheppy_test_bad_input_{unique}")


def _record(task_id: str | None = None) -> dict[str, Any]:
    record = t.double(1.0).model_dump(mode="json")
    if task_id is not None:
        record["id"] = task_id
    return record


def _queue_name() -> str:
    return f"bad-input-{uuid.uuid4().hex[:8]}"


LONE_SURROGATE_QUEUE = "jobs-\ud800"


async def test_a_queue_name_without_a_utf8_form_is_refused_and_the_backend_keeps_working(
    store: Backend,
) -> None:
    bad = LONE_SURROGATE_QUEUE
    later = datetime.now(UTC) + timedelta(hours=1)
    calls: list[Callable[[], Any]] = [
        lambda: store.append(bad, [_record()]),
        lambda: store.schedule(bad, _record(), later),
        lambda: store.pop(bad),
        lambda: store.size(bad),
        lambda: store.get_stats(bad),
        lambda: store.get_all_tasks(bad),
        lambda: store.get_tasks(bad, [str(uuid.uuid4())]),
        lambda: store.cancel(bad, str(uuid.uuid4())),
        lambda: store.clear(bad),
    ]
    for call in calls:
        with pytest.raises(BackendInputError, match=r"queue name .* cannot be encoded as UTF-8"):
            await call()
    # The refusal did not break the connection ("the connection is closed") nor store anything.
    good = _queue_name()
    assert await store.append(good, [_record()]) == [True]
    assert await store.size(good) == 1
    assert all(isinstance(name, str) and name.isprintable() for name in await store.list_queues())
    assert bad not in await store.list_queues()


@pytest.mark.parametrize(("task_id", "problem"), [("a\x00b", "NUL"), ("a\udc80b", "UTF-8")])
async def test_a_task_id_that_cannot_be_stored_is_refused_and_nothing_of_the_call_is_stored(
    store: Backend, task_id: str, problem: str
) -> None:
    q = _queue_name()
    good, bad = _record(), _record(task_id)
    later = datetime.now(UTC) + timedelta(hours=1)
    calls: list[Callable[[], Any]] = [
        lambda: store.append(q, [good, bad]),
        lambda: store.schedule(q, bad, later),
        lambda: store.store_result(q, bad),
        lambda: store.get_tasks(q, [good["id"], task_id]),
        lambda: store.get_results(q, [task_id]),
        lambda: store.heartbeat(q, [task_id]),
        lambda: store.acknowledge(q, task_id),
        lambda: store.cancel(q, task_id),
        lambda: store.delete_task(q, task_id),
    ]
    for call in calls:
        with pytest.raises(BackendInputError, match=f"task id .*{problem}"):
            await call()
    assert await store.get_all_tasks(q) == []
    assert await store.append(q, [good]) == [True]
    assert list(await store.get_tasks(q, [good["id"]])) == [good["id"]]


async def test_a_non_finite_result_fails_the_task_with_a_clear_error_instead_of_storing_none(
    store: Backend,
) -> None:
    queue = Queue(store, _queue_name())
    typed, inferred = t.infinite(), t.untyped_nan()
    await queue.add([typed, inferred])
    worker = Worker(queue.name, store, enable_scheduler=False, enable_cron_manager=False)
    await asyncio.wait_for(worker.work(oneshot=True, register_signal_handlers=False), timeout=60)
    finished = await queue.wait_for([typed, inferred], timeout=30)
    for task, where in ((typed, "result"), (inferred, "result['ratio']")):
        done = finished[task.id]
        assert done.status == "failed", done
        assert done.result is None and done.exception is not None
        assert f"{where} is not a finite number" in done.exception.message


# -- queue names in Queue and Worker -------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "jobs-\ud800"])
def test_queue_and_worker_refuse_an_empty_or_unencodable_queue_name(name: str) -> None:
    backend = MemoryBackend()
    expected = "empty" if name == "" else "cannot be encoded as UTF-8"
    builders: list[Callable[[], Any]] = [
        lambda: Queue("memory://", name),
        lambda: Queue(backend, name),
        lambda: Worker(name, backend),
        lambda: Worker([name], backend),
        lambda: Worker(["ok", name], backend),
    ]
    for build in builders:
        with pytest.raises(ValueError, match=f"queue name {re.escape(repr(name))} .*{expected}"):
            build()


def test_queue_refuses_a_queue_name_from_the_environment_that_cannot_be_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A name with bytes that are not UTF-8 reaches os.environ with surrogate escapes.
    monkeypatch.setenv("SHEPPY_QUEUE", "jobs-\udcff")
    with pytest.raises(ValueError, match="cannot be encoded as UTF-8"):
        Queue(MemoryBackend())


def test_the_kit_checks_return_what_they_accept() -> None:
    assert check_queue_name("a\x00b:*{}") == "a\x00b:*{}"  # any other unicode is a fine queue name
    ident = str(uuid.uuid4())
    assert check_task_id(ident) is ident
    for bad in ("", None, 3):
        with pytest.raises(BackendInputError, match="queue name"):
            check_queue_name(bad)


# -- the command line ----------------------------------------------------------------------------


def _one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and "Traceback" not in output
    return lines[0]


def test_cli_a_delay_too_far_in_the_future_is_one_line_and_exit_code_2() -> None:
    for delay in ("99999999999d", "1" + "0" * 400, "365001d"):
        result = runner.invoke(
            app, ["task", "schedule", "bad_input_tasks:double", "-a", "[1]", "--delay", delay, "-u", "memory://"]
        )
        assert result.exit_code == 2, result.output
        line = _one_error_line(result.output)
        assert f"--delay {delay!r}: too far in the future (max 365000d" in line, line
    ok = runner.invoke(
        app, ["task", "schedule", "bad_input_tasks:double", "-a", "[1]", "--delay", "365000d", "-u", "memory://"]
    )
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("depth", [300, 20_000])
def test_cli_arguments_nested_absurdly_deep_are_one_clear_line(depth: int) -> None:
    deep = "[" * depth + "]" * depth
    for command in (["task", "add", "-u", "memory://"], ["task", "test"]):
        for option in (["-a", f"[{deep}]"], ["-k", f'{{"value": {deep}}}']):
            result = runner.invoke(app, [*command, "bad_input_tasks:echo", *option])
            assert result.exit_code == 1, result.output
            assert "nested too deeply" in _one_error_line(result.output)


@pytest.mark.parametrize("literal", ["1e309", "NaN", "-Infinity"])
def test_cli_a_non_finite_argument_is_one_line_naming_it(literal: str) -> None:
    result = runner.invoke(app, ["task", "add", "bad_input_tasks:double", "-a", f"[{literal}]", "-u", "memory://"])
    assert result.exit_code == 1, result.output
    assert "argument 'x' is not a finite number" in _one_error_line(result.output)


# -- the web router --------------------------------------------------------------------------------


@pytest.fixture
def memory() -> MemoryBackend:
    return MemoryBackend(instant_processing=False)


@pytest.fixture
def client(memory: MemoryBackend) -> Iterator[TestClient]:
    web = FastAPI()
    web.include_router(create_router(memory, prefix="/sheppy"))
    with TestClient(web) as test_client:
        yield test_client


def _post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    # json.dumps writes NaN/Infinity tokens, as a careless client would.
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.mark.parametrize("delay", [1e300, -1.0, math.nan, math.inf])
def test_router_an_impossible_delay_is_a_422_with_a_message(client: TestClient, delay: float) -> None:
    body = {"func": "bad_input_tasks:double", "args": [1], "delay_seconds": delay}
    response = _post(client, "/sheppy/q/tasks/schedule", body)
    assert response.status_code == 422, response.text
    assert "delay_seconds" in response.text
    assert client.get("/sheppy/q/tasks").json() == []


def test_router_an_impossible_retry_delay_is_a_422(client: TestClient) -> None:
    created = _post(client, "/sheppy/q/tasks", {"func": "bad_input_tasks:double", "args": [1]})
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    for delay in (1e300, math.nan):
        response = _post(client, f"/sheppy/q/tasks/{task_id}/retry", {"delay_seconds": delay})
        assert response.status_code == 422, response.text


def test_router_a_non_finite_argument_is_a_400_naming_it(client: TestClient) -> None:
    response = _post(client, "/sheppy/q/tasks", {"func": "bad_input_tasks:double", "args": [math.inf]})
    assert response.status_code == 400, response.text
    assert "argument 'x' is not a finite number" in response.json()["detail"]
    assert client.get("/sheppy/q/size").json() == 0
