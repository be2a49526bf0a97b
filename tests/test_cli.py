"""The ``sheppy`` command in-process (typer's CliRunner) and as a subprocess, on built-in backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tasks_for_tests
from typer.testing import CliRunner

from sheppy_core import __version__
from sheppy_core.cli import app

runner = CliRunner()


def sheppy(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sheppy_core", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )


def one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and "Traceback" not in output
    return lines[0]


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_help_documents_the_variable_behind_each_flag() -> None:
    result = runner.invoke(app, ["work", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for variable in (
        "SHEPPY_BACKEND_URL",
        "SHEPPY_QUEUE",
        "SHEPPY_MAX_CONCURRENT_TASKS",
        "SHEPPY_SHUTDOWN_TIMEOUT",
        "SHEPPY_LOG_LEVEL",
        "SHEPPY_PRESTART",
    ):
        assert variable in result.output
    for command in (["task", "list", "--help"], ["queue", "list", "--help"], ["cron", "list", "--help"]):
        assert "SHEPPY_BACKEND_URL" in runner.invoke(app, command, env={"COLUMNS": "200"}).output


def test_every_sheppy_command_exists() -> None:
    for command in (
        ["work"],
        ["task", "list"],
        ["task", "info"],
        ["task", "retry"],
        ["task", "add"],
        ["task", "schedule"],
        ["task", "test"],
        ["queue", "list"],
        ["queue", "clear"],
        ["cron", "list"],
        ["cron", "add"],
        ["cron", "delete"],
        ["experimental", "task", "cancel"],
        ["experimental", "task", "delete"],
        ["backends"],
        ["backends", "check"],
        ["bench"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_backends_lists_installed_plugins() -> None:
    result = runner.invoke(app, ["backends", "--format", "json"])
    assert result.exit_code == 0
    rows = {r["distribution"]: r for r in json.loads(result.stdout)["backends"]}
    assert "memory" in rows["sheppy-core"]["schemes"]
    assert rows["sheppy-dummy"]["contract_version"] == 1
    table = runner.invoke(app, ["backends"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "sheppy-dummy" in table.output and "capabilities" in table.output


def test_backends_names_the_methods_a_stub_backend_lacks(tmp_path: Path) -> None:
    # sheppy-dummy-clash registers StubBackend (stub://): a class with a URL and no contract method.
    from sheppy_core.backend import Backend

    contract = sorted(Backend.__abstractmethods__)
    listed = runner.invoke(app, ["backends", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {tuple(r["schemes"]): r for r in json.loads(listed.stdout)["backends"]}
    stub, memory = rows[("stub",)], rows[("memory",)]
    # All of them, in the order the contract (the Backend class) defines them.
    assert stub["missing_methods"] == [name for name in vars(Backend) if name in contract]
    assert f"({len(contract)} of {len(contract)} contract methods missing)" in stub["problem"]
    assert memory["problem"] is None and memory["missing_methods"] == []
    # As a user sees it on an 80-column terminal: every name whole, no line wider than the terminal.
    shown = sheppy("backends", cwd=tmp_path, env=dict(os.environ, COLUMNS="80"))
    assert shown.returncode == 0, shown.stderr
    output = shown.stdout + shown.stderr
    assert all(len(line) <= 80 for line in output.splitlines()), output
    words = set(output.replace(",", " ").split())
    assert set(contract) <= words, sorted(set(contract) - words)
    assert f"{len(contract)} of {len(contract)} contract methods missing" in " ".join(output.split())


def test_backends_check_reports_latency() -> None:
    result = runner.invoke(app, ["backends", "check", "memory://", "--samples", "5", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["latency_ms"]["samples"] == 5 and report["latency_ms"]["median"] >= 0
    assert report["distribution"].startswith("sheppy-core") and "cron" in report["capabilities"]
    table = runner.invoke(app, ["backends", "check", "memory://"])
    assert table.exit_code == 0 and "round trip" in table.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nope://user:secret@x", "nope"),
        ("no-scheme-at-all", "has no scheme"),
        ("memory://?bogus=1", "bogus"),
        ("oldver://x", "contract version"),
    ],
)
def test_backends_check_and_work_with_a_bad_url_is_one_clear_line(url: str, expected: str) -> None:
    for command in (["backends", "check", url], ["work", "-u", url, "--burst"], ["task", "list", "-u", url]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        line = one_error_line(result.output)
        assert expected in line and "secret" not in result.output


def test_an_invalid_variable_is_one_line_naming_it() -> None:
    result = runner.invoke(
        app, ["work", "-u", "memory://", "--burst"], env={"SHEPPY_MAX_CONCURRENT_TASKS": "lots"}
    )
    assert result.exit_code == 1
    assert "SHEPPY_MAX_CONCURRENT_TASKS='lots'" in one_error_line(result.output)
    bad_level = runner.invoke(app, ["task", "list", "-u", "memory://"], env={"SHEPPY_LOG_LEVEL": "x"})
    assert bad_level.exit_code == 1 and "SHEPPY_LOG_LEVEL" in bad_level.output


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["no_such_module_xyz:f"], "cannot import module 'no_such_module_xyz'"),
        (["tasks_for_tests:plain_function"], "is not a @task function"),
        (["tasks_for_tests:missing"], "has no function 'missing'"),
        (["not-a-name"], "expected 'module:function'"),
        (["tasks_for_tests:add", "-a", "[1,"], "--args is not valid JSON"),
        (["tasks_for_tests:add", "-a", '{"x": 1}'], "--args must be a JSON array"),
        (["tasks_for_tests:add", "-k", "[1]"], "--kwargs must be a JSON object"),
        (
            ["tasks_for_tests:add", "-a", '["x", 2]'],
            "invalid arguments for tasks_for_tests:add: 0: Input should be",
        ),
        (["tasks_for_tests:add", "-a", "[1]"], "y: No value provided for parameter 'y'"),
        (["tasks_for_tests:add", "-a", "[1, 2]", "-k", '{"z": 1}'], "z: Unexpected keyword arguments: z"),
    ],
)
def test_bad_task_input_is_one_line_for_add_schedule_test_and_cron(
    arguments: list[str], expected: str
) -> None:
    for command in (
        ["task", "add", "-u", "memory://"],
        ["task", "schedule", "--delay", "5m", "-u", "memory://"],
        ["task", "test"],
        ["cron", "add", "-u", "memory://"],
    ):
        extra = ["* * * * *"] if command[0] == "cron" else []
        argv = [*command, arguments[0], *extra, *arguments[1:]]
        result = runner.invoke(app, argv)
        assert result.exit_code == 1, (argv, result.output)
        assert expected in one_error_line(result.output), argv
    assert tasks_for_tests.calls["plain_function"] == 0


def test_task_test_runs_in_process() -> None:
    ok = runner.invoke(app, ["task", "test", "tasks_for_tests:add", "-a", "[1, 2]"])
    assert ok.exit_code == 0 and "completed: 3" in ok.output
    as_json = runner.invoke(
        app, ["task", "test", "tasks_for_tests:sync_mul", "-k", '{"x": 3, "y": 4}', "-f", "json"]
    )
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["result"] == 12
    failed = runner.invoke(app, ["task", "test", "tasks_for_tests:always_fails", "--trace"])
    assert failed.exit_code == 1 and "ValueError: broken" in failed.output and "Traceback" in failed.output


def test_schedule_needs_exactly_one_time_and_valid_values() -> None:
    for extra, expected in (
        ([], "exactly one of --delay or --at"),
        (["--delay", "5m", "--at", "2030-01-01"], "exactly one of --delay or --at"),
        (["--delay", "soon"], "is not a delay"),
        (["--at", "tomorrow"], "is not an ISO 8601 time"),
    ):
        result = runner.invoke(app, ["task", "schedule", "tasks_for_tests:stamp", "-u", "memory://", *extra])
        assert result.exit_code == 1 and expected in one_error_line(result.output)


def test_ids_status_and_format_are_checked() -> None:
    for command in (
        ["task", "info", "not-a-uuid", "-u", "memory://"],
        ["task", "retry", "not-a-uuid", "-u", "memory://"],
        ["experimental", "task", "cancel", "12", "-u", "memory://"],
        ["experimental", "task", "delete", "12", "-u", "memory://"],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 1 and "is not a task id" in one_error_line(result.output)
    status = runner.invoke(app, ["task", "list", "-u", "memory://", "--status", "done"])
    assert status.exit_code == 1 and "--status must be one of all, pending" in status.output
    both = runner.invoke(app, ["task", "retry", "-u", "memory://"])
    assert both.exit_code == 1 and "--all-failed" in both.output
    assert runner.invoke(app, ["queue", "list", "-u", "memory://", "-f", "xml"]).exit_code == 2


def test_memory_commands_on_an_empty_store() -> None:
    listed = runner.invoke(app, ["task", "list", "-u", "memory://", "-f", "json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    queues = runner.invoke(app, ["queue", "list", "-u", "memory://", "-f", "json"])
    assert queues.exit_code == 0 and json.loads(queues.stdout) == {}
    crons = runner.invoke(app, ["cron", "list", "-u", "memory://", "-f", "json"])
    assert crons.exit_code == 0 and json.loads(crons.stdout) == []
    unknown = "00000000-0000-0000-0000-000000000001"
    info = runner.invoke(app, ["task", "info", unknown, "-u", "memory://"])
    assert info.exit_code == 1 and "not found" in one_error_line(info.output)
    cancel = runner.invoke(app, ["experimental", "task", "cancel", unknown, "-u", "memory://"])
    assert cancel.exit_code == 1 and "does not exist" in one_error_line(cancel.output)


def test_queue_clear_asks_unless_yes() -> None:
    declined = runner.invoke(app, ["queue", "clear", "q", "-u", "memory://"], input="n\n")
    assert declined.exit_code == 1 and "nothing was deleted" in declined.output
    # A fresh memory:// store knows no queue 'q': confirmed, the clear runs and says so (no "cleared: 0").
    confirmed = runner.invoke(app, ["queue", "clear", "q", "-u", "memory://"], input="y\n")
    assert confirmed.exit_code == 1 and "no queue 'q'" in confirmed.output
    unasked = runner.invoke(app, ["queue", "clear", "q", "-u", "memory://", "--yes"])
    assert unasked.exit_code == 1 and "Delete every task" not in unasked.output


def test_bench_refuses_a_backend_without_a_shared_store() -> None:
    result = runner.invoke(app, ["bench", "memory://"])
    assert result.exit_code == 1 and "shared_store" in one_error_line(result.output)


def test_module_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    out = sheppy("--version", cwd=tmp_path)
    assert out.returncode == 0 and __version__ in out.stdout


JOBS = "from sheppy_core import task\n@task\ndef double(x: int) -> int:\n    return 2 * x\n"


def test_work_burst_runs_imported_tasks(tmp_path: Path) -> None:
    # memory:// is per process, so this only proves the command wiring: --import registers the module's
    # tasks, the worker starts, finds the queue empty and exits 0 with a summary line.
    (tmp_path / "jobs.py").write_text(JOBS)
    out = sheppy("work", "-u", "memory://", "--import", "jobs", "--burst", "-l", "info", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (
        "worker" in out.stderr
        and "stopped" in out.stderr
        and ": 0 completed, 0 failed, 0 attempts" in out.stderr
    )


def test_work_with_unknown_task_module_fails_cleanly(tmp_path: Path) -> None:
    out = sheppy("work", "-u", "memory://", "--import", "no_such_jobs", "--oneshot", cwd=tmp_path)
    assert out.returncode == 1
    assert "no_such_jobs" in one_error_line(out.stderr)


def test_work_prestart_runs_once_and_a_failure_aborts(tmp_path: Path) -> None:
    (tmp_path / "hooks.py").write_text(
        "import pathlib\n"
        "async def ready() -> None:\n    pathlib.Path('prestarted').write_text('yes')\n"
        "def broken() -> None:\n    raise RuntimeError('database is down')\n"
    )
    ok = sheppy(
        "work", "-u", "memory://", "--burst", "--allow-empty", "--prestart", "hooks:ready", cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "prestarted").read_text() == "yes"
    env = {**os.environ, "SHEPPY_PRESTART": "hooks:broken"}
    failed = sheppy("work", "-u", "memory://", "--burst", "--allow-empty", cwd=tmp_path, env=env)
    assert failed.returncode == 1
    assert "prestart hook 'hooks:broken' failed: RuntimeError: database is down" in one_error_line(
        failed.stderr
    )
    missing = sheppy("work", "-u", "memory://", "--burst", "--prestart", "hooks:nope", cwd=tmp_path)
    assert missing.returncode == 1 and "cannot load prestart hook" in one_error_line(missing.stderr)


def test_a_worker_with_no_registered_task_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "empty_tasks.py").write_text("VALUE = 1  # a module that defines no @task\n")
    for argv in (["work", "-u", "memory://"], ["work", "-u", "memory://", "--burst", "-i", "empty_tasks"]):
        refused = sheppy(*argv, cwd=tmp_path)
        assert refused.returncode == 1, refused.stderr
        line = one_error_line(refused.stderr)
        assert "no @task is registered in this worker" in line and "--import" in line, line
        assert "[tool.sheppy] tasks" in line and "--allow-empty" in line
    allowed = sheppy("work", "-u", "memory://", "--burst", "--allow-empty", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


def test_status_filter_covers_every_stored_status() -> None:
    from typing import get_args

    from sheppy_core.cli._tasks import STATUSES
    from sheppy_core.models import TaskStatus

    stored = set(get_args(TaskStatus)) - {"new", "unknown"}
    assert set(STATUSES) == stored | {"all", "quarantined"}
