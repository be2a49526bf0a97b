"""The browser tests' harness: real processes, a real browser, nothing mocked.

- ``browser``: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright's sync API, one per test
  module. Nothing is downloaded at run time (never ``playwright install``).
- ``store_url``: every test runs on a SQLite file and on PostgreSQL (``SHEPPY_TEST_POSTGRES_URL``,
  default database ``test`` on 127.0.0.1:5432); each test has a queue name of its own. A PostgreSQL
  that is down fails the test — nothing here skips.
- ``start_dashboard``: a ``sheppy web`` subprocess (or the ``dashboard_app`` module under uvicorn) on a
  free port, waited for on ``/healthz`` with a deadline; killed at the end of the test.
- ``start_worker``: real ``sheppy work`` subprocesses running ``browser_tasks``; killed at the end.

Every wait is bounded: a state is polled (or Playwright's ``expect`` auto-waits) until a deadline.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, HttpCredentials, Page, sync_playwright

from sheppy_core.experimental import SyncQueue

BROWSER_DIR = Path(__file__).resolve().parent
if str(BROWSER_DIR) not in sys.path:
    # The test process builds tasks from the same modules the workers import by name.
    sys.path.insert(0, str(BROWSER_DIR))

from browser_harness import (  # noqa: E402
    CHROMIUM,
    EXPECT_TIMEOUT_MS,
    OPERATOR,
    POSTGRES_URL,
    STARTUP_TIMEOUT,
    VIEWER,
    ServerProcess,
    child_env,
    free_port,
    log_tail,
    stop_process,
    wait_for_chromium,
    wait_for_tasks,
    wait_until_healthy,
)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``spawn(name, argv, env)``: start a subprocess logging to ``tmp_path/name.log``; every one is
    stopped when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                argv, env=env or child_env(), stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path
            )
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        stop_process(process)


@pytest.fixture
def start_server(
    spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> Callable[..., ServerProcess]:
    """``start_server(name, argv_for_port, auth=None)``: start ``argv_for_port(port)`` on a free port
    and wait (bounded) until its ``/healthz`` answers "ok". A port taken between picking and binding
    (another test on this machine) is retried on a new port."""

    def start(
        name: str, argv_for_port: Callable[[int], list[str]], *, auth: tuple[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        for _ in range(3):
            port = free_port()
            process = spawn(name, argv_for_port(port), env)
            server = ServerProcess(f"http://127.0.0.1:{port}", process, tmp_path / f"{name}.log")
            try:
                wait_until_healthy(server, auth=auth, timeout=STARTUP_TIMEOUT)
            except pytest.fail.Exception:
                if process.poll() is not None and "address already in use" in log_tail(server.log).lower():
                    continue
                raise
            return server
        pytest.fail(f"{name}: no free port after 3 attempts")

    return start


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module."""
    wait_for_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """``new_page(user=None)``: a page in a fresh browser context (own cookies), logged in with basic
    auth as ``user`` when given."""
    contexts = []

    def open_page(user: tuple[str, str] | None = None) -> Page:
        credentials = HttpCredentials(username=user[0], password=user[1]) if user else None
        context = browser.new_context(http_credentials=credentials, viewport={"width": 1280, "height": 800})
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


# -- stores, queues, workers, the dashboard -------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The backend URL the dashboard, the workers and the test share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return POSTGRES_URL


@pytest.fixture
def queue_name() -> str:
    """A queue of this test's own, so tests sharing a PostgreSQL database never see each other."""
    return f"browser_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def queue(store_url: str, queue_name: str) -> Iterator[SyncQueue]:
    """The test's own handle on the queue (enqueue, wait for results)."""
    handle = SyncQueue(store_url, queue_name)
    yield handle
    handle.close()


@pytest.fixture
def start_worker(
    spawn: Callable[..., subprocess.Popen[bytes]], store_url: str, queue_name: str
) -> Callable[[], subprocess.Popen[bytes]]:
    """``start_worker()``: a real ``sheppy work`` process on the test's queue, running
    ``browser_tasks``; stopped at the end of the test (or earlier with ``stop_process``)."""
    count = 0

    def start() -> subprocess.Popen[bytes]:
        nonlocal count
        count += 1
        argv = [
            sys.executable, "-m", "sheppy_core", "work", "-u", store_url, "-q", queue_name,
            "--import", "browser_tasks", "--shutdown-timeout", "2", "--disable-cron-manager",
        ]
        return spawn(f"worker-{count}", argv)

    return start


@pytest.fixture
def start_dashboard(
    start_server: Callable[..., ServerProcess], store_url: str, queue_name: str
) -> Callable[..., ServerProcess]:
    """``start_dashboard()``: ``sheppy web`` on the test's store and queue with two basic-auth users,
    ``OPERATOR`` (every action allowed, ``--allow-actions``) and ``VIEWER`` (the read-only default).
    ``start_dashboard(app_module=True)`` serves ``dashboard_app`` instead, whose ``permissions``
    callable gives the same two users the same rights."""

    def start(*, app_module: bool = False) -> ServerProcess:
        if app_module:
            env = child_env(SHEPPY_BROWSER_BACKEND_URL=store_url, SHEPPY_BROWSER_QUEUE=queue_name)

            def app_argv(port: int) -> list[str]:
                return [
                    sys.executable, "-m", "uvicorn", "--factory", "dashboard_app:create_app",
                    "--host", "127.0.0.1", "--port", str(port), "--app-dir", str(BROWSER_DIR),
                ]

            return start_server("dashboard-app", app_argv, auth=OPERATOR, env=env)

        def cli_argv(port: int) -> list[str]:
            return [
                sys.executable, "-m", "sheppy_core", "web", "-u", store_url, "--queue", queue_name,
                "--host", "127.0.0.1", "--port", str(port),
                "--auth", ":".join(OPERATOR), "--auth", ":".join(VIEWER), "--allow-actions", OPERATOR[0],
            ]

        return start_server("dashboard", cli_argv, auth=OPERATOR)

    return start


@pytest.fixture
def wait_finished() -> Callable[..., None]:
    """``wait_finished(queue, tasks, timeout=...)``: see :func:`wait_for_tasks`."""
    return wait_for_tasks
