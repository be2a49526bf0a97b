"""The dashboard in a real browser, against a real ``sheppy web`` with real workers, on SQLite and on
PostgreSQL (the ``store_url`` fixture): the page contract of ``sheppy_core.web``, as an operator uses it.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from browser_harness import OPERATOR, TASK_TIMEOUT, VIEWER, ServerProcess, stop_process, wait_for_tasks
from browser_tasks import boom, fails_first_time, fan_out_fan_in, noop
from playwright.sync_api import Locator, Page, expect

from sheppy_core.experimental import SyncQueue
from sheppy_core.models import Task

ACTION_BUTTONS = "button[data-testid^=action-]"

FORGE_POST = """async ([url, token]) => {
    const response = await fetch(url, {
        method: "POST", credentials: "same-origin", redirect: "follow",
        headers: {"Content-Type": "application/x-www-form-urlencoded"},
        body: new URLSearchParams({csrf_token: token}).toString(),
    });
    return response.status;
}"""
"""A POST the page did not offer, sent from the page itself (same origin, its cookies and credentials)."""


def task_url(server: ServerProcess, queue_name: str, task: Task[Any] | str) -> str:
    task_id = task if isinstance(task, str) else str(task.id)
    return f"{server.base_url}/queues/{quote(queue_name, safe='')}/tasks/{task_id}"


def queue_row(page: Page, queue_name: str) -> Locator:
    return page.locator(f'tr[data-testid=queue-row][data-queue="{queue_name}"]')


def csrf_cookie(page: Page) -> str:
    """The double-submit token the dashboard set in this browser context."""
    tokens = [c.get("value", "") for c in page.context.cookies() if c.get("name") == "sheppy_csrf"]
    assert tokens, "the dashboard set no sheppy_csrf cookie"
    return tokens[0]


def reload_until_status(page: Page, status: str, *, timeout: float = TASK_TIMEOUT) -> None:
    """Reload the task page until its status reads ``status``, bounded (the task page is not live)."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(rf"\b{status}\b", re.IGNORECASE)
    while True:
        try:
            expect(page.get_by_test_id("task-status")).to_have_text(pattern, timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()


def finished_failure(
    queue: SyncQueue, start_worker: Callable[[], subprocess.Popen[bytes]], task: Task[Any]
) -> Task[Any]:
    """Queue ``task``, let a real worker run it to its failure, stop the worker; the stored task."""
    queue.add(task)
    worker = start_worker()
    wait_for_tasks(queue, [task])
    stop_process(worker)
    stored = queue.get_task(task)
    assert stored is not None and stored.status == "failed", stored
    return stored


def test_overview_shows_the_right_counts(
    queue: SyncQueue, queue_name: str, start_worker: Callable[[], subprocess.Popen[bytes]],
    start_dashboard: Callable[..., ServerProcess], new_page: Callable[..., Page],
) -> None:
    ran = [boom("overview failure") for _ in range(2)] + [noop() for _ in range(3)]
    queue.add(ran)
    worker = start_worker()
    wait_for_tasks(queue, ran)
    stop_process(worker)
    queue.add([noop() for _ in range(4)])
    queue.schedule(noop(), timedelta(hours=1))

    server = start_dashboard()
    page = new_page(VIEWER)
    page.goto(server.base_url + "/")
    row = queue_row(page, queue_name)
    expected = {
        "pending": "4", "scheduled": "1", "processing": "0", "completed": "3", "failed": "2",
        "cancelled": "0", "crashed": "0", "quarantined": "0",
    }
    for status, count in expected.items():
        expect(row.get_by_test_id(f"count-{status}")).to_have_text(count)
    expect(row.get_by_test_id("oldest-ready")).to_have_text(re.compile(r"\d"))  # four tasks are waiting


def test_failed_tasks_traceback_is_shown_on_its_page(
    queue: SyncQueue, queue_name: str, start_worker: Callable[[], subprocess.Popen[bytes]],
    start_dashboard: Callable[..., ServerProcess], new_page: Callable[..., Page],
) -> None:
    failed = finished_failure(queue, start_worker, boom("disk on fire 4711"))

    server = start_dashboard()
    page = new_page(VIEWER)
    page.goto(task_url(server, queue_name, failed))
    expect(page.get_by_test_id("task-status")).to_have_text(re.compile(r"\bfailed\b", re.IGNORECASE))
    tracebacks = page.locator("pre[data-testid=traceback]")
    expect(tracebacks).to_have_count(1)  # it ran once: one attempt, one traceback
    traceback = tracebacks.first
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("KnownFailure")
    expect(traceback).to_contain_text("disk on fire 4711")
    expect(traceback).to_contain_text("browser_tasks.py")


def test_retry_from_the_page_makes_the_task_run_again(
    queue: SyncQueue, queue_name: str, start_worker: Callable[[], subprocess.Popen[bytes]],
    start_dashboard: Callable[..., ServerProcess], new_page: Callable[..., Page], tmp_path: Path,
) -> None:
    marker = tmp_path / "fails_first_time.marker"
    failed = finished_failure(queue, start_worker, fails_first_time(str(marker)))
    assert marker.exists()

    server = start_dashboard()
    start_worker()  # idle until the page retries the task
    page = new_page(OPERATOR)
    page.goto(task_url(server, queue_name, failed))
    expect(page.get_by_test_id("task-status")).to_have_text(re.compile(r"\bfailed\b", re.IGNORECASE))
    page.get_by_test_id("action-retry").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    reload_until_status(page, "completed")
    expect(page.get_by_test_id("task-result")).to_contain_text("second attempt succeeded")
    stored = queue.get_task(failed)
    assert stored is not None and stored.status == "completed" and stored.result == "second attempt succeeded"


def test_the_live_count_changes_without_a_reload(
    queue: SyncQueue, queue_name: str,
    start_dashboard: Callable[..., ServerProcess], new_page: Callable[..., Page],
) -> None:
    queue.add(noop())
    server = start_dashboard()
    page = new_page(VIEWER)
    page.goto(server.base_url + "/")
    pending = queue_row(page, queue_name).get_by_test_id("count-pending")
    expect(pending).to_have_text("1")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.__sheppyNoReload = 'still the same document'")

    queue.add([noop(), noop()])

    expect(pending).to_have_text("3")
    assert page.evaluate("window.__sheppyNoReload") == "still the same document"
    assert navigations == []


@pytest.mark.parametrize("app_module", [False, True], ids=["sheppy_web", "create_dashboard"])
def test_a_read_only_user_gets_no_buttons_and_403_on_a_forged_post(
    app_module: bool, queue: SyncQueue, queue_name: str,
    start_worker: Callable[[], subprocess.Popen[bytes]],
    start_dashboard: Callable[..., ServerProcess], new_page: Callable[..., Page],
) -> None:
    failed = finished_failure(queue, start_worker, boom("read-only check"))
    server = start_dashboard(app_module=app_module)
    retry_url = task_url(server, queue_name, failed) + "/retry"

    viewer = new_page(VIEWER)
    viewer.goto(task_url(server, queue_name, failed))
    expect(viewer.get_by_test_id("task-status")).to_have_text(re.compile(r"\bfailed\b", re.IGNORECASE))
    expect(viewer.locator(ACTION_BUTTONS)).to_have_count(0)
    assert viewer.evaluate(FORGE_POST, [retry_url, csrf_cookie(viewer)]) == 403
    stored = queue.get_task(failed)
    assert stored is not None and stored.status == "failed"

    # The same page and POST for the operator: the buttons are there, a wrong token is refused, the
    # right one retries — so the viewer's 403 above came from the permissions, not from the form.
    operator = new_page(OPERATOR)
    operator.goto(task_url(server, queue_name, failed))
    expect(operator.get_by_test_id("action-retry")).to_be_visible()
    assert operator.evaluate(FORGE_POST, [retry_url, "not-the-token"]) == 403
    stored = queue.get_task(failed)
    assert stored is not None and stored.status == "failed"
    assert operator.evaluate(FORGE_POST, [retry_url, csrf_cookie(operator)]) == 200
    stored = queue.get_task(failed)
    assert stored is not None and stored.status != "failed"


def test_the_parallel_steps_of_a_workflow_are_drawn_side_by_side(
    queue: SyncQueue, queue_name: str, start_worker: Callable[[], subprocess.Popen[bytes]],
    start_dashboard: Callable[..., ServerProcess], new_page: Callable[..., Page],
) -> None:
    started = queue.add_workflow(fan_out_fan_in(3))
    worker = start_worker()
    done = queue.wait_for_workflow(started.workflow, timeout=TASK_TIMEOUT)
    stop_process(worker)
    assert done is not None and done.completed, done

    server = start_dashboard()
    page = new_page(VIEWER)
    page.goto(f"{server.base_url}/queues/{quote(queue_name, safe='')}/workflows/{done.id}")
    steps = page.get_by_test_id("workflow-step")
    expect(steps).to_have_count(4)
    fan_out = page.locator("[data-testid=workflow-step][data-row='0']")
    expect(fan_out).to_have_count(3)
    boxes = [fan_out.nth(i).bounding_box() for i in range(3)]
    last = page.locator("[data-testid=workflow-step][data-row='1']").bounding_box()
    assert all(box is not None for box in boxes) and last is not None
    tops = {round(box["y"]) for box in boxes if box}
    lefts = [box["x"] for box in boxes if box]
    assert len(tops) == 1, boxes  # one row: the three parallel steps at the same height
    assert lefts == sorted(lefts) and len(set(lefts)) == 3, boxes  # side by side, none on top of another
    assert last["y"] > max(tops)  # the step that waited for them is drawn below them
    # Each box still leads to its task's page.
    fan_out.nth(1).click()
    expect(page.get_by_test_id("task-status")).to_have_text(re.compile(r"\bcompleted\b", re.IGNORECASE))
    assert page.url.endswith(f"/tasks/{done.task_order[1]}")


def test_an_unknown_task_id_shows_a_404_page_with_a_message(
    queue_name: str, start_dashboard: Callable[..., ServerProcess], new_page: Callable[..., Page],
) -> None:
    server = start_dashboard()
    page = new_page(VIEWER)
    unknown = str(uuid.uuid4())
    response = page.goto(task_url(server, queue_name, unknown))
    assert response is not None and response.status == 404
    message = page.get_by_test_id("error-message")
    expect(message).to_be_visible()
    expect(message).to_have_text(re.compile(r"\S"))
