"""The harness itself works: Chromium launches, a subprocess server on a free port is waited for, real
workers run the test's tasks and are stopped. (Proved on a trivial page, independent of the dashboard.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from browser_harness import ServerProcess, stop_process, wait_for_tasks
from browser_tasks import noop
from playwright.sync_api import Page, expect

from sheppy_core.experimental import SyncQueue


def test_chromium_loads_a_page_from_a_subprocess_server(
    start_server: Callable[..., ServerProcess], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "healthz").write_text("ok\n")
    (site / "index.html").write_text(
        "<!doctype html><title>harness</title><p data-testid=greeting>waiting</p>"
        "<script>fetch('/healthz').then(r => r.text()).then(t => "
        "document.querySelector('[data-testid=greeting]').textContent = 'server says ' + t.trim())</script>"
    )
    def static_server(port: int) -> list[str]:
        return [sys.executable, "-m", "http.server", str(port), "-b", "127.0.0.1", "-d", str(site)]

    server = start_server("static", static_server)
    page = new_page()
    page.goto(server.base_url + "/")
    expect(page.get_by_test_id("greeting")).to_have_text("server says ok")
    stop_process(server.process)
    assert server.process.returncode is not None


def test_real_workers_run_the_tests_tasks_and_are_stopped(
    queue: SyncQueue, start_worker: Callable[[], subprocess.Popen[bytes]]
) -> None:
    tasks = [noop() for _ in range(3)]
    queue.add(tasks)
    worker = start_worker()
    wait_for_tasks(queue, tasks)
    assert {t.status for t in queue.get_task(tasks).values()} == {"completed"}
    stop_process(worker)
    assert worker.returncode is not None
