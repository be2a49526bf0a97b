"""§15 CLI (``sheppy``): every command row and option of sheppy-api.md, run in-process with typer's
CliRunner (``python -m sheppy_core`` is the same app, see tests/test_cli.py).

Commands that need stored data run on SQLite, Redis and PostgreSQL only: ``memory://`` keeps its data
in the backend object, so a command (which builds its own backend from the URL) never sees what the
test stored. Option wiring (what ``sheppy work`` hands the worker) is checked with ``Worker.work``
replaced, as sheppy's own prestart tests do, so it needs no store.

Deliberate differences asserted here (docs/migrating-from-sheppy.md): the default backend URL is
``sqlite:///sheppy.db`` (sheppy: ``redis://127.0.0.1:6379``); ``--reload`` is refused with a hint;
``task test`` of a failing task exits 1; invalid option values exit 1 (typer's range check: 2);
``task list -f json`` is a list of task records; the ``task list`` table shows ids short (``--wide``
whole).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from compat import tasks_cli as t
from compat.support import QUEUE_NAME, Store, fast
from typer.testing import CliRunner, Result

from sheppy_core import Queue, Worker, __version__
from sheppy_core._plugins import backend_from_url
from sheppy_core.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "300"}
TASKS = "compat.tasks_cli"
ADD = f"{TASKS}:add"
# Data stored by the test must be seen by the command's own backend: every store but memory://.
shared_stores = pytest.mark.parametrize("store", ["sqlite", "redis", "postgres"], indirect=True)
UNSET_ENV = {
    "SHEPPY_BACKEND_URL": None,
    "SHEPPY_QUEUE": None,
    "SHEPPY_MAX_CONCURRENT_TASKS": None,
    "SHEPPY_SHUTDOWN_TIMEOUT": None,
    "SHEPPY_LOG_LEVEL": None,
    "SHEPPY_PRESTART": None,
}


def sheppy(*argv: str, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(app, list(argv), env={**UNSET_ENV, **WIDE, **(env or {})})


def on_store(url: str | None, operation: Callable[[Queue], Awaitable[Any]], queue: str = QUEUE_NAME) -> Any:
    """Run one ``Queue`` operation on the store at ``url`` through a backend of its own."""
    assert url is not None

    async def go() -> Any:
        backend = backend_from_url(url)
        try:
            return await operation(Queue(backend, queue))
        finally:
            if backend.is_connected:
                await backend.disconnect()

    return asyncio.run(go())


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


# -- global options ------------------------------------------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    result = ok(sheppy("--version"))
    assert __version__ in result.output


def test_the_app_is_importable_under_sheppys_module_path() -> None:
    from sheppy_core.cli.cli import app as cli_app

    assert cli_app is app
    assert __version__ in ok(runner.invoke(cli_app, ["--version"])).output


def test_default_backend_url_is_a_sqlite_file_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deliberate difference: sheppy's default is redis://127.0.0.1:6379; ours needs no server.
    monkeypatch.chdir(tmp_path)
    # A command that only reads creates no store (it says there is none); one that adds creates it.
    refused = sheppy("queue", "list", "-f", "json")
    assert refused.exit_code == 1 and "no store at sheppy.db" in refused.output
    assert not (tmp_path / "sheppy.db").exists()
    module = "from sheppy_core import task\n@task\ndef f() -> None: ...\n"
    (tmp_path / "s15_default_jobs.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    added = sheppy("task", "add", "s15_default_jobs:f")
    assert added.exit_code == 0, added.output
    assert (tmp_path / "sheppy.db").is_file()
    assert as_json(sheppy("queue", "list", "-f", "json"))["default"]["pending"] == 1


def test_the_current_directory_is_on_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"cwd_jobs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from sheppy_core import task\n@task\ndef double(x: int) -> int:\n    return 2 * x\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    result = ok(sheppy("task", "test", f"{module}:double", "-a", "[21]"))
    assert "42" in result.output
    assert str(tmp_path) in sys.path


# -- sheppy work: what the command hands the worker -----------------------------------------------------


@pytest.fixture
def fake_work(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """``Worker.work`` replaced: records the worker, its arguments and the log level, runs nothing."""
    seen: list[dict[str, Any]] = []

    async def work(self: Worker, max_tasks: int | None = None, oneshot: bool = False, **_: Any) -> None:
        t.hook_calls.append("work")
        seen.append(
            {
                "worker": self,
                "max_tasks": max_tasks,
                "oneshot": oneshot,
                "level": logging.getLogger("sheppy").getEffectiveLevel(),
            }
        )

    monkeypatch.setattr(Worker, "work", work)
    t.hook_calls.clear()
    yield seen
    t.hook_calls.clear()


def test_work_hands_every_option_to_the_worker(fake_work: list[dict[str, Any]]) -> None:
    ok(
        sheppy(
            "work", "-u", "memory://", "-i", TASKS, "-q", "a", "--queue", "b", "-c", "3",
            "--max-prefetch", "2", "--max-tasks", "5", "--oneshot", "--disable-scheduler",
            "--disable-cron-manager", "-l", "debug", "--shutdown-timeout", "7.5",
        )
    )  # fmt: skip
    [call] = fake_work
    worker: Worker = call["worker"]
    assert [q.name for q in worker.queues] == ["a", "b"]
    assert worker.max_concurrent_tasks == 3 and worker.max_prefetch_tasks == 2
    assert worker.shutdown_timeout == 7.5
    assert (worker.enable_job_processing, worker.enable_scheduler, worker.enable_cron_manager) == (
        True,
        False,
        False,
    )
    assert (call["max_tasks"], call["oneshot"], call["level"]) == (5, True, logging.DEBUG)


def test_work_long_option_names_and_disable_job_processing(fake_work: list[dict[str, Any]]) -> None:
    ok(
        sheppy(
            "work", "--backend-url", "memory://", "--queue", "q", "--max-concurrent", "2",
            "--log-level", "warning", "--disable-job-processing",
        )
    )  # fmt: skip
    [call] = fake_work
    worker: Worker = call["worker"]
    assert [q.name for q in worker.queues] == ["q"] and worker.max_concurrent_tasks == 2
    assert worker.enable_job_processing is False and worker.enable_scheduler and worker.enable_cron_manager
    assert (call["max_tasks"], call["oneshot"], call["level"]) == (None, False, logging.WARNING)


def test_work_defaults_and_environment(fake_work: list[dict[str, Any]]) -> None:
    ok(sheppy("work", "-u", "memory://"))
    default = fake_work.pop()["worker"]
    assert [q.name for q in default.queues] == ["default"]
    assert default.max_concurrent_tasks == 10 and default.shutdown_timeout == 30.0
    env = {
        "SHEPPY_BACKEND_URL": "memory://",
        "SHEPPY_QUEUE": "first, second",
        "SHEPPY_MAX_CONCURRENT_TASKS": "4",
        "SHEPPY_SHUTDOWN_TIMEOUT": "2.5",
        "SHEPPY_LOG_LEVEL": "ERROR",  # any case
    }
    ok(sheppy("work", env=env))
    call = fake_work.pop()
    assert [q.name for q in call["worker"].queues] == ["first", "second"]
    assert call["worker"].max_concurrent_tasks == 4 and call["worker"].shutdown_timeout == 2.5
    assert call["level"] == logging.ERROR
    # A flag wins over its variable.
    ok(sheppy("work", "-q", "flagged", "-c", "6", env=env))
    flagged = fake_work.pop()["worker"]
    assert [q.name for q in flagged.queues] == ["flagged"] and flagged.max_concurrent_tasks == 6


def test_a_queue_given_twice_is_served_once(fake_work: list[dict[str, Any]]) -> None:
    ok(sheppy("work", "-u", "memory://", "-q", "a", "-q", "a", "-q", "b"))
    assert [q.name for q in fake_work[0]["worker"].queues] == ["a", "b"]


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "0"],
        ["--max-concurrent", "-1"],
        ["--max-prefetch", "0"],
        ["--max-tasks", "0"],
        ["-l", "verbose"],
        ["--shutdown-timeout", "-1"],
    ],
)
def test_work_refuses_invalid_option_values(argv: list[str], fake_work: list[dict[str, Any]]) -> None:
    result = sheppy("work", "-u", "memory://", *argv)
    assert result.exit_code != 0, result.output
    assert fake_work == []


def test_work_with_everything_disabled_says_so(fake_work: list[dict[str, Any]]) -> None:
    result = sheppy(
        "work", "-u", "memory://", "--disable-job-processing", "--disable-scheduler", "--disable-cron-manager"
    )
    assert result.exit_code == 1
    assert "At least one processing type must be enabled" in result.output
    assert fake_work == []


def test_work_reload_is_refused_with_a_hint(fake_work: list[dict[str, Any]]) -> None:
    # Deliberate difference: sheppy 0.0.7's --reload restarts the worker on file changes (watchfiles).
    result = sheppy("work", "-u", "memory://", "--reload")
    assert result.exit_code == 1
    assert "--reload is not supported" in result.output and "watchfiles" in result.output
    assert fake_work == []


# -- sheppy work --prestart ------------------------------------------------------------------------------


def test_prestart_hook_runs_once_before_the_worker(fake_work: list[dict[str, Any]]) -> None:
    ok(sheppy("work", "--backend-url", "memory://", "--prestart", f"{TASKS}:record_hook"))
    assert t.hook_calls == ["hook", "work"]


def test_prestart_hook_may_be_async_and_come_from_the_environment(fake_work: list[dict[str, Any]]) -> None:
    ok(sheppy("work", "-u", "memory://", env={"SHEPPY_PRESTART": f"{TASKS}:async_record_hook"}))
    assert t.hook_calls == ["async hook", "work"]


def test_no_prestart_hook_starts_the_worker(fake_work: list[dict[str, Any]]) -> None:
    ok(sheppy("work", "-u", "memory://"))
    assert t.hook_calls == ["work"]


def test_a_failing_prestart_hook_propagates_and_the_worker_never_starts(
    fake_work: list[dict[str, Any]],
) -> None:
    result = sheppy("work", "-u", "memory://", "--prestart", f"{TASKS}:failing_hook")
    assert result.exit_code != 0
    assert isinstance(result.exception, RuntimeError) and "prestart failed" in str(result.exception)
    assert t.hook_calls == []


@pytest.mark.parametrize("hook", ["no_such_module_xyz:func", f"{TASKS}:no_such_hook", f"{TASKS}:calls"])
def test_an_unresolvable_prestart_hook_is_a_value_error_and_the_worker_never_starts(
    hook: str, fake_work: list[dict[str, Any]]
) -> None:
    result = sheppy("work", "-u", "memory://", "--prestart", hook)
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError), (result.output, result.exception)
    assert t.hook_calls == []


def test_a_prestart_value_that_is_not_a_function_name_is_refused(fake_work: list[dict[str, Any]]) -> None:
    result = sheppy("work", "-u", "memory://", "--prestart", "not-a-function-name")
    assert result.exit_code == 1 and "--prestart 'not-a-function-name'" in result.output
    assert t.hook_calls == []


def test_a_failing_prestart_hook_is_one_line_from_the_console_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same propagated exception, through the console entry point (`sheppy`, `python -m sheppy_core`).
    from sheppy_core.cli import main

    monkeypatch.setattr(
        sys, "argv", ["sheppy", "work", "-u", "memory://", "--prestart", f"{TASKS}:failing_hook"]
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: prestart hook '{TASKS}:failing_hook' failed: RuntimeError: prestart failed"


# -- sheppy work on a store ------------------------------------------------------------------------------


@shared_stores
def test_work_oneshot_runs_what_is_queued_and_exits(store: Store) -> None:
    added = [t.add(i, i) for i in range(3)]
    on_store(store.url, lambda q: q.add(added))
    ok(sheppy("work", "-u", store.url or "", "-q", QUEUE_NAME, "-i", TASKS, "--oneshot"))
    done = on_store(store.url, lambda q: q.get_task(added))
    assert [done[x.id].result for x in added] == [0, 2, 4]
    assert all(done[x.id].status == "completed" for x in added)


@shared_stores
def test_work_max_tasks_stops_after_that_many(store: Store) -> None:
    added = [t.add(i, 1) for i in range(3)]
    on_store(store.url, lambda q: q.add(added))
    ok(sheppy("work", "-u", store.url or "", "-q", QUEUE_NAME, "-i", TASKS, "--max-tasks", "2", "-c", "1"))
    done = on_store(store.url, lambda q: q.get_task(added))
    assert sorted(done[x.id].status for x in added) == ["completed", "completed", "pending"]
    assert on_store(store.url, lambda q: q.size()) == 1


@shared_stores
def test_work_serves_repeated_queues_and_the_environment_list(store: Store) -> None:
    first, second = t.add(1, 1), t.add(2, 2)
    on_store(store.url, lambda q: q.add(first), queue="q-one")
    on_store(store.url, lambda q: q.add(second), queue="q-two")
    ok(sheppy("work", "-u", store.url or "", "-q", "q-one", "-q", "q-two", "-i", TASKS, "--oneshot"))
    assert on_store(store.url, lambda q: q.get_task(first), queue="q-one").result == 2
    assert on_store(store.url, lambda q: q.get_task(second), queue="q-two").result == 4
    third, fourth = t.add(3, 3), t.add(4, 4)
    on_store(store.url, lambda q: q.add(third), queue="q-one")
    on_store(store.url, lambda q: q.add(fourth), queue="q-two")
    env = {"SHEPPY_BACKEND_URL": store.url, "SHEPPY_QUEUE": "q-one,q-two"}
    ok(sheppy("work", "-i", TASKS, "--oneshot", env=env))
    assert on_store(store.url, lambda q: q.get_task(third), queue="q-one").result == 6
    assert on_store(store.url, lambda q: q.get_task(fourth), queue="q-two").result == 8


# -- -u / -q and their variables on the other commands ---------------------------------------------------


@shared_stores
def test_backend_url_and_queue_come_from_flags_or_variables(store: Store) -> None:
    env = {"SHEPPY_BACKEND_URL": store.url, "SHEPPY_QUEUE": "env-first,env-second"}
    queued = as_json(sheppy("task", "add", ADD, "-a", "[1, 2]", "-f", "json", env=env))
    # SHEPPY_QUEUE's first name for single-queue commands.
    assert queued["queue"] == "env-first"
    stored = on_store(store.url, lambda q: q.get_task(queued["id"]), queue="env-first")
    assert stored is not None and list(stored.spec.args) == [1, 2]
    flagged = as_json(
        sheppy("task", "add", ADD, "-a", "[3, 4]", "-q", "flag-q", "-u", store.url or "", "-f", "json")
    )
    assert on_store(store.url, lambda q: q.get_task(flagged["id"]), queue="flag-q") is not None
    long_names = as_json(
        sheppy("task", "add", ADD, "--args", "[5, 6]", "--queue", "flag-q", "--backend-url", store.url or "",
               "-f", "json")
    )  # fmt: skip
    assert on_store(store.url, lambda q: q.size(), queue="flag-q") == 2
    assert long_names["spec"]["args"] == [5, 6]


# -- sheppy task list / info -----------------------------------------------------------------------------


def _populate(url: str | None) -> dict[str, Any]:
    """One task in each state sheppy's --status names: pending, scheduled, completed, failed."""
    pending, scheduled, completed, failed = t.add(1, 1), t.add(2, 2), t.add(3, 3), t.always_fails()

    async def go(q: Queue) -> None:
        await q.add([completed, failed])
        worker = fast(Worker(QUEUE_NAME, q.backend))
        await asyncio.wait_for(worker.work(max_tasks=2, register_signal_handlers=False), 60)
        await q.add(pending)
        await q.schedule(scheduled, timedelta(hours=1))

    on_store(url, go)
    return {"pending": pending, "scheduled": scheduled, "completed": completed, "failed": failed}


@shared_stores
def test_task_list_filters_by_status_in_table_and_json(store: Store) -> None:
    tasks = _populate(store.url)
    url = store.url or ""
    everything = as_json(sheppy("task", "list", "-u", url, "-q", QUEUE_NAME, "-f", "json"))
    assert {row["id"] for row in everything} == {str(x.id) for x in tasks.values()}
    for status, expected in tasks.items():
        rows = as_json(sheppy("task", "list", "-u", url, "-q", QUEUE_NAME, "-s", status, "--format", "json"))
        assert [row["id"] for row in rows] == [str(expected.id)], status
        assert rows[0]["status"] == status
        # The table shows ids short, as git does (docs/migrating-from-sheppy.md); --wide shows them whole.
        table = ok(sheppy("task", "list", "-u", url, "-q", QUEUE_NAME, "--status", status))
        assert str(expected.id)[:8] in table.output
        assert all(str(other.id)[:8] not in table.output for other in tasks.values() if other is not expected)
        wide = ok(sheppy("task", "list", "-u", url, "-q", QUEUE_NAME, "--status", status, "--wide"))
        assert str(expected.id) in wide.output
    assert (
        str(tasks["failed"].id)[:8]
        in ok(sheppy("task", "list", "-u", url, "-q", QUEUE_NAME, "-s", "all")).output
    )
    bad = sheppy("task", "list", "-u", url, "-s", "done")
    assert bad.exit_code == 1 and "--status must be one of" in bad.output


@shared_stores
def test_task_info_shows_no_next_retry_once_retries_are_spent(store: Store) -> None:
    job = t.fails_after_one_retry()

    async def go(q: Queue) -> None:
        await q.add(job)
        worker = fast(Worker(QUEUE_NAME, q.backend))
        runner = asyncio.create_task(worker.work(register_signal_handlers=False))
        try:
            done = await q.wait_for(job, timeout=60)
        finally:
            worker.stop()
            await asyncio.wait_for(runner, 60)
        assert done is not None and done.status == "failed" and done.next_retry_at is not None

    on_store(store.url, go)
    shown = ok(sheppy("task", "info", str(job.id), "-u", store.url or "", "-q", QUEUE_NAME)).output
    assert "1 of 1" in shown and "broken twice" in shown
    assert "next retry" not in shown  # none is coming (#20)


@shared_stores
def test_task_info_shows_arguments_result_error_and_retries(store: Store) -> None:
    tasks = _populate(store.url)
    url = store.url or ""
    shown = ok(sheppy("task", "info", str(tasks["completed"].id), "-u", url, "-q", QUEUE_NAME)).output
    assert str(tasks["completed"].id) in shown and ADD in shown and "[3, 3]" in shown
    assert "completed" in shown and "6" in shown and "retries" in shown
    failed = ok(sheppy("task", "info", str(tasks["failed"].id), "-u", url, "-q", QUEUE_NAME)).output
    assert "failed" in failed and "broken on purpose" in failed and "Traceback" in failed
    record = as_json(
        sheppy("task", "info", str(tasks["completed"].id), "-u", url, "-q", QUEUE_NAME, "-f", "json")
    )
    assert record["result"] == 6 and record["spec"]["args"] == [3, 3] and record["retry_count"] == 0
    missing = sheppy("task", "info", str(uuid.uuid4()), "-u", url, "-q", QUEUE_NAME)
    assert missing.exit_code == 1 and "not found" in missing.output


# -- sheppy task retry -----------------------------------------------------------------------------------


@shared_stores
def test_task_retry_requeues_a_failed_task_and_needs_force_for_a_completed_one(store: Store) -> None:
    tasks = _populate(store.url)
    url = store.url or ""
    ok(sheppy("task", "retry", str(tasks["failed"].id), "-u", url, "-q", QUEUE_NAME))
    assert on_store(store.url, lambda q: q.get_task(tasks["failed"])).status == "pending"
    refused = sheppy("task", "retry", str(tasks["completed"].id), "-u", url, "-q", QUEUE_NAME)
    assert refused.exit_code == 1
    assert "Task has already completed successfully, use force to retry anyways" in refused.output
    # The command line names its own flag, not the Python keyword (#20).
    assert "--force" in refused.output and "force=True" not in refused.output
    ok(sheppy("task", "retry", str(tasks["completed"].id), "-u", url, "-q", QUEUE_NAME, "--force"))
    assert on_store(store.url, lambda q: q.get_task(tasks["completed"])).status == "pending"
    # §18.10: a task that still waits is never queued twice, even with -f.
    live = sheppy("task", "retry", str(tasks["pending"].id), "-u", url, "-q", QUEUE_NAME, "-f")
    assert live.exit_code == 1
    assert on_store(store.url, lambda q: q.size()) == 3
    unknown = sheppy("task", "retry", str(uuid.uuid4()), "-u", url, "-q", QUEUE_NAME)
    assert unknown.exit_code == 1 and "not found" in unknown.output


# -- sheppy task add -------------------------------------------------------------------------------------


@shared_stores
def test_task_add_queues_with_args_and_kwargs(store: Store) -> None:
    url = store.url or ""
    result = ok(sheppy("task", "add", ADD, "-a", "[2]", "-k", '{"y": 5}', "-u", url, "-q", QUEUE_NAME))
    [queued] = on_store(store.url, lambda q: q.get_all_tasks())
    assert str(queued.id) in result.output and queued.status == "pending"
    assert (queued.spec.func, list(queued.spec.args), queued.spec.kwargs) == (ADD, [2], {"y": 5})


def _worker_in_thread(url: str | None, max_tasks: int) -> threading.Thread:
    async def run() -> None:
        worker = fast(Worker(QUEUE_NAME, backend_from_url(url or "")))
        await asyncio.wait_for(worker.work(max_tasks=max_tasks, register_signal_handlers=False), 60)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    return thread


@shared_stores
def test_task_add_wait_prints_the_result(store: Store) -> None:
    thread = _worker_in_thread(store.url, max_tasks=2)
    try:
        url = store.url or ""
        result = ok(
            sheppy("task", "add", ADD, "-a", "[20, 22]", "-w", "-t", "60", "-u", url, "-q", QUEUE_NAME)
        )
        assert "42" in result.output
        failed = sheppy("task", "add", f"{TASKS}:always_fails", "--wait", "--timeout", "60", "-u", url,
                        "-q", QUEUE_NAME)  # fmt: skip
        assert failed.exit_code == 1 and "broken on purpose" in failed.output
    finally:
        thread.join(60)
    assert not thread.is_alive()


@shared_stores
def test_task_add_wait_gives_up_after_the_timeout(store: Store) -> None:
    url = store.url or ""
    result = sheppy("task", "add", ADD, "-a", "[1, 1]", "-w", "-t", "0.3", "-u", url, "-q", QUEUE_NAME)
    assert result.exit_code == 1
    # Still queued: only the wait gave up.
    assert on_store(store.url, lambda q: q.size()) == 1


def test_task_add_refuses_what_is_not_a_task_and_bad_input() -> None:
    for argv, expected in (
        ([f"{TASKS}:plain_function"], "is not a @task function"),
        (["no_such_module_xyz:f"], "no_such_module_xyz"),
        ([ADD, "-a", "[1,"], "--args is not valid JSON"),
        ([ADD, "-k", "[1]"], "--kwargs must be a JSON object"),
        ([ADD, "-a", '["x", 2]'], "invalid arguments"),
    ):
        result = sheppy("task", "add", *argv, "-u", "memory://")
        assert result.exit_code == 1, argv
        assert expected in result.output, (argv, result.output)
    assert t.calls["plain_function"] == 0


# -- sheppy task schedule --------------------------------------------------------------------------------


@shared_stores
@pytest.mark.parametrize(("delay", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400)])
def test_task_schedule_with_a_delay(store: Store, delay: str, seconds: int) -> None:
    before = datetime.now(UTC)
    ok(sheppy("task", "schedule", ADD, "--delay", delay, "-a", "[1]", "-k", '{"y": 2}', "-u", store.url or "",
              "-q", QUEUE_NAME))  # fmt: skip
    [scheduled] = on_store(store.url, lambda q: q.get_scheduled())
    assert (
        scheduled.status == "scheduled"
        and list(scheduled.spec.args) == [1]
        and scheduled.spec.kwargs == {"y": 2}
    )
    assert scheduled.scheduled_at is not None
    expected = before + timedelta(seconds=seconds)
    assert expected - timedelta(seconds=1) <= scheduled.scheduled_at <= expected + timedelta(seconds=60)


@shared_stores
def test_task_schedule_at_a_time_naive_is_utc(store: Store) -> None:
    url = store.url or ""
    ok(
        sheppy(
            "task", "schedule", ADD, "--at", "2031-05-04T12:30:00", "-a", "[1, 2]", "-u", url, "-q", "naive"
        )
    )
    ok(
        sheppy(
            "task",
            "schedule",
            ADD,
            "--at",
            "2031-05-04T12:30:00+02:00",
            "-a",
            "[1, 2]",
            "-u",
            url,
            "-q",
            "aware",
        )
    )
    [naive] = on_store(store.url, lambda q: q.get_scheduled(), queue="naive")
    [aware] = on_store(store.url, lambda q: q.get_scheduled(), queue="aware")
    assert naive.scheduled_at == datetime(2031, 5, 4, 12, 30, tzinfo=UTC)
    assert aware.scheduled_at == datetime(2031, 5, 4, 10, 30, tzinfo=UTC)


def test_task_schedule_needs_exactly_one_valid_time() -> None:
    for extra in (
        [],
        ["--delay", "5m", "--at", "2031-01-01T00:00:00"],
        ["--delay", "soon"],
        ["--at", "tomorrow"],
    ):
        result = sheppy("task", "schedule", ADD, "-a", "[1, 2]", "-u", "memory://", *extra)
        assert result.exit_code == 1, (extra, result.output)


# -- sheppy task test ------------------------------------------------------------------------------------


def test_task_test_runs_in_process_without_a_backend() -> None:
    result = ok(sheppy("task", "test", ADD, "-a", "[2, 3]", env={"SHEPPY_BACKEND_URL": "nope://unused"}))
    assert "5" in result.output
    assert "12" in ok(sheppy("task", "test", f"{TASKS}:sync_mul", "-k", '{"x": 3, "y": 4}')).output


def test_task_test_of_a_failing_task_shows_the_error_and_with_trace_the_traceback() -> None:
    # Deliberate difference: sheppy prints the failure and exits 0; we exit 1 so scripts can tell.
    plain = sheppy("task", "test", f"{TASKS}:always_fails")
    assert plain.exit_code == 1 and "broken on purpose" in plain.output and "Traceback" not in plain.output
    traced = sheppy("task", "test", f"{TASKS}:always_fails", "-t")
    assert traced.exit_code == 1 and "Traceback" in traced.output and "ValueError" in traced.output
    long_flag = sheppy("task", "test", f"{TASKS}:always_fails", "--trace")
    assert "Traceback" in long_flag.output


def test_task_test_never_runs_a_plain_function() -> None:
    result = sheppy("task", "test", f"{TASKS}:plain_function")
    assert result.exit_code == 1 and "is not a @task function" in result.output
    assert t.calls["plain_function"] == 0


# -- sheppy queue list / cron list -----------------------------------------------------------------------


@shared_stores
def test_queue_list_shows_queues_with_pending_counts(store: Store) -> None:
    on_store(store.url, lambda q: q.add([t.add(1, 1), t.add(2, 2)]), queue="busy")
    on_store(store.url, lambda q: q.add(t.add(3, 3)), queue="quiet")
    counts = as_json(sheppy("queue", "list", "-u", store.url or "", "-f", "json"))
    assert counts["busy"]["pending"] == 2 and counts["quiet"]["pending"] == 1
    table = ok(sheppy("queue", "list", "-u", store.url or "")).output
    assert "busy" in table and "quiet" in table and "pending" in table


@shared_stores
def test_cron_list_shows_registered_crons(store: Store) -> None:
    on_store(store.url, lambda q: q.add_cron(t.add(1, 2), "*/5 * * * *"))
    url = store.url or ""
    [row] = as_json(sheppy("cron", "list", "-u", url, "-q", QUEUE_NAME, "-f", "json"))
    assert (row["expression"], row["function"], row["args"]) == ("*/5 * * * *", ADD, [1, 2])
    table = ok(sheppy("cron", "list", "-u", url, "-q", QUEUE_NAME)).output
    assert "*/5 * * * *" in table and ADD in table
    assert as_json(sheppy("cron", "list", "-u", url, "-q", "no-crons-here", "-f", "json")) == []


# -- sheppy experimental task cancel / delete ------------------------------------------------------------


@shared_stores
def test_experimental_cancel_and_delete_in_table_and_json(store: Store) -> None:
    url = store.url or ""
    waiting, scheduled = t.add(1, 1), t.add(2, 2)
    on_store(store.url, lambda q: q.add(waiting))
    on_store(store.url, lambda q: q.schedule(scheduled, timedelta(hours=1)))
    shown = ok(sheppy("experimental", "task", "cancel", str(waiting.id), "-u", url, "-q", QUEUE_NAME)).output
    assert str(waiting.id) in shown and "cancelled" in shown
    record = as_json(
        sheppy(
            "experimental",
            "task",
            "cancel",
            str(scheduled.id),
            "-u",
            url,
            "-q",
            QUEUE_NAME,
            "--format",
            "json",
        )
    )
    assert record["id"] == str(scheduled.id) and record["status"] == "cancelled"
    assert record["queue"] == QUEUE_NAME and record["cancelled"] is True
    assert on_store(store.url, lambda q: q.size()) == 0
    again = sheppy("experimental", "task", "cancel", str(waiting.id), "-u", url, "-q", QUEUE_NAME)
    assert again.exit_code == 1

    ok(sheppy("experimental", "task", "delete", str(waiting.id), "-u", url, "-q", QUEUE_NAME))
    deleted = as_json(
        sheppy(
            "experimental",
            "task",
            "delete",
            str(scheduled.id),
            "-u",
            url,
            "-q",
            QUEUE_NAME,
            "--format",
            "json",
        )
    )
    assert deleted["task_id"] == str(scheduled.id) and deleted["deleted"] is True
    assert deleted["queue"] == QUEUE_NAME
    assert on_store(store.url, lambda q: q.get_task([waiting, scheduled])) == {}
    gone = sheppy("experimental", "task", "delete", str(waiting.id), "-u", url, "-q", QUEUE_NAME)
    assert gone.exit_code == 1 and "not found" in gone.output


@shared_stores
def test_experimental_delete_refuses_a_task_that_still_waits(store: Store) -> None:
    waiting = t.add(1, 1)
    on_store(store.url, lambda q: q.add(waiting))
    result = sheppy(
        "experimental", "task", "delete", str(waiting.id), "-u", store.url or "", "-q", QUEUE_NAME
    )
    assert result.exit_code == 1 and "cancel the task first" in result.output
    assert on_store(store.url, lambda q: q.size()) == 1


# -- errors ----------------------------------------------------------------------------------------------


def test_errors_print_a_message_and_exit_1() -> None:
    for argv in (
        ["task", "info", "not-a-uuid", "-u", "memory://"],
        ["task", "retry", "not-a-uuid", "-u", "memory://"],
        ["task", "list", "-u", "nope://nowhere"],
        ["experimental", "task", "cancel", str(uuid.uuid4()), "-u", "memory://"],
    ):
        result = sheppy(*argv)
        assert result.exit_code == 1, (argv, result.output)
        assert result.output.strip(), argv
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
