"""Worker processes for the integration tests: start them, read what their tasks logged, stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent

SHARED_STORES = [
    pytest.param("sqlite:///{tmp}/store.db", id="sheppy_sqlite"),
    pytest.param("redis://127.0.0.1:6379", id="sheppy_redis"),
    pytest.param("postgresql://postgres@127.0.0.1/test", id="sheppy_postgres"),
]
"""URL templates of the shared-store backends, for ``parametrize("url_template", SHARED_STORES)``:
``{tmp}`` is the test's ``tmp_path``. A server that is down fails the test; nothing skips."""


def spawn_worker(
    script: str, *args: str, env: dict[str, str], stderr: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -c script args…`` with the test task modules importable and ``env`` added; its stdout
    is a pipe (workers print a line when ready), its stderr written to ``stderr`` or discarded."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(stderr.open("wb")) if stderr is not None else subprocess.DEVNULL
        return subprocess.Popen(
            [sys.executable, "-c", script, *args],
            env={**os.environ, **env, "PYTHONPATH": str(TESTS_DIR)},
            stdout=subprocess.PIPE,
            stderr=sink,
        )


def read_events(log: Path) -> list[list[str]]:
    """The whitespace-separated fields of each non-empty line the tasks appended to ``log``."""
    return [line.split() for line in log.read_text().splitlines() if line.strip()]


def stop_workers(workers: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM the live ones, wait up to ``timeout`` s each, then kill what is left."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
