"""A report says what its verdicts hold for: the versions of sheppy-core, the suite, the backend's
distribution and the server it reached, and the date of the run (issue #20)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from _runner import run_suite

import sheppy_core


@pytest.mark.timeout(200)
def test_a_redis_report_records_the_server_version_and_the_date(tmp_path: Path) -> None:
    expected = redis.Redis(host="127.0.0.1", port=6379).info("server")["redis_version"]
    run = run_suite("redis", ["--sheppy-backend", "redis://127.0.0.1:6379/14", "-k", "test_pop_fifo"],
                    tmp_path)
    assert run.returncode == 0, run.output
    versions = run.report["versions"]
    assert versions["server"] == expected, versions
    assert versions["sheppy-core"] == sheppy_core.__version__ and versions["sheppy-redis"], versions
    assert versions["sheppy-conformance"], versions
    made = datetime.fromisoformat(run.report["date"])
    assert abs(datetime.now(UTC) - made) < timedelta(minutes=5), run.report["date"]
    assert f"server {expected}" in (tmp_path / "redis.md").read_text()


@pytest.mark.timeout(200)
def test_a_backend_without_server_facts_reports_none(tmp_path: Path) -> None:
    run = run_suite("memory", ["--sheppy-backend", "memory://", "-k", "test_pop_fifo"], tmp_path)
    assert run.returncode == 0, run.output
    assert "server" not in run.report["versions"] and run.report["backend"]["server"] == {}, run.report
