"""The dashboard over HTTP (httpx + ASGITransport): pages, numbers, actions, CSRF, permissions, errors."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sheppy_core import MemoryBackend, Queue
from sheppy_core.backend import Backend
from sheppy_core.web import create_dashboard
from tests import tasks_for_tests as t

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

def _cell(html: str, testid: str, **attrs: str) -> str:
    """The text of the first element with this data-testid inside the element matching ``attrs``."""
    scope = html
    for name, value in attrs.items():
        start = html.index(f'data-{name}="{value}"')
        scope = html[start : html.index("</tr>", start)] if "</tr>" in html[start:] else html[start:]
    match = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', scope)
    assert match, f"no {testid} in {scope[:300]}"
    return match.group(1).strip()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no csrf_token in the page"
    return match.group(1)


async def _client(backend: Backend, **options: Any) -> httpx.AsyncClient:
    app = create_dashboard(backend, **options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash")


async def _fill(backend: Backend) -> dict[str, Any]:
    """Two completed, one failed and three pending tasks on queue "jobs"."""
    inline = Queue(backend, "jobs", run_inline=True)
    waiting = Queue(backend, "jobs", run_inline=False)
    done = [t.add(1, 2), t.add(3, 4)]
    for task in done:
        await inline.add(task)
    broken = t.always_fails()
    await inline.add(broken)
    pending = [t.add(i, i) for i in range(3)]
    await waiting.add(pending)
    return {"done": done, "broken": broken, "pending": pending}


async def test_overview_shows_the_counts_of_each_queue(backend: MemoryBackend) -> None:
    await _fill(backend)
    async with await _client(backend) as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert _cell(page.text, "count-completed", queue="jobs") == "2"
    assert _cell(page.text, "count-failed", queue="jobs") == "1"
    assert _cell(page.text, "count-pending", queue="jobs") == "3"
    assert _cell(page.text, "oldest-ready", queue="jobs").endswith("s")
    assert 'data-testid="throughput-chart"' in page.text
    assert "/static/uPlot.iife.min.js" in page.text
    # Everything the page loads comes from the app itself (a random CSRF token may spell "cdn").
    loaded = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]*)"', page.text)
    assert loaded and all(url.startswith("/static/") for url in loaded), loaded


async def test_task_list_filters_by_status_and_pages_with_a_cursor(backend: MemoryBackend) -> None:
    filled = await _fill(backend)
    async with await _client(backend) as client:
        page = await client.get("/queues/jobs/tasks", params={"status": "pending"})
        ids = re.findall(r'data-testid="task-row" data-task-id="([^"]+)"', page.text)
        assert sorted(ids) == sorted(str(task.id) for task in filled["pending"])
        everything = await client.get("/queues/jobs/tasks")
        assert len(re.findall('data-testid="task-row"', everything.text)) == 6


async def test_bad_filters_and_unknown_ids_are_4xx_pages(backend: MemoryBackend) -> None:
    await _fill(backend)
    async with await _client(backend) as client:
        for url, status, words in [
            ("/queues/jobs/tasks?status=bogus", 400, "unknown status"),
            ("/queues/jobs/tasks?since=yesterday", 400, "bad since"),
            ("/queues/jobs/tasks?cursor=%%%", 400, "cursor"),
            ("/queues/nope/tasks", 404, "unknown queue"),
            ("/queues/jobs/tasks/not-a-task", 404, "unknown task"),
            ("/queues/jobs/workflows/nope", 404, "unknown workflow"),
        ]:
            page = await client.get(url)
            assert page.status_code == status, url
            assert words in _cell(page.text, "error-message"), url


async def test_task_detail_shows_args_result_and_every_traceback(backend: MemoryBackend) -> None:
    filled = await _fill(backend)
    async with await _client(backend) as client:
        done = await client.get(f"/queues/jobs/tasks/{filled['done'][0].id}")
        broken = await client.get(f"/queues/jobs/tasks/{filled['broken'].id}")
    assert _cell(done.text, "task-status") == "completed"
    assert '"args": [\n    1,\n    2\n  ]' in done.text.replace("&#34;", '"')
    assert _cell(done.text, "task-result") == "3"
    assert _cell(broken.text, "task-status") == "failed"
    assert len(re.findall(r'<pre data-testid="traceback">', broken.text)) == 3  # retry=2: three attempts
    assert "ValueError" in broken.text
    assert "action-retry" not in broken.text  # read-only by default


async def test_actions_need_csrf_and_permission(backend: MemoryBackend, caplog: Any) -> None:
    filled = await _fill(backend)
    broken = filled["broken"].id
    async with await _client(backend) as reader:
        page = await reader.get(f"/queues/jobs/tasks/{broken}")
        token = _csrf(page.text)
        denied = await reader.post(f"/queues/jobs/tasks/{broken}/retry", data={"csrf_token": token})
        assert denied.status_code == 403
        assert "may not retry" in _cell(denied.text, "error-message")
    async with await _client(backend, permissions=lambda user, action, queue: True) as admin:
        page = await admin.get(f"/queues/jobs/tasks/{broken}")
        assert 'data-testid="action-retry"' in page.text
        forged = await admin.post(f"/queues/jobs/tasks/{broken}/retry", data={"csrf_token": "forged"})
        assert forged.status_code == 403
        with caplog.at_level(logging.INFO, logger="sheppy.web"):
            token = _csrf(page.text)
            done = await admin.post(f"/queues/jobs/tasks/{broken}/retry", data={"csrf_token": token})
        assert done.status_code == 303
        assert f"did retry on queue jobs task {broken}" in caplog.text
        after = await admin.get(done.headers["location"])
        assert "queued for retry" in _cell(after.text, "flash")
        assert _cell(after.text, "task-status") == "pending"


async def test_cancel_delete_and_bulk_go_through_the_queue(backend: MemoryBackend) -> None:
    filled = await _fill(backend)
    async with await _client(backend, permissions=lambda user, action, queue: True) as admin:
        page = await admin.get("/queues/jobs/tasks")
        token = _csrf(page.text)
        pending = [str(task.id) for task in filled["pending"]]
        chosen = {"csrf_token": token, "task_id": pending[:2]}
        cancelled = await admin.post("/queues/jobs/bulk/cancel", data=chosen)
        assert cancelled.status_code == 303
        assert "2 of 2" in (await admin.get(cancelled.headers["location"])).text
        first_done = filled["done"][0].id
        deleted = await admin.post(f"/queues/jobs/tasks/{first_done}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        gone = await admin.get(f"/queues/jobs/tasks/{filled['done'][0].id}")
        assert gone.status_code == 404
        refused = await admin.post(f"/queues/jobs/tasks/{pending[2]}/delete", data={"csrf_token": token})
        assert refused.status_code == 409
    counts = await backend.count_by_status("jobs")
    assert counts["cancelled"] == 2 and counts["completed"] == 1 and counts["pending"] == 1


async def test_clone_validates_the_edited_arguments_first(backend: MemoryBackend) -> None:
    filled = await _fill(backend)
    source = filled["done"][0].id
    async with await _client(backend, permissions=lambda user, action, queue: True) as admin:
        token = _csrf((await admin.get(f"/queues/jobs/tasks/{source}")).text)
        before = await backend.count_by_status("jobs")
        bad = await admin.post(
            f"/queues/jobs/tasks/{source}/clone",
            data={"csrf_token": token, "args": '["x", 2]', "kwargs": "{}"},
        )
        assert bad.status_code == 422
        assert "invalid arguments for" in _cell(bad.text, "error-message")
        assert "args[0] (x): Input should be a valid integer" in _cell(bad.text, "error-message")
        assert await backend.count_by_status("jobs") == before
        good = await admin.post(
            f"/queues/jobs/tasks/{source}/clone",
            data={"csrf_token": token, "args": "[5, 6]", "kwargs": "{}"},
        )
        assert good.status_code == 303
    assert (await backend.count_by_status("jobs"))["pending"] == before["pending"] + 1


async def test_failures_are_grouped_and_retried_per_group(backend: MemoryBackend) -> None:
    await _fill(backend)
    await Queue(backend, "jobs", run_inline=True).add(t.always_fails())
    async with await _client(backend, permissions=lambda user, action, queue: True) as admin:
        page = await admin.get("/queues/jobs/failures")
        assert _cell(page.text, "group-count") == "2"
        assert 'data-exception="ValueError"' in page.text
        retried = await admin.post("/queues/jobs/failures/retry?exception=ValueError",
                                   data={"csrf_token": _csrf(page.text)})
        assert retried.status_code == 303
    assert (await backend.count_by_status("jobs"))["failed"] == 0


async def test_workers_crons_workflows_events_and_health(backend: MemoryBackend) -> None:
    await _fill(backend)
    await backend.register_worker({"id": "worker-a", "host": "h", "queues": ["jobs"]}, ttl=60)
    await Queue(backend, "jobs", run_inline=False).add_cron(t.add(1, 1), "*/5 * * * *")
    async with await _client(backend, permissions=lambda user, action, queue: True) as admin:
        workers = await admin.get("/workers")
        assert 'data-testid="worker-row" data-worker-id="worker-a"' in workers.text
        overview = await admin.get("/")
        assert _cell(overview.text, "workers-online", queue="jobs") == "1"
        crons = await admin.get("/queues/jobs/crons")
        assert len(re.findall('data-testid="cron-row"', crons.text)) == 1
        assert 'data-testid="cron-trigger"' in crons.text
        assert (await admin.get("/queues/jobs/workflows")).status_code == 200
        events = await admin.get("/events?max_events=1")
        assert events.headers["content-type"].startswith("text/event-stream")
        assert events.text.startswith("event: counts\ndata: ")
        assert '"pending": 3' in events.text
        assert (await admin.get("/healthz")).text == "ok"
        assert (await admin.get("/static/htmx.min.js")).status_code == 200


async def test_sqlite_file_backend_serves_the_same_pages(tmp_path: Path) -> None:
    pytest.importorskip("sheppy_sqlite")
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    queue = Queue(url, "jobs", run_inline=False)
    await queue.add([t.add(1, 2), t.add(2, 3)])
    await queue.backend.disconnect()
    async with await _client(url) as client:  # type: ignore[arg-type]
        page = await client.get("/")
        assert _cell(page.text, "count-pending", queue="jobs") == "2"
        tasks = await client.get("/queues/jobs/tasks", params={"status": "pending"})
        assert len(re.findall('data-testid="task-row"', tasks.text)) == 2



async def test_basic_auth_names_the_user_the_permissions_see(backend: MemoryBackend) -> None:
    filled = await _fill(backend)
    asked: list[tuple[str | None, str, str]] = []

    def only_alice(user: str | None, action: str, queue: str) -> bool:
        asked.append((user, action, queue))
        return user == "alice"

    async with await _client(backend, permissions=only_alice, basic_auth={"alice": "pw", "bob": "pw2"}) as c:
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/healthz")).status_code == 200
        broken = filled["broken"].id
        bob = await c.get(f"/queues/jobs/tasks/{broken}", auth=("bob", "pw2"))
        assert 'data-testid="action-retry"' not in bob.text
        alice = await c.get(f"/queues/jobs/tasks/{broken}", auth=("alice", "pw"))
        assert 'data-testid="action-retry"' in alice.text
    assert ("bob", "retry", "jobs") in asked and ("alice", "retry", "jobs") in asked


def test_cli_refuses_a_public_host_without_auth() -> None:
    from typer.testing import CliRunner

    from sheppy_core.cli import app

    result = CliRunner().invoke(app, ["web", "-u", "memory://", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "not loopback" in result.output


async def test_next_page_links_list_every_task_once(backend: MemoryBackend) -> None:
    queued = [t.add(i, 1) for i in range(55)]
    await Queue(backend, "jobs", run_inline=False).add(queued)
    seen: list[str] = []
    async with await _client(backend) as client:
        url: str | None = "/queues/jobs/tasks?status=pending"
        pages = 0
        while url is not None and pages < 5:
            page = await client.get(url.replace("&amp;", "&"))
            assert page.status_code == 200
            seen += re.findall(r'data-testid="task-row" data-task-id="([^"]+)"', page.text)
            link = re.search(r'data-testid="next-page" href="([^"]+)"', page.text)
            url, pages = (link.group(1) if link else None), pages + 1
    assert pages == 2
    assert sorted(seen) == sorted(str(task.id) for task in queued)


async def test_cron_trigger_and_delete_and_run_now(backend: MemoryBackend) -> None:
    queue = Queue(backend, "jobs", run_inline=False)
    await queue.add_cron(t.add(1, 1), "*/5 * * * *")
    later = t.add(7, 7)
    await queue.schedule(later, timedelta(hours=1))
    async with await _client(backend, permissions=lambda user, action, queue: True) as admin:
        page = await admin.get("/queues/jobs/crons")
        cron_id = re.findall(r'data-testid="cron-row" data-cron-id="([^"]+)"', page.text)[0]
        token = _csrf(page.text)
        triggered = await admin.post(f"/queues/jobs/crons/{cron_id}/trigger", data={"csrf_token": token})
        assert triggered.status_code == 303
        assert (await backend.count_by_status("jobs"))["pending"] == 1
        deleted = await admin.post(f"/queues/jobs/crons/{cron_id}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        assert await backend.get_crons("jobs") == []
        detail = await admin.get(f"/queues/jobs/tasks/{later.id}")
        assert 'data-testid="action-run-now"' in detail.text
        ran = await admin.post(f"/queues/jobs/tasks/{later.id}/run-now", data={"csrf_token": token})
        assert ran.status_code == 303
    counts = await backend.count_by_status("jobs")
    assert counts["scheduled"] == 0 and counts["pending"] == 2
