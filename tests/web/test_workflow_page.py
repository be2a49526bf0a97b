"""The workflow page's graph (httpx + ASGITransport): a fan-out is drawn as one row of parallel steps, a
sequential step as a row of its own, a record from before ``step_groups`` as a chain."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import httpx
import pytest
import workflows_for_tests as wf

from sheppy_core import MemoryBackend, Queue, Worker
from sheppy_core._workflow import step_id
from sheppy_core.web import create_dashboard

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

QUEUE = "jobs"


async def page_of(backend: MemoryBackend, workflow_id: uuid.UUID | str) -> str:
    app = create_dashboard(backend, queues=[QUEUE])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash") as client:
        response = await client.get(f"/queues/{QUEUE}/workflows/{workflow_id}")
    assert response.status_code == 200, response.text[:500]
    return response.text


def drawn_steps(page: str) -> list[dict[str, str]]:
    """Each ``workflow-step`` element's data-* attributes, in page order."""
    steps = []
    for element in re.findall(r'<g [^>]*data-testid="workflow-step"[^>]*>', page):
        steps.append(dict(re.findall(r'data-([a-z-]+)="([^"]*)"', element)))
    return steps


def svg_width(page: str) -> int:
    match = re.search(r'<svg [^>]*data-testid="workflow-graph"[^>]*\bwidth="(\d+)"', page)
    assert match, "no workflow graph on the page"
    return int(match.group(1))


async def finished(backend: MemoryBackend, record: Any) -> Any:
    queue = Queue(backend, QUEUE)
    started = await queue.add_workflow(record)
    for _ in range(10):
        worker = Worker(QUEUE, backend, enable_cron_manager=False)
        await worker.work(oneshot=True, register_signal_handlers=False)
        done = await queue.wait_for_workflow(started.workflow, timeout=0)
        if done is not None and done.is_finished:
            return done
    raise AssertionError("the workflow did not finish within 10 worker passes")


async def store_record(backend: MemoryBackend, **fields: Any) -> str:
    """A workflow record as a backend holds it (JSON), written directly: what an older version wrote."""
    workflow_id = str(uuid.uuid4())
    record = {"id": workflow_id, "func": "workflows_for_tests:fan_out_fan_in", "args": [1], "kwargs": {},
              "created_at": "2026-01-01T00:00:00+00:00", "version": 1, **fields}
    assert await backend.store_workflow(QUEUE, record)
    return workflow_id


async def test_the_parallel_steps_of_a_fan_out_share_one_row(backend: MemoryBackend) -> None:
    done = await finished(backend, wf.prepare_fan_out_finish(3))
    page = await page_of(backend, done.id)
    steps = drawn_steps(page)
    assert [s["task-id"] for s in steps] == done.task_order
    assert all(s["state"] == "completed" for s in steps)
    rows = [(s["row"], s["column"]) for s in steps]
    assert rows == [("0", "0"), ("1", "0"), ("1", "1"), ("1", "2"), ("2", "0")]
    for step in steps:  # every box still leads to its task's page
        assert f'href="/queues/{QUEUE}/tasks/{step["task-id"]}"' in page


async def test_a_record_from_before_step_groups_is_drawn_as_a_chain(backend: MemoryBackend) -> None:
    workflow_id = await store_record(backend, task_order=[str(uuid.uuid4()) for _ in range(3)])
    steps = drawn_steps(await page_of(backend, workflow_id))
    assert [(s["row"], s["column"]) for s in steps] == [("0", "0"), ("1", "0"), ("2", "0")]


async def test_waiting_steps_are_named_and_a_long_name_is_cut_with_a_tooltip(backend: MemoryBackend) -> None:
    long_name = "reporting.nightly:rebuild_every_customer_invoice_archive"
    ids = [str(step_id(uuid.uuid4(), i)) for i in range(2)]
    workflow_id = await store_record(
        backend, task_order=ids, step_signatures=[f"{long_name}#0123456789abcdef", "m:short#0"],
        step_groups=[2], pending_task_ids=ids,
    )
    page = await page_of(backend, workflow_id)
    assert [s["state"] for s in drawn_steps(page)] == ["pending", "pending"]
    labels = [html.unescape(text) for text in re.findall(r'<text [^>]*class="label"[^>]*>([^<]*)<', page)]
    assert labels[1].endswith("short")
    assert long_name not in labels[0] and labels[0].endswith("…")
    titles = [html.unescape(text) for text in re.findall(r"<title>([^<]*)</title>", page)]
    assert any(long_name in title for title in titles)


async def test_the_graph_is_as_wide_as_its_widest_row_and_a_wide_fan_out_wraps(
    backend: MemoryBackend,
) -> None:
    def record(width: int) -> dict[str, Any]:
        return {"task_order": [str(uuid.uuid4()) for _ in range(width)], "step_groups": [width]}

    one, three, twenty = [await store_record(backend, **record(width)) for width in (1, 3, 20)]
    widths = [svg_width(await page_of(backend, workflow_id)) for workflow_id in (one, three, twenty)]
    assert widths[0] < widths[1] < widths[2] <= 1240  # the 20-wide row wraps inside a 1280 px window
    steps = drawn_steps(await page_of(backend, twenty))
    assert {s["row"] for s in steps} == {"0"}
    assert sorted(int(s["column"]) for s in steps) == list(range(20))
