"""Credentials never printed: a PostgreSQL URL's password (``?password=`` or user info) reaches the
server but never appears in an error, ``repr(Queue)``, the ``backends check`` title or the
``work --burst`` summary. The shared server uses trust auth, so any password is accepted there; the
failing cases use a closed port."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sheppy_postgres import PostgresBackend

from sheppy_core import Queue
from sheppy_core.exceptions import BackendConnectionError, ConfigurationError

SECRET = f"s3cret-{uuid.uuid4().hex[:10]}"
OTHER = f"s3cret-other-{uuid.uuid4().hex[:10]}"

BURST = ("work", "--burst", "--import", "sheppy_core._bench_tasks", "-u")  # then the URL


def sheppy(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPPY_")}
    env["COLUMNS"] = "500"  # no wrapping: a secret split over two lines would slip past the checks
    return subprocess.run(
        [sys.executable, "-m", "sheppy_core", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
    )


def with_userinfo_password(url: str, password: str) -> str:
    scheme, _, rest = url.partition("://")
    user, _, host = rest.rpartition("@")
    return f"{scheme}://{user.split(':')[0] or 'postgres'}:{password}@{host}"


async def test_a_query_password_is_used_and_never_shown(url: str, tmp_path: Path) -> None:
    url = f"{url}&password={SECRET}"
    queue = Queue(url, f"q-{uuid.uuid4().hex[:8]}")
    assert SECRET not in repr(queue) and "password=***" in repr(queue)
    try:
        assert await queue.size() == 0  # it connected with that URL
    finally:
        await queue.backend.disconnect()

    checked = sheppy(tmp_path, "backends", "check", url)
    assert checked.returncode == 0, checked.stderr
    assert "password=***" in checked.stdout
    assert SECRET not in checked.stdout + checked.stderr

    burst = sheppy(tmp_path, *BURST, url, "-q", queue.name)
    assert burst.returncode == 0, burst.stderr
    assert ": 0 completed, " in burst.stderr and "password=***" in burst.stderr
    assert SECRET not in burst.stdout + burst.stderr


def test_a_userinfo_password_is_never_shown(url: str, tmp_path: Path) -> None:
    url = with_userinfo_password(f"{url}&sslpassword={OTHER}", SECRET)
    checked = sheppy(tmp_path, "backends", "check", url)
    assert checked.returncode == 0, checked.stderr
    assert ":***@" in checked.stdout and "sslpassword=***" in checked.stdout
    assert SECRET not in checked.stdout + checked.stderr and OTHER not in checked.stdout + checked.stderr


async def test_an_unreachable_server_is_an_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test?password={OTHER}&connect_timeout=2"
    queue = Queue(url, "jobs")
    assert SECRET not in repr(queue) and OTHER not in repr(queue)
    with pytest.raises(BackendConnectionError) as info:
        await queue.size()
    assert SECRET not in str(info.value) and OTHER not in str(info.value)
    assert "postgresql://postgres:***@127.0.0.1:1/test?password=***" in str(info.value)
    for argv in (["backends", "check", url], [*BURST, url, "-q", "jobs"]):
        result = sheppy(tmp_path, *argv)
        assert result.returncode == 1, result
        shown = "postgresql://postgres:***@127.0.0.1:1/test?password=***"
        assert f"cannot reach the backend at {shown}" in result.stderr, result.stderr
        assert SECRET not in result.stdout + result.stderr and OTHER not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "password", ["zq/QQsecret", "zq#QQsecret", "zq?QQsecret", "98/QQsecret", "98#QQsecret", "98?QQsecret"]
)
def test_an_unencoded_special_character_in_the_password_is_never_shown(password: str, tmp_path: Path) -> None:
    url = f"postgresql://postgres:{password}@127.0.0.1:1/test"
    with pytest.raises(ConfigurationError) as info:
        PostgresBackend.from_url(url)
    message = str(info.value)
    assert "QQsecret" not in message and password[:2] not in message.replace("127.0.0.1", ""), message
    result = sheppy(tmp_path, "backends", "check", url)
    assert result.returncode == 1
    assert "QQsecret" not in result.stdout + result.stderr
