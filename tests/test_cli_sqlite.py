"""The ``sheppy`` command against stores that outlive a process: sheppy-sqlite (a file in tmp_path) and,
for the main flow, sheppy-postgres (a queue of the test's own on the shared server).

Producers, workers and the command line run as separate processes, as an operator would run them.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sheppy_core.cli import app

# The plugins are imported where needed, never skipped: requirements-test.txt installs every one, and a
# missing one must fail the run.
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

runner = CliRunner()

JOBS = '''
import asyncio
from pathlib import Path

from sheppy_core import task


@task
def double(x: int) -> int:
    return 2 * x


@task
def flaky(marker: str) -> str:
    """Fails on its first run, succeeds afterwards (the count survives processes in a file)."""
    path = Path(marker)
    runs = int(path.read_text()) if path.exists() else 0
    path.write_text(str(runs + 1))
    if runs == 0:
        raise RuntimeError("first run fails")
    return "ok"


@task
async def slow() -> str:
    await asyncio.sleep(30)
    return "late"
'''

PRODUCER = """
import asyncio
import sys

import jobs
from sheppy_core import Queue


async def main() -> None:
    queue = Queue(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "default")
    await queue.add([jobs.double(i) for i in range(5)] + [jobs.flaky("a.count"), jobs.flaky("b.count")])


asyncio.run(main())
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(JOBS)
    (tmp_path / "producer.py").write_text(PRODUCER)
    return tmp_path


@pytest.fixture
def url(tmp_path: Path) -> str:
    importlib.import_module("sheppy_sqlite")
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A backend URL whose state outlives a process, and a queue name of this test's own."""
    queue = f"cli-{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        importlib.import_module("sheppy_sqlite")
        yield f"sqlite:///{tmp_path / 'queue.db'}", queue
        return
    importlib.import_module("sheppy_postgres")
    yield POSTGRES_URL, queue
    sheppy(tmp_path, "queue", "clear", queue, "--yes", "-u", POSTGRES_URL)


def run_sheppy(
    cwd: Path, *args: str, timeout: float = 90, queue: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHEPPY_QUEUE": queue} if queue else None
    return subprocess.run(
        [sys.executable, "-m", "sheppy_core", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


sheppy = run_sheppy


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in output, output
    return lines[0]


def test_fill_drain_inspect_retry_across_processes(project: Path, store: tuple[str, str]) -> None:
    url, queue = store

    def sheppy(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return run_sheppy(cwd, *args, queue=queue)

    produced = subprocess.run(
        [sys.executable, "producer.py", url, queue], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert produced.returncode == 0, produced.stderr
    assert as_json(sheppy(project, "queue", "list", "-u", url, "-f", "json"))[queue]["pending"] == 7

    # Two slots and three prefetched claims: the same outcome as claiming only for free slots.
    drained = sheppy(project, "work", "--burst", "-i", "jobs", "-u", url, "-c", "2", "--prefetch", "3")
    assert drained.returncode == 0, drained.stderr
    assert "5 completed, 2 failed, " in drained.stderr

    failed = as_json(sheppy(project, "task", "list", "--status", "failed", "-u", url, "--format", "json"))
    assert len(failed) == 2 and {f["spec"]["func"] for f in failed} == {"jobs:flaky"}
    assert all(f["exception"]["type"] == "RuntimeError" and f["queue"] == queue for f in failed)
    counts = as_json(sheppy(project, "queue", "list", "-u", url, "-f", "json"))[queue]
    assert counts["completed"] == 5 and counts["failed"] == 2 and counts["pending"] == 0

    retried = sheppy(project, "task", "retry", failed[0]["id"], "-u", url)
    assert retried.returncode == 0 and "queued again" in retried.stdout
    pending = as_json(sheppy(project, "task", "list", "--status", "pending", "-u", url, "-f", "json"))
    assert [p["id"] for p in pending] == [failed[0]["id"]]
    again = sheppy(project, "task", "retry", failed[0]["id"], "-u", url)
    assert again.returncode == 1 and "only finished tasks can be retried" in one_error_line(again.stderr)

    everything = sheppy(project, "task", "retry", "--all-failed", "-u", url)
    assert everything.returncode == 0 and "1 task(s) queued again" in everything.stdout

    rerun = sheppy(project, "work", "--burst", "-i", "jobs", "-u", url)
    assert rerun.returncode == 0 and "2 completed, 0 failed, " in rerun.stderr
    info = as_json(sheppy(project, "task", "info", failed[0]["id"], "-u", url, "-f", "json"))
    assert info["status"] == "completed" and info["result"] == "ok"
    assert (project / "a.count").read_text() == "2" and (project / "b.count").read_text() == "2"
    table = sheppy(project, "task", "info", failed[0]["id"], "-u", url)
    assert table.returncode == 0 and "jobs:flaky" in table.stdout

    force_needed = sheppy(project, "task", "retry", failed[0]["id"], "-u", url)
    assert force_needed.returncode == 1 and "force" in force_needed.stderr
    forced = sheppy(project, "task", "retry", failed[0]["id"], "--force", "-u", url)
    assert forced.returncode == 0


def test_bad_input_enqueues_nothing(project: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    for argv in (
        ["task", "add", "jobs:double", "-a", '["two"]'],
        ["task", "add", "jobs:double", "-a", "[2"],
        ["task", "add", "jobs:nothing"],
        ["task", "add", "os:system", "-a", '["echo hacked"]'],
        ["task", "schedule", "jobs:double", "--delay", "1h", "-k", '{"y": 1}'],
        ["cron", "add", "jobs:double", "* * *", "-a", "[1]"],
    ):
        result = runner.invoke(app, [*argv, "-u", url])
        assert result.exit_code == 1, (argv, result.output)
        one_error_line(result.output)
    # Nothing was enqueued: not even the store was created, and the commands that read say so.
    for argv in (["task", "list"], ["cron", "list"]):
        listed = runner.invoke(app, [*argv, "-u", url, "-f", "json"])
        assert listed.exit_code == 1 and "no store at" in one_error_line(listed.output), listed.output


def test_add_wait_schedule_cancel_delete_and_clear(
    project: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    waited = runner.invoke(app, ["task", "add", "jobs:double", "-a", "[4]", "-u", url, "--wait", "-t", "0.3"])
    assert waited.exit_code == 1 and "did not finish within 0.3 s" in one_error_line(waited.output)
    added = runner.invoke(
        app, ["task", "add", "jobs:double", "-a", "[5]", "-q", "other", "-u", url, "-f", "json"]
    )
    assert added.exit_code == 0 and json.loads(added.stdout)["queue"] == "other"

    scheduled = runner.invoke(
        app, ["task", "schedule", "jobs:double", "-k", '{"x": 1}', "--delay", "1h", "-u", url, "-f", "json"]
    )
    assert scheduled.exit_code == 0, scheduled.output
    task_id = json.loads(scheduled.stdout)["id"]
    at = runner.invoke(
        app, ["task", "schedule", "jobs:double", "-a", "[2]", "--at", "2099-01-01T00:00:00", "-u", url]
    )
    assert at.exit_code == 0 and "2099-01-01T00:00:00+00:00" in at.output
    listed = runner.invoke(app, ["task", "list", "--status", "scheduled", "-u", url, "-f", "json"])
    assert len(json.loads(listed.stdout)) == 2

    still_waiting = runner.invoke(app, ["experimental", "task", "delete", task_id, "-u", url])
    assert still_waiting.exit_code == 1 and "not finished" in one_error_line(still_waiting.output)
    cancelled = runner.invoke(app, ["experimental", "task", "cancel", task_id, "-u", url, "-f", "json"])
    assert cancelled.exit_code == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"
    twice = runner.invoke(app, ["experimental", "task", "cancel", task_id, "-u", url])
    assert twice.exit_code == 1 and "it is cancelled" in one_error_line(twice.output)
    deleted = runner.invoke(app, ["experimental", "task", "delete", task_id, "-u", url])
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    gone = runner.invoke(app, ["task", "info", task_id, "-u", url])
    assert gone.exit_code == 1 and "not found" in gone.output

    both = runner.invoke(app, ["task", "list", "-q", "default", "-q", "other", "-u", url, "-f", "json"])
    assert sorted(t["queue"] for t in json.loads(both.stdout)) == ["default", "default", "other"]
    cleared = runner.invoke(app, ["queue", "clear", "default", "--yes", "-u", url])
    assert cleared.exit_code == 0 and "2 task(s)" in cleared.output
    assert list(json.loads(runner.invoke(app, ["queue", "list", "-u", url, "-f", "json"]).stdout)) == [
        "other"
    ]


def test_cron_add_list_delete(project: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    added = runner.invoke(app, ["cron", "add", "jobs:double", "*/5 * * * *", "-a", "[3]", "-u", url])
    assert added.exit_code == 0, added.output
    duplicate = runner.invoke(app, ["cron", "add", "jobs:double", "*/5 * * * *", "-a", "[3]", "-u", url])
    assert duplicate.exit_code == 1 and "already exists" in one_error_line(duplicate.output)
    runner.invoke(app, ["cron", "add", "jobs:double", "0 * * * *", "-a", "[4]", "-u", url])
    (first, second) = json.loads(runner.invoke(app, ["cron", "list", "-u", url, "-f", "json"]).stdout)
    assert {first["expression"], second["expression"]} == {"*/5 * * * *", "0 * * * *"}
    by_name = runner.invoke(app, ["cron", "delete", "jobs:double", "*/5 * * * *", "-a", "[3]", "-u", url])
    assert by_name.exit_code == 0, by_name.output
    (left,) = json.loads(runner.invoke(app, ["cron", "list", "-u", url, "-f", "json"]).stdout)
    by_id = runner.invoke(app, ["cron", "delete", left["id"], "-u", url])
    assert by_id.exit_code == 0
    missing = runner.invoke(app, ["cron", "delete", left["id"], "-u", url])
    assert missing.exit_code == 1 and "no cron" in one_error_line(missing.output)
    table = runner.invoke(app, ["cron", "list", "-u", url])
    assert table.exit_code == 0 and table.output.strip() == "no crons in queue 'default'"


def test_processing_tasks_are_listed_and_handed_back_on_shutdown(project: Path, url: str) -> None:
    added = sheppy(project, "task", "add", "jobs:slow", "-u", url, "-f", "json")
    task_id = as_json(added)["id"]
    worker = subprocess.Popen(
        [sys.executable, "-m", "sheppy_core", "work", "-i", "jobs", "-u", url, "--shutdown-timeout", "0.2"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        processing: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not processing:
            processing = as_json(
                sheppy(project, "task", "list", "--status", "processing", "-u", url, "-f", "json")
            )
        assert [p["id"] for p in processing] == [task_id]
        assert processing[0]["claimed_by"].startswith("worker-") and processing[0]["lease_expires_at"]
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    pending = as_json(sheppy(project, "task", "list", "--status", "pending", "-u", url, "-f", "json"))
    assert [p["id"] for p in pending] == [task_id]


def test_an_unreachable_backend_is_one_line_and_non_zero(project: Path) -> None:
    importlib.import_module("sheppy_sqlite")
    missing_dir = "sqlite:////nonexistent-sheppy-dir/queue.db"
    for argv in (["work", "--burst", "-u"], ["backends", "check"]):
        result = sheppy(project, *argv, missing_dir)
        assert result.returncode == 1, result
        assert "cannot reach the backend at" in one_error_line(result.stderr)
    # A command that only reads does not try to create the file: there is no store there.
    listed = sheppy(project, "task", "list", "-u", missing_dir)
    assert listed.returncode == 1 and "no store at /nonexistent-sheppy-dir/queue.db" in one_error_line(
        listed.stderr)


def test_an_unreachable_server_never_shows_the_password(project: Path) -> None:
    importlib.import_module("sheppy_postgres")
    url = "postgresql://user:hunter2@127.0.0.1:1/db"
    for argv in (["work", "--burst", "-u", url], ["backends", "check", url]):
        result = sheppy(project, *argv)
        assert result.returncode == 1
        line = one_error_line(result.stderr)
        assert "cannot reach the backend at postgresql://user:***@127.0.0.1:1/db" in line
        assert "hunter2" not in result.stderr + result.stdout


def test_settings_come_from_pyproject_and_environment(project: Path, url: str) -> None:
    (project / "pyproject.toml").write_text(f'[tool.sheppy]\nbackend = "{url}"\nqueue = "from-file"\n')
    added = sheppy(project, "task", "add", "jobs:double", "-a", "[1]", "-f", "json")
    assert as_json(added)["queue"] == "from-file"
    env_queue = subprocess.run(
        [sys.executable, "-m", "sheppy_core", "task", "list", "-f", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SHEPPY_QUEUE": "from-env"},
    )
    assert as_json(env_queue) == []


def test_bench_measures_and_cleans_up(project: Path, url: str) -> None:
    result = sheppy(
        project,
        "bench", url, "-n", "40", "-w", "1", "-c", "4", "--duration", "0.3",
        "--latency-samples", "3", "--lease", "0.5", "--timeout", "60", "--format", "json",
        timeout=180,
    )  # fmt: skip
    report = as_json(result)
    assert report["burn_down"]["completed"] == 40 and report["burn_down"]["throughput_per_second"] > 0
    assert report["steady_state"]["completed"] > 0 and report["latency"]["samples"] == 3
    assert 0 < report["latency"]["p50_ms"] <= report["latency"]["p99_ms"]
    assert 0 < report["crash_recovery"]["recovery_seconds"] < 30
    assert as_json(sheppy(project, "queue", "list", "-u", url, "-f", "json")) == {}


def _fill(project: Path, url: str) -> None:
    produced = subprocess.run(
        [sys.executable, "producer.py", url], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert produced.returncode == 0, produced.stderr


def test_burst_shows_a_progress_display_on_a_terminal(
    project: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    from sheppy_core.cli import _work

    _fill(project, url)
    monkeypatch.chdir(project)
    screen = io.StringIO()
    monkeypatch.setattr(_work, "errors", Console(file=screen, force_terminal=True, width=150))
    monkeypatch.setattr(_work, "PROGRESS_INTERVAL", 0.01)
    result = runner.invoke(app, ["work", "--burst", "-i", "jobs", "-u", url, "-l", "warning"])
    assert result.exit_code == 0, result.output
    shown = screen.getvalue()
    assert "burst" in shown and "tasks/s" in shown and "remaining" in shown
    assert "completed 5" in shown and "failed 2" in shown
    assert "5 completed, 2 failed, " in shown


def test_burst_logs_plain_progress_lines_otherwise(
    project: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sheppy_core.cli import _work

    _fill(project, url)
    monkeypatch.chdir(project)
    monkeypatch.setattr(_work, "LOG_INTERVAL", 0.0)
    monkeypatch.setattr(_work, "PROGRESS_INTERVAL", 0.01)
    result = runner.invoke(app, ["work", "--burst", "-i", "jobs", "-u", url])
    assert result.exit_code == 0, result.output
    assert "INFO sheppy.cli: burst: completed=" in result.output and "remaining=" in result.output
    assert "\x1b[" not in result.output  # no terminal control codes in a log file


def test_workers_starting_at_once_store_each_declared_cron_once(project: Path, url: str) -> None:
    (project / "pyproject.toml").write_text(
        f'[tool.sheppy]\nbackend = "{url}"\ntasks = ["jobs"]\n\n'
        '[[tool.sheppy.cron]]\ntask = "jobs:flaky"\nexpression = "*/5 * * * *"\nargs = ["cron.count"]\n'
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "sheppy_core", "work", "--shutdown-timeout", "0"],
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        deadline = time.monotonic() + 60
        scheduled: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(scheduled) < 3:
            time.sleep(0.2)
            listed = sheppy(project, "task", "list", "--status", "scheduled", "-f", "json")
            if listed.returncode != 0 and "no store at" in listed.stderr:
                continue  # a read never creates the store: no worker has got that far yet (a busy machine)
            scheduled = as_json(listed)
        crons = as_json(sheppy(project, "cron", "list", "-f", "json"))
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=60)[1] for worker in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert len(crons) == 1 and crons[0]["managed_by"] == "pyproject" and crons[0]["args"] == ["cron.count"]
    # Three workers, three look-ahead occurrences: each stored once, all from that one cron.
    assert len(scheduled) == 3 and {s["cron_id"] for s in scheduled} == {crons[0]["id"]}
    assert sum("added */5 * * * * jobs:flaky" in out for out in outputs) == 1
