"""Screenshots of every dashboard page, for docs/operating.md.

    .venv/bin/python tests/browser/screenshots.py docs/images

Serves the dashboard (``create_dashboard`` as ``dashboard_app`` mounts it, seen by its operator, so
the action buttons show) and runs a real ``sheppy work`` on a fresh SQLite file, fills two queues
(``emails``: completed and failed tasks, a cron job, a workflow, a live worker; ``reports``: tasks
waiting with no worker), opens each page in Debian's Chromium and saves ``<page>.png`` in the output
directory. ``tests/browser/test_screenshots.py`` runs it into a temporary directory.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from browser_tasks import boom, fails_first_time, fan_out_fan_in, noop  # noqa: E402
from dashboard_app import USERS  # noqa: E402
from playwright.sync_api import HttpCredentials, Page, sync_playwright  # noqa: E402

from sheppy_core.experimental import SyncQueue  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WORKED_QUEUE = "emails"
IDLE_QUEUE = "reports"
STARTUP_TIMEOUT = 45.0
WORK_TIMEOUT = 60.0
PAGE_TIMEOUT_MS = 20_000

OPERATOR = ("operator", USERS["operator"])
OPERATOR_AUTH = {"Authorization": "Basic " + base64.b64encode(":".join(OPERATOR).encode()).decode()}

PAGES = ["overview", "tasks", "task-detail", "failures", "workers", "crons", "workflows", "workflow-detail"]
"""The screenshots written, as ``<name>.png``."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


@contextmanager
def process(argv: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess for the duration of the block; SIGTERM (then SIGKILL) at the end."""
    with log.open("ab") as sink:
        child = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def wait_healthy(base_url: str, child: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"the dashboard exited with {child.returncode}:\n{log.read_text()[-3000:]}")
        request = urllib.request.Request(f"{base_url}/healthz", headers=OPERATOR_AUTH)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)  # poll interval of a bounded wait
    raise SystemExit(f"the dashboard not healthy within {STARTUP_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def fill(url: str, marker_dir: Path) -> tuple[str, str]:
    """Queue the demo data and let a worker run it; (id of a failed task, id of the workflow)."""
    with SyncQueue(url, WORKED_QUEUE) as emails:
        done = [noop() for _ in range(12)]
        failures = [boom(f"SMTP server refused recipient #{n}") for n in range(3)]
        flaky = fails_first_time(str(marker_dir / "flaky.marker"))
        emails.add([*done, *failures, flaky])
        emails.add_cron(noop(), "*/5 * * * *")
        started = emails.add_workflow(fan_out_fan_in(4))
        emails.schedule(noop(), timedelta(minutes=30))
        emails.wait_for([*done, *failures, flaky], timeout=WORK_TIMEOUT)
        emails.wait_for_workflow(started.workflow, timeout=WORK_TIMEOUT)
        failed_id = str(failures[0].id)
        workflow_id = str(started.workflow.id)
    with SyncQueue(url, IDLE_QUEUE) as reports:
        reports.add([noop() for _ in range(7)])
    return failed_id, workflow_id


def shoot(page: Page, url: str, out: Path, name: str, wait_for: str) -> None:
    page.goto(url)
    page.locator(wait_for).first.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: screenshots.py OUTPUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sheppy-screenshots-") as scratch_name:
        scratch = Path(scratch_name)
        url = f"sqlite:///{scratch}/store.db"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        web_log, worker_log = scratch / "web.log", scratch / "worker.log"
        web_argv = [
            sys.executable, "-m", "uvicorn", "--factory", "dashboard_app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--app-dir", str(HERE),
        ]
        queues = f"{WORKED_QUEUE},{IDLE_QUEUE}"
        web_env = child_env(SHEPPY_BROWSER_BACKEND_URL=url, SHEPPY_BROWSER_QUEUE=queues)
        worker_argv = [
            sys.executable, "-m", "sheppy_core", "work", "-u", url, "-q", WORKED_QUEUE,
            "--import", "browser_tasks", "--shutdown-timeout", "2",
        ]
        with process(worker_argv, worker_log, child_env()), process(web_argv, web_log, web_env) as web:
            failed_id, workflow_id = fill(url, scratch)
            wait_healthy(base, web, web_log)
            emails = f"{base}/queues/{WORKED_QUEUE}"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(
                    viewport={"width": 1280, "height": 800},
                    http_credentials=HttpCredentials(username=OPERATOR[0], password=OPERATOR[1]),
                )
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                shoot(page, f"{base}/", out, "overview", "[data-testid=queue-row]")
                shoot(page, f"{emails}/tasks", out, "tasks", "[data-testid=task-row]")
                shoot(page, f"{emails}/tasks/{failed_id}", out, "task-detail", "pre[data-testid=traceback]")
                shoot(page, f"{emails}/failures", out, "failures", "[data-testid=failure-group]")
                shoot(page, f"{base}/workers", out, "workers", "[data-testid=worker-row]")
                shoot(page, f"{emails}/crons", out, "crons", "[data-testid=cron-row]")
                shoot(page, f"{emails}/workflows", out, "workflows", "body")
                shoot(page, f"{emails}/workflows/{workflow_id}", out, "workflow-detail",
                      "[data-testid=workflow-step]")
                browser.close()
    for name in PAGES:
        print(out / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
