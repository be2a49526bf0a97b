"""What a stranger's first hour met (issue #20): typos and impossible values are one-line errors that
name the problem, run through the real ``sheppy`` command in a fresh project directory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from sheppy_core import Queue

TASKS = '''
from pathlib import Path

from sheppy_core import task


@task
def hello(x: int = 1) -> int:
    return x


@task(retry=1, retry_delay=0)
def flaky(marker: str) -> str:
    """Fails its first attempt, completes its second."""
    path = Path(marker)
    runs = int(path.read_text()) if path.exists() else 0
    path.write_text(str(runs + 1))
    if runs == 0:
        raise RuntimeError("first attempt fails")
    return "ok"


@task(retry=1, retry_delay=0)
def broken() -> None:
    raise RuntimeError("always")
'''


def sheppy(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPPY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "sheppy_core", *args], cwd=project, capture_output=True,
                          text=True, timeout=90, env=env, check=False)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stdout + result.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "first_hour_jobs.py").write_text(TASKS)
    return tmp_path


@pytest.mark.parametrize(
    "command", [("task", "list"), ("queue", "list"), ("work", "--burst", "-i", "first_hour_jobs")]
)
def test_a_mistyped_pyproject_key_stops_every_command_naming_the_nearest_key(
    project: Path, command: tuple[str, ...]
) -> None:
    (project / "pyproject.toml").write_text('[tool.sheppy]\nbackend_url = "memory://"\n')
    line = one_error_line(sheppy(project, *command))
    assert "unknown key 'backend_url' in [tool.sheppy]" in line and "did you mean 'backend'?" in line
    assert not (project / "sheppy.db").exists(), "the command fell back to the SQLite default"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [("*/61 * * * *", "step 61 in the minute field"), ("0 0 31 2 *", "never fires"),
     ("every day", "expected five fields")],
)
def test_an_impossible_cron_expression_is_refused_by_cron_add(
    project: Path, expression: str, problem: str
) -> None:
    line = one_error_line(sheppy(project, "cron", "add", "first_hour_jobs:hello", expression, "-u", "sqlite:///c.db"))
    assert f"invalid cron expression {expression!r}: " in line and problem in line


def enqueue(project: Path, url: str, *calls: tuple[str, tuple[object, ...], float | None]) -> None:
    """Add ``(function name, args, delay seconds or None)`` tasks from this process, as an app would."""
    sys.path.insert(0, str(project))
    try:
        # A module name of its own: other tests' projects have a ``jobs`` module this process imported.
        sys.modules.pop("first_hour_jobs", None)
        import first_hour_jobs as jobs  # type: ignore[import-not-found]

        async def add() -> None:
            queue = Queue(url)
            for name, args, delay in calls:
                made = getattr(jobs, name)(*args)
                if delay is None:
                    await queue.add(made)
                else:
                    await queue.schedule(made, timedelta(seconds=delay))
            await queue.backend.disconnect()

        asyncio.run(add())
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("first_hour_jobs", None)


def test_the_burst_summary_counts_tasks_and_attempts_apart(project: Path) -> None:
    # Was "burst finished: 2 done, 2 failed": the failed first attempts of tasks that then completed
    # looked like failed tasks. Now: tasks completed, tasks failed (no retry left), attempts run.
    url = f"sqlite:///{project / 'burst.db'}"
    enqueue(project, url, ("hello", (1,), None), ("flaky", (str(project / "f.count"),), None),
            ("broken", (), None))
    done = sheppy(project, "work", "--burst", "-i", "first_hour_jobs", "-u", url)
    assert done.returncode == 0, done.stderr
    summary = r"burst finished in [\d.]+ s: 2 completed, 1 failed, 5 attempts "
    assert re.search(summary, done.stderr), done.stderr


def test_burst_leaves_a_task_due_later_and_says_how_to_wait_for_it(project: Path) -> None:
    url = f"sqlite:///{project / 'later.db'}"
    enqueue(project, url, ("hello", (1,), 600.0))
    done = sheppy(project, "work", "--burst", "-i", "first_hour_jobs", "-u", url)
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stderr.splitlines() if "burst finished" in ln)
    assert ": 0 completed, 0 failed, 0 attempts " in line
    left = r"1 scheduled task\(s\) left for later, the next due in (\d+) s \(--wait-scheduled (\d+) "
    found = re.search(left, line)
    assert found, line
    assert 500 <= int(found[1]) <= 600 and int(found[2]) >= int(found[1])


def test_wait_scheduled_makes_burst_wait_for_a_task_due_within_it(project: Path) -> None:
    # Was: a task scheduled a second or more ahead was left behind, with no way to wait for it.
    url = f"sqlite:///{project / 'soon.db'}"
    enqueue(project, url, ("hello", (1,), 4.0))
    done = sheppy(project, "work", "--burst", "--wait-scheduled", "120", "-i", "first_hour_jobs", "-u", url)
    assert done.returncode == 0, done.stderr
    assert ": 1 completed, 0 failed, 1 attempt " in done.stderr and "left for later" not in done.stderr


def test_wait_scheduled_refuses_a_negative_number(project: Path) -> None:
    result = sheppy(project, "work", "--burst", "--wait-scheduled", "-1", "-i", "first_hour_jobs", "-u", "memory://")
    assert result.returncode != 0 and "--wait-scheduled" in result.stderr


def test_clearing_a_mistyped_queue_is_an_error_naming_the_nearest_queue(project: Path) -> None:
    # Was "queue 'defualt' cleared: 0 task(s) and cron(s) removed", exit 0: the typo looked like success.
    url = f"sqlite:///{project / 'clear.db'}"
    enqueue(project, url, ("hello", (1,), None), ("hello", (2,), None))
    line = one_error_line(sheppy(project, "queue", "clear", "defualt", "-y", "-u", url))
    assert "no queue 'defualt'" in line and "did you mean 'default'?" in line, line
    listed = sheppy(project, "queue", "list", "-f", "json", "-u", url)
    assert json.loads(listed.stdout)["default"]["pending"] == 2, "the real queue was touched"
    cleared = sheppy(project, "queue", "clear", "default", "-y", "-u", url)
    assert cleared.returncode == 0 and "queue 'default' cleared: 2 task(s)" in cleared.stdout, cleared.stderr
    again = sheppy(project, "queue", "clear", "default", "-y", "-u", url)
    assert again.returncode != 0 and "no queue 'default'" in again.stderr, "a cleared queue is gone"


@pytest.mark.parametrize(
    "command",
    [("queue", "list"), ("cron", "list"), ("queue", "clear", "default", "-y"), ("task", "list"),
     ("task", "info", "0000aaaa"), ("task", "retry", "--all-failed"), ("worker", "list")],
)
def test_a_command_that_reads_never_creates_a_store_at_a_mistyped_path(
    project: Path, command: tuple[str, ...]
) -> None:
    # Was: an empty jobs.bd created, and "no queues" — as if the real store were empty.
    line = one_error_line(sheppy(project, *command, "-u", "sqlite:///jobs.bd"))
    assert "no store at" in line and "jobs.bd" in line and "nothing was created" in line, line
    assert not (project / "jobs.bd").exists(), "the command created the mistyped store"
