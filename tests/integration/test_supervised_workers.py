"""``sheppy work --processes N``: one supervisor, N real worker processes, really killed.

Each test starts ``python -m sheppy_core work --processes 2 ...`` on an SQLite file and watches what an
operator would: the exit status, the supervisor's log lines (one per child start and exit, with the pid),
the store's counts, and which process ran each task (``logged_nap`` appends ``start <id> <pid>``).
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import tasks_for_tests as t
from _worker_processes import TESTS_DIR, read_events
from typer.testing import CliRunner

from sheppy_core import Queue, get_backend
from sheppy_core.cli import app

Store = tuple[str, Queue]
"""The URL of the SQLite file the workers share, and the test's queue on it."""
STARTED = re.compile(r"started worker process \d+/\d+ \(pid (\d+)\)")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The SQLite file the supervised workers share, and the test's own queue on it (cleared after)."""
    url = f"sqlite:///{tmp_path}/store.db"
    queue = Queue(get_backend(url), f"procs-{uuid.uuid4().hex[:8]}")
    yield url, queue
    await queue.clear()
    await queue.backend.disconnect()


async def until(check: Callable[[], Awaitable[bool] | bool], seconds: float) -> bool:
    """Poll ``check`` until it is true or ``seconds`` pass; returns the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if not isinstance(answer, bool):
            answer = await answer
        if answer or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.02)


def supervise(tmp_path: Path, url: str, queue_name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``sheppy work --processes 2`` on ``queue_name``; its stderr goes to the returned file."""
    stderr = tmp_path / "supervisor.err"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "sheppy_core", "work", "--processes", "2", "-u", url, "-q", queue_name,
             "--import", "tasks_for_tests", "--disable-cron-manager", *args],
            cwd=tmp_path,  # no pyproject.toml here: only the flags configure it
            env={**os.environ, "PYTHONPATH": str(TESTS_DIR), "SHEPPY_TEST_LOG": str(tmp_path / "events.log")},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    return process, stderr


def child_pids(stderr: Path) -> list[int]:
    """The pids of the worker processes the supervisor says it started, in order."""
    return [int(pid) for pid in STARTED.findall(stderr.read_text(errors="replace"))]


def task_starts(log: Path) -> dict[str, list[int]]:
    """Task id -> the pids of the processes that started it, in order."""
    starts: dict[str, list[int]] = defaultdict(list)
    for event in read_events(log) if log.exists() else []:
        if event[0] == "start":
            starts[event[1]].append(int(event[2]))
    return starts


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def finish(process: subprocess.Popen[bytes]) -> None:
    """Whatever a failed assertion left running: the supervisor and its process group of children."""
    if process.poll() is None:
        process.kill()
        process.wait(10)


@pytest.mark.timeout(180)
async def test_two_processes_burst_run_every_task_once_and_exit_0(tmp_path: Path, store: Store) -> None:
    url, queue = store
    # Long enough (200 x 0.05 s over 2 slots: 5 s for one process) that both processes get some.
    tasks = [t.logged_nap(0.05) for _ in range(200)]
    assert all(await queue.add(tasks))
    process, stderr = supervise(tmp_path, url, queue.name, "--burst", "-c", "2")
    try:
        status = await asyncio.to_thread(process.wait, 120)
    finally:
        finish(process)
    output = stderr.read_text(errors="replace")
    assert status == 0, output
    stats = await queue.stats()
    assert stats["completed"] == 200, (stats, output)
    assert stats["pending"] == stats["processing"] == 0, stats
    starts = task_starts(tmp_path / "events.log")
    assert set(starts) == {str(task.id) for task in tasks}
    assert [i for i, pids in starts.items() if len(pids) > 1] == [], "a task ran twice"
    ran_in = {pids[0] for pids in starts.values()}
    assert len(ran_in) == 2, f"tasks ran in {ran_in}: not two worker processes"
    assert ran_in <= set(child_pids(stderr)), (ran_in, output)
    assert process.pid not in ran_in, "the supervisor ran tasks itself"
    # Children that finished their burst are not restarted.
    assert len(child_pids(stderr)) == 2, output


@pytest.mark.timeout(180)
async def test_a_killed_child_is_restarted_and_nothing_is_lost(tmp_path: Path, store: Store) -> None:
    url, queue = store
    tasks = [t.logged_nap(0.05) for _ in range(300)]
    log = tmp_path / "events.log"
    process, stderr = supervise(tmp_path, url, queue.name, "-c", "2", "--lease", "2")
    try:
        assert await until(lambda: len(child_pids(stderr)) == 2, 30), stderr.read_text()
        assert all(await queue.add(tasks))
        victim = child_pids(stderr)[0]
        assert await until(lambda: victim in {p for ps in task_starts(log).values() for p in ps}, 30)
        os.kill(victim, signal.SIGKILL)

        assert await until(lambda: len(child_pids(stderr)) == 3, 30), stderr.read_text()
        replacement = child_pids(stderr)[2]
        assert replacement not in (victim, *child_pids(stderr)[:2][1:])
        assert re.search(rf"pid {victim}\b.*SIGKILL", stderr.read_text()), stderr.read_text()

        done = await queue.wait_for(tasks, timeout=120)
        assert {task.status for task in done.values()} == {"completed"}
        assert len(done) == 300
        starts = task_starts(log)
        assert set(starts) == {str(task.id) for task in tasks}
        rerun = {i: pids for i, pids in starts.items() if len(pids) > 1}
        assert all(set(pids[:-1]) == {victim} for pids in rerun.values()), rerun
        assert replacement in {p for ps in starts.values() for p in ps}, "the restarted child ran nothing"

        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0, stderr.read_text()
        stats = await queue.stats()
        assert stats["pending"] == stats["processing"] == 0, stats
    finally:
        finish(process)


@pytest.mark.timeout(180)
async def test_sigterm_stops_every_child_gracefully(tmp_path: Path, store: Store) -> None:
    url, queue = store
    tasks = [t.logged_nap(0.3) for _ in range(200)]
    log = tmp_path / "events.log"
    process, stderr = supervise(tmp_path, url, queue.name, "-c", "4", "--lease", "60")
    try:
        assert await until(lambda: len(child_pids(stderr)) == 2, 30), stderr.read_text()
        children = child_pids(stderr)
        assert all(await queue.add(tasks))

        def both_busy() -> bool:
            return set(children) <= {p for ps in task_starts(log).values() for p in ps}

        assert await until(both_busy, 30), task_starts(log)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0, stderr.read_text()
        assert await until(lambda: not any(alive(pid) for pid in children), 10), "a child outlived it"
        assert child_pids(stderr) == children, "a child was restarted during the stop"
        stats = await queue.stats()
        assert stats["processing"] == 0, f"{stats['processing']} task(s) left processing"
        assert stats["completed"] + stats["pending"] == 200, stats
        # Each task that started finished (graceful: running tasks complete, the rest wait).
        ended = {event[1] for event in read_events(log) if event[0] == "end"}
        assert set(task_starts(log)) == ended
    finally:
        finish(process)


@pytest.mark.timeout(120)
async def test_children_that_keep_crashing_make_it_give_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    process, stderr = supervise(
        tmp_path, url, "crashing", "--prestart", "supervised_hooks:die_at_start"
    )
    try:
        status = await asyncio.to_thread(process.wait, 60)
    finally:
        finish(process)
    output = stderr.read_text(errors="replace")
    assert status != 0, output
    reasons = [line for line in output.splitlines() if "giving up" in line]
    assert len(reasons) == 1, output
    assert "status 3" in reasons[0], reasons[0]
    assert 5 <= len(child_pids(stderr)) <= 6, output


@pytest.mark.parametrize(
    ("args", "env", "shown"),
    [
        (["--processes", "0"], {}, "--processes '0'"),
        (["--processes", "-1"], {}, "--processes '-1'"),
        (["--processes", "many"], {}, "--processes 'many'"),
        ([], {"SHEPPY_PROCESSES": "many"}, "SHEPPY_PROCESSES='many'"),
    ],
)
def test_bad_processes_values_are_one_line_errors(
    args: list[str], env: dict[str, str], shown: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["work", "-u", f"sqlite:///{tmp_path}/s.db", *args], env=env)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert shown in lines[0] and "'auto'" in lines[0], lines[0]
    assert not (tmp_path / "s.db").exists(), "it connected before refusing"


def test_metrics_port_with_several_processes_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["work", "-u", f"sqlite:///{tmp_path}/s.db", "--processes", "2", "--metrics-port", "0"]
    )
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert "\n" not in line and "PROMETHEUS_MULTIPROC_DIR" in line, line


@pytest.mark.timeout(120)
async def test_a_second_sigterm_stops_the_children_at_once(tmp_path: Path, store: Store) -> None:
    url, queue = store
    tasks = [t.logged_nap(60) for _ in range(4)]
    log = tmp_path / "events.log"
    process, stderr = supervise(tmp_path, url, queue.name, "-c", "2", "--shutdown-timeout", "90")
    try:
        assert await until(lambda: len(child_pids(stderr)) == 2, 30), stderr.read_text()
        assert all(await queue.add(tasks))
        assert await until(lambda: len(task_starts(log)) == 4, 30), task_starts(log)
        process.send_signal(signal.SIGTERM)
        assert await until(lambda: "stopping 2 worker process(es)" in stderr.read_text(), 10)
        assert process.poll() is None, "the 60 s tasks were not waited for"
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(process.wait, 30)
        assert time.monotonic() - began < 30
        assert status == 0, stderr.read_text()
        stats = await queue.stats()
        assert stats["processing"] == 0, stats
    finally:
        finish(process)


STUBBORN_CHILD = (
    # One write (not print's two): both children share the pipe, and their lines must not interleave.
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); os.write(1, b'ready\\n'); "
    "time.sleep(120)"
)
STUBBORN_SUPERVISOR = f"""
import sys
from sheppy_core._supervisor import supervise
outcome = supervise([sys.executable, "-c", {STUBBORN_CHILD!r}], 2, run_to_completion=False,
                    shutdown_timeout=0.5, kill_grace=0.5)
print(outcome.status, outcome.reason, flush=True)
"""


@pytest.mark.timeout(60)
def test_children_that_ignore_the_stop_are_killed_after_the_timeout() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", STUBBORN_SUPERVISOR], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        for _ in range(2):
            assert process.stdout.readline().strip() == b"ready"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
        assert process.returncode == 0  # the script itself ends normally and prints the outcome
        assert out.decode().split(None, 1)[0] == "1", out
        assert out.decode().count("killed by SIGKILL") == 2, out
    finally:
        finish(process)


# A child that holds SIGTERM/SIGINT pending (blocked) until the marker file appears, then says how many
# stop signals it got: two signals of one kind that are pending together arrive as one.
PENDING_CHILD = """
import os, signal, sys, time
seen = []
for stop in (signal.SIGTERM, signal.SIGINT):
    signal.signal(stop, lambda number, frame: seen.append(number))
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
os.write(1, b'ready\\n')
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.01)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
os.write(1, f'stops {len(seen)}\\n'.encode())
"""
PENDING_SUPERVISOR = """
import logging, sys
from sheppy_core._supervisor import supervise
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
supervise([sys.executable, "-c", sys.argv[1], sys.argv[2]], 1, run_to_completion=False,
          shutdown_timeout=20, kill_grace=1)
"""


def _start_pending_supervisor(marker: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    with stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", PENDING_SUPERVISOR, PENDING_CHILD, str(marker)],
            stdout=subprocess.PIPE, stderr=stderr,
        )


@pytest.mark.timeout(60)
async def test_a_second_stop_reaches_a_child_that_had_not_yet_handled_the_first(tmp_path: Path) -> None:
    """Under load a child may not run between the two forwarded signals; were both SIGTERM, they would
    merge into one pending signal and the child would only stop gracefully (a loaded run waited 30 s)."""
    marker, stderr_path = tmp_path / "go", tmp_path / "supervisor.err"
    process = _start_pending_supervisor(marker, stderr_path)
    try:
        assert process.stdout is not None
        assert (await asyncio.to_thread(process.stdout.readline)).strip() == b"ready"
        process.send_signal(signal.SIGTERM)
        assert await until(lambda: "gracefully" in stderr_path.read_text(), 20), stderr_path.read_text()
        process.send_signal(signal.SIGTERM)
        assert await until(lambda: "again" in stderr_path.read_text(), 20), stderr_path.read_text()
        marker.touch()
        said = (await asyncio.to_thread(process.stdout.readline)).strip()
        assert said == b"stops 2", stderr_path.read_text()
        assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        finish(process)
