"""What the browser tests share besides fixtures: the users, the bounds, and bounded waits on
subprocesses (``conftest.py`` builds the fixtures from these)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from sheppy_core.experimental import SyncQueue
from sheppy_core.models import Task

BROWSER_DIR = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
POSTGRES_URL = os.environ.get("SHEPPY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

STARTUP_TIMEOUT = 45.0
"""Seconds a server process gets to answer ``/healthz`` (a loaded 2-core machine, cold imports)."""
TASK_TIMEOUT = 45.0
"""Seconds a worker gets to finish what a test queued."""
EXPECT_TIMEOUT_MS = 20_000
"""Playwright's auto-wait bound for every ``expect`` and action."""

OPERATOR = ("operator", "operator-secret")
"""The user allowed every action."""
VIEWER = ("viewer", "viewer-secret")
"""The user with the default: read-only."""

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@dataclass
class ServerProcess:
    """A running HTTP server subprocess and where it answers."""

    base_url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def basic_auth_header(user: tuple[str, str]) -> dict[str, str]:
    token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_healthy(server: ServerProcess, *, auth: tuple[str, str] | None, timeout: float) -> None:
    """Poll ``/healthz`` until it answers "ok"; fail the test (with the server's log) if the process
    exits or the deadline passes."""
    headers = basic_auth_header(auth) if auth else {}
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"server exited with {server.process.returncode} before answering /healthz:\n"
                f"{log_tail(server.log)}"
            )
        request = urllib.request.Request(f"{server.base_url}/healthz", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200 and response.read().decode().strip() == "ok":
                    return
                last_error = f"status {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(0.1)  # poll interval of a bounded wait, not a fixed delay
    pytest.fail(
        f"{server.base_url}/healthz not ok within {timeout} s ({last_error}):\n{log_tail(server.log)}"
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a server or worker subprocess: ``browser_tasks`` importable by name."""
    path = os.pathsep.join(p for p in (str(BROWSER_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def wait_for_chromium(timeout: float = 60.0) -> None:
    """CI installs Debian's chromium just before the tests; give an install in progress a bound."""
    deadline = time.monotonic() + timeout
    while not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        if time.monotonic() > deadline:
            pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
        time.sleep(0.5)


def wait_for_tasks(queue: SyncQueue, tasks: Sequence[Task[Any]], *, timeout: float = TASK_TIMEOUT) -> None:
    """Block until every task is finished (completed, failed, ...), bounded; fail the test otherwise."""
    try:
        queue.wait_for(list(tasks), timeout=timeout)
    except TimeoutError as error:
        pytest.fail(str(error))
