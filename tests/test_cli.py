from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from sheppy_core import __version__
from sheppy_core.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_backends_lists_installed_plugins() -> None:
    result = runner.invoke(app, ["backends", "--format", "json"])
    assert result.exit_code == 0
    rows = {r["distribution"]: r for r in json.loads(result.output)["backends"]}
    assert "memory" in rows["sheppy-core"]["schemes"]
    assert rows["sheppy-dummy"]["contract_version"] == 1


def test_work_with_a_bad_url_is_one_clear_line() -> None:
    result = runner.invoke(app, ["work", "-u", "nope://user:secret@x", "--oneshot"])
    assert result.exit_code == 1
    assert "nope" in result.output and "secret" not in result.output


def test_module_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sheppy_core", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and __version__ in out.stdout


def test_work_oneshot_runs_imported_tasks(tmp_path: Path, monkeypatch: object) -> None:
    # memory:// is per process, so this only proves the command wiring: --import registers the module's
    # tasks, the worker starts, finds the queue empty and exits 0.
    (tmp_path / "jobs.py").write_text(
        "from sheppy_core import task\n@task\ndef double(x: int) -> int:\n    return 2 * x\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sheppy_core",
            "work",
            "-u",
            "memory://",
            "--import",
            "jobs",
            "--oneshot",
            "-l",
            "info",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "worker" in out.stderr and "stopped" in out.stderr


def test_work_with_unknown_task_module_fails_cleanly(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sheppy_core",
            "work",
            "-u",
            "memory://",
            "--import",
            "no_such_jobs",
            "--oneshot",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "no_such_jobs" in out.stderr and "Traceback" not in out.stderr
