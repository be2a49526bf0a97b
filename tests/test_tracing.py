"""OpenTelemetry traces (``sheppy_core.tracing``), with the SDK's in-memory exporter, in one process.

The span that enqueues a task (``send {queue}``, PRODUCER) is the parent of, and linked from, each
``process {queue}`` span (CONSUMER) of its attempts; tasks added while an attempt runs (chained tasks,
the next workflow step) continue its trace. The worker-process and per-backend cases are in
``tests/integration/test_telemetry_backends.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import tasks_for_tests as t
import workflows_for_tests as wf
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sheppy_core import MemoryBackend, Queue, Worker, tracing

EXPORTER = InMemorySpanExporter()


def _install_provider() -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))


_install_provider()


@pytest.fixture(autouse=True)
def tracing_on() -> Iterator[None]:
    EXPORTER.clear()
    tracing.enable()
    yield
    tracing.disable()


@pytest.fixture
def queue(backend: MemoryBackend) -> Queue:
    return Queue(backend, f"tr-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def worker(backend: MemoryBackend, queue: Queue) -> AsyncIterator[Worker]:
    running = Worker(queue.name, backend, enable_cron_manager=False)
    running._scheduler_polling_interval = 0.05
    job = asyncio.create_task(running.work(register_signal_handlers=False))
    yield running
    running.stop()
    await asyncio.wait_for(job, 10)


def spans(name: str) -> list[ReadableSpan]:
    return [span for span in EXPORTER.get_finished_spans() if span.name == name]


def ids(span: ReadableSpan) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


def parent_ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.trace_id, span.parent.span_id


async def settled(name: str, count: int) -> list[ReadableSpan]:
    """The spans called ``name`` once ``count`` of them ended (a span ends just after its outcome is
    stored)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(found := spans(name)) < count:
        assert loop.time() < deadline, f"{len(found)} span(s) {name!r}, expected {count}"
        await asyncio.sleep(0.01)
    return found


async def test_process_span_is_a_child_of_and_links_to_the_send_span(queue: Queue, worker: Worker) -> None:
    task = t.add(1, 2)
    await queue.add(task)
    stored = await queue.get_task(task)
    assert stored is not None and stored.trace_context["traceparent"].startswith("00-")
    await queue.wait_for(task, timeout=10)
    [send] = spans(f"send {queue.name}")
    [process] = await settled(f"process {queue.name}", 1)
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert parent_ids(process) == ids(send)
    assert [(link.context.trace_id, link.context.span_id) for link in process.links] == [ids(send)]
    assert process.attributes is not None
    assert dict(process.attributes) == {
        "messaging.system": "sheppy",
        "messaging.destination.name": queue.name,
        "messaging.operation.type": "process",
        "messaging.message.id": str(task.id),
        "sheppy.task.name": "tasks_for_tests:add",
        "sheppy.task.attempt": 1,
    }
    assert send.attributes is not None and send.attributes["messaging.message.id"] == str(task.id)


async def test_each_attempt_of_a_retried_task_has_the_same_parent(queue: Queue, worker: Worker) -> None:
    task = t.fails_once(f"tr-{uuid.uuid4()}")
    await queue.add(task)
    done = await queue.wait_for(task, timeout=10)
    assert done is not None and done.status == "completed"
    [send] = spans(f"send {queue.name}")
    first, second = sorted(await settled(f"process {queue.name}", 2), key=lambda s: s.start_time or 0)
    assert parent_ids(first) == parent_ids(second) == ids(send)
    assert first.attributes is not None and second.attributes is not None
    assert (first.attributes["sheppy.task.attempt"], second.attributes["sheppy.task.attempt"]) == (1, 2)
    assert first.attributes["error.type"] == "RuntimeError"
    assert "error.type" not in second.attributes


async def test_chained_tasks_continue_the_trace_of_their_parent(queue: Queue, worker: Worker) -> None:
    chain = t.parent(5)
    await queue.add(chain)
    await queue.wait_for(chain, timeout=10)
    processes = await settled(f"process {queue.name}", 4)
    [first_send, child_send] = sorted(spans(f"send {queue.name}"), key=lambda s: s.start_time or 0)
    [parent_process] = [s for s in processes if _task_name(s) == "tasks_for_tests:parent"]
    children = [s for s in processes if _task_name(s) == "tasks_for_tests:add"]
    assert parent_ids(parent_process) == ids(first_send)
    assert parent_ids(child_send) == ids(parent_process)
    assert len(children) == 3 and all(parent_ids(c) == ids(child_send) for c in children)


async def test_workflow_steps_continue_the_trace_that_started_it(queue: Queue, worker: Worker) -> None:
    with trace.get_tracer("test").start_as_current_span("request") as request:
        started = await queue.add_workflow(wf.sequential(1))
    done = await queue.wait_for_workflow(started.workflow, timeout=10)
    assert done is not None
    steps = sorted(await settled(f"process {queue.name}", 2), key=lambda s: s.start_time or 0)
    assert [_task_name(s) for s in steps] == ["workflows_for_tests:add", "workflows_for_tests:add"]
    trace_id = request.get_span_context().trace_id
    assert all(ids(step)[0] == trace_id for step in steps)
    sends = {ids(s): s for s in spans(f"send {queue.name}")}
    second_send = sends[parent_ids(steps[1])]
    assert parent_ids(second_send) == ids(steps[0])  # added by the first step's resume


async def test_nothing_is_carried_when_tracing_is_off(queue: Queue) -> None:
    tracing.disable()
    task = t.add(1, 1)
    with trace.get_tracer("test").start_as_current_span("request"):
        await queue.add(task)
    stored = await queue.get_task(task)
    assert stored is not None and stored.trace_context == {}
    assert spans(f"send {queue.name}") == []


def _task_name(span: ReadableSpan) -> Any:
    return (span.attributes or {}).get("sheppy.task.name")


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [("tracing", "opentelemetry", "otel"), ("prometheus", "prometheus_client", "prometheus")],
)
def test_enable_without_the_library_says_what_to_install(module: str, missing: str, extra: str) -> None:
    script = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        f"from sheppy_core import {module}\n"
        "try:\n"
        f"    {module}.enable()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"pip install 'sheppy-core[{extra}]'" in out.stdout, out.stdout + out.stderr
