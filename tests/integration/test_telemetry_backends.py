"""Traces and metrics across processes, on each shared-store backend.

Traces: the producer (this process, the SDK's in-memory exporter) adds tasks; a ``sheppy work``
subprocess started through ``traced_worker.py`` (an SDK provider exporting spans as JSON lines to a file)
runs them. Each ``process`` span there must be a child of, and link to, the ``send`` span here: same
trace id, parent span id = the send span's id; across a retry (two process spans, one parent) and a
workflow step. Runs on SQLite, Redis and PostgreSQL; a server that is down fails the test.

Metrics: a real ``sheppy work --metrics-port`` on SQLite, scraped over HTTP (also in multi-process mode).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tasks_for_tests as t
import workflows_for_tests as wf
from _worker_processes import SHARED_STORES, TESTS_DIR
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from sheppy_core import Queue, get_backend, tracing

HERE = Path(__file__).resolve().parent
EXPORTER = InMemorySpanExporter()


def _add_exporter() -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))


_add_exporter()


@pytest.fixture
def traced() -> Iterator[None]:
    EXPORTER.clear()
    tracing.enable()
    yield
    tracing.disable()


def _sheppy_work(
    url: str, queue: str, *options: str, env: dict[str, str], bootstrap: bool, stderr: Path
) -> subprocess.Popen[bytes]:
    entry = [str(HERE / "traced_worker.py")] if bootstrap else ["-m", "sheppy_core"]
    args = [
        "work", "--backend-url", url, "--queue", queue, "--import", "tasks_for_tests", "--import",
        "workflows_for_tests", "--disable-cron-manager", *options,
    ]
    with stderr.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, *entry, *args],
            env={**os.environ, **env, "PYTHONPATH": str(TESTS_DIR)},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _span_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _worker_spans(
    path: Path, name: str, count: int, worker: subprocess.Popen[bytes]
) -> list[dict[str, Any]]:
    """The worker's spans called ``name``, once ``count`` of them are written (bounded wait)."""
    deadline = time.monotonic() + 60
    while True:
        found = [span for span in await asyncio.to_thread(_read_spans, path) if span["name"] == name]
        if len(found) >= count:
            return found
        assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        assert time.monotonic() < deadline, f"{len(found)} worker span(s) {name!r}, expected {count}"
        await asyncio.sleep(0.05)


def _send_span_of(task_id: str, queue: str) -> ReadableSpan:
    [send] = [
        s for s in EXPORTER.get_finished_spans()
        if s.name == f"send {queue}" and (s.attributes or {}).get("messaging.message.id") == task_id
    ]
    return send


@pytest.mark.timeout(180)
@pytest.mark.parametrize("url_template", SHARED_STORES)
async def test_process_spans_in_a_worker_continue_the_producer_trace(
    url_template: str, tmp_path: Path, traced: None
) -> None:
    url = url_template.format(tmp=tmp_path)
    queue = Queue(get_backend(url), f"otel-{uuid.uuid4().hex[:8]}")
    spans_file = tmp_path / "worker-spans.jsonl"
    plain, flaky = t.add(1, 2), t.fails_once(f"otel-{uuid.uuid4()}")
    await queue.add(plain)
    await queue.add(flaky)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        started = await queue.add_workflow(wf.sequential(1))
    worker = _sheppy_work(
        url, queue.name, env={"SHEPPY_TEST_SPANS": str(spans_file)}, bootstrap=True,
        stderr=tmp_path / "worker.log",
    )
    try:
        done = await queue.wait_for([plain, flaky], timeout=60)
        assert {task.status for task in done.values()} == {"completed"}
        assert await queue.wait_for_workflow(started.workflow, timeout=60) is not None
        # plain: 1 attempt, flaky: 2, the workflow: 2 steps.
        processed = await _worker_spans(spans_file, f"process {queue.name}", 5, worker)
    finally:
        _stop(worker)
        await queue.clear()
        await queue.backend.disconnect()

    def of(task_id: str) -> list[dict[str, Any]]:
        return [s for s in processed if s["attributes"]["messaging.message.id"] == task_id]

    for task, attempts in ((plain, 1), (flaky, 2)):
        trace_id, send_id = _span_ids(_send_span_of(str(task.id), queue.name))
        spans = of(str(task.id))
        assert len(spans) == attempts
        assert {(s["trace_id"], s["parent_span_id"]) for s in spans} == {(trace_id, send_id)}
        assert all(s["links"] == [send_id] and s["kind"] == "CONSUMER" for s in spans)
        assert sorted(s["attributes"]["sheppy.task.attempt"] for s in spans) == list(range(1, attempts + 1))
    assert [s["attributes"].get("error.type") for s in of(str(flaky.id))].count("RuntimeError") == 1

    steps = [s for s in processed if s["attributes"]["sheppy.task.name"] == "workflows_for_tests:add"]
    assert len(steps) == 2
    request_trace = format(request.get_span_context().trace_id, "032x")
    assert {s["trace_id"] for s in steps} == {request_trace}
    worker_sends = {
        s["span_id"]: s for s in _read_spans(spans_file) if s["name"] == f"send {queue.name}"
    }
    # One step was enqueued here (add_workflow), the next by the worker inside the first step's span.
    chained = [s for s in steps if s["parent_span_id"] in worker_sends]
    assert len(chained) == 1
    [first] = [s for s in steps if s is not chained[0]]
    assert worker_sends[chained[0]["parent_span_id"]]["parent_span_id"] == first["span_id"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


Sample = tuple[str, frozenset[tuple[str, str]]]


def _samples(text: str) -> dict[Sample, float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _scrape_until(
    port: int, wanted: dict[Sample, float], worker: subprocess.Popen[bytes]
) -> tuple[str, dict[Sample, float]]:
    """The scraped text and its samples once they hold ``wanted`` (bounded wait)."""
    deadline = time.monotonic() + 60
    samples: dict[Sample, float] = {}
    while True:
        try:
            text = await asyncio.to_thread(_scrape, port)
            samples = _samples(text)
        except OSError:
            samples = {}  # not listening yet
        if all(samples.get(key) == value for key, value in wanted.items()):
            return text, samples
        assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        missing = {key: samples.get(key) for key, value in wanted.items() if samples.get(key) != value}
        assert time.monotonic() < deadline, f"/metrics differs: {missing}"
        await asyncio.sleep(0.1)


def _sample(name: str, task: str, **labels: str) -> Sample:
    return name, frozenset({"queue": "metrics", "task": f"tasks_for_tests:{task}", **labels}.items())


@pytest.mark.timeout(180)
@pytest.mark.parametrize("multiprocess", [False, True], ids=["one_process", "multiprocess_dir"])
async def test_sheppy_work_serves_metrics_by_queue_task_and_status(
    tmp_path: Path, multiprocess: bool
) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    queue = Queue(get_backend(url), "metrics")
    plain, broken = t.add(1, 2), t.always_fails()
    await queue.add([plain, broken])
    port = _free_port()
    env: dict[str, str] = {}
    if multiprocess:
        (tmp_path / "prom").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
    worker = _sheppy_work(
        url, queue.name, "--metrics-port", str(port), env=env, bootstrap=False, stderr=tmp_path / "worker.log"
    )
    try:
        done = await queue.wait_for([plain, broken], timeout=60)
        assert done[broken.id].status == "failed"
        text, samples = await _scrape_until(port, {
            _sample("sheppy_tasks_enqueued_total", "add"): 0.0,  # added by this process, not the worker
            _sample("sheppy_tasks_started_total", "add"): 1.0,
            _sample("sheppy_tasks_finished_total", "add", status="completed"): 1.0,
            _sample("sheppy_tasks_started_total", "always_fails"): 3.0,
            _sample("sheppy_tasks_retried_total", "always_fails"): 2.0,
            _sample("sheppy_tasks_finished_total", "always_fails", status="failed"): 1.0,
            _sample("sheppy_task_duration_seconds_count", "add"): 1.0,
            _sample("sheppy_task_queue_wait_seconds_count", "always_fails"): 3.0,
        }, worker)
        assert samples[("sheppy_worker_active_tasks", frozenset({("queue", "metrics")}))] == 0
        ours = {label for name, labels in samples if name.startswith("sheppy_") for label, _ in labels}
        assert ours <= {"queue", "task", "status", "le"}
        assert str(plain.id) not in text and str(broken.id) not in text
        assert "sheppy_worker_active_tasks" in text
    finally:
        _stop(worker)
        await queue.backend.disconnect()
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()
