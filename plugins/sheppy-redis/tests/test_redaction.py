"""Credentials never printed: a Redis URL's password (``?password=`` or user info) authenticates but
never appears in an error, ``repr(Queue)``, the ``backends check`` title or the ``work --burst`` summary.

The password-protected server is one of our own (``RedisServer``, ``requirepass``); the shared server
at 6379 is never touched.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sheppy_redis import RedisBackend
from sheppy_redis_testing import RedisServer, double

from sheppy_core import Queue
from sheppy_core.exceptions import BackendConnectionError, ConfigurationError

SECRET = f"s3cret-{uuid.uuid4().hex[:10]}"
WRONG = f"s3cret-wrong-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    own = RedisServer(tmp_path_factory.mktemp("redis-auth"))
    own.start()
    with redis.Redis(host="127.0.0.1", port=own.port) as client:
        client.config_set("requirepass", SECRET)
    try:
        yield own
    finally:
        own.stop()

BURST = ("work", "--burst", "--import", "sheppy_core._bench_tasks", "-u")  # then the URL


def sheppy(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPPY_")}
    env["COLUMNS"] = "500"  # no wrapping: a secret split over two lines would slip past the checks
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "sheppy_core", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
    )


def test_a_query_password_authenticates_and_is_never_shown(server: RedisServer, tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{server.port}/0?password={SECRET}&prefix=auth-{uuid.uuid4().hex[:6]}"
    queue = Queue(url, "jobs")
    assert SECRET not in repr(queue) and "password=***" in repr(queue)
    assert SECRET not in repr(queue.backend)

    async def roundtrip() -> int:
        try:
            assert await queue.add(double(1))
            return await queue.size()
        finally:
            await queue.backend.disconnect()

    assert asyncio.run(roundtrip()) == 1  # it did authenticate

    checked = sheppy(tmp_path, "backends", "check", url)
    assert checked.returncode == 0, checked.stderr
    assert "password=***" in checked.stdout
    assert SECRET not in checked.stdout + checked.stderr

    burst = sheppy(tmp_path, "work", "--burst", "-u", url, "-q", "jobs", "--import", "sheppy_redis_testing")
    assert burst.returncode == 0, burst.stderr
    assert ": 1 completed, " in burst.stderr and "password=***" in burst.stderr
    assert SECRET not in burst.stdout + burst.stderr


def test_a_userinfo_password_authenticates_and_is_never_shown(server: RedisServer, tmp_path: Path) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    checked = sheppy(tmp_path, "backends", "check", url)
    assert checked.returncode == 0, checked.stderr
    assert f"redis://:***@127.0.0.1:{server.port}/0" in checked.stdout
    assert SECRET not in checked.stdout + checked.stderr


@pytest.mark.parametrize("form", ["query", "userinfo"])
async def test_a_wrong_password_is_an_error_without_it(
    server: RedisServer, tmp_path: Path, form: str
) -> None:
    where = f"127.0.0.1:{server.port}/0"
    url = f"redis://{where}?password={WRONG}" if form == "query" else f"redis://default:{WRONG}@{where}"
    queue = Queue(url, "jobs")
    with pytest.raises(BackendConnectionError) as info:
        await queue.size()
    assert WRONG not in str(info.value) and WRONG not in repr(queue)
    for argv in (["backends", "check", url], [*BURST, url, "-q", "jobs"]):
        result = sheppy(tmp_path, *argv)
        assert result.returncode == 1, result
        assert "error: cannot reach the backend at redis://" in result.stderr, result.stderr
        assert WRONG not in result.stdout + result.stderr


async def test_an_unreachable_server_is_an_error_without_the_password(tmp_path: Path) -> None:
    url = f"redis://admin:{SECRET}@127.0.0.1:1/0?password={WRONG}&socket_connect_timeout=2"
    queue = Queue(url, "jobs")
    assert SECRET not in repr(queue) and WRONG not in repr(queue)
    with pytest.raises(BackendConnectionError) as info:
        await queue.size()
    assert SECRET not in str(info.value) and WRONG not in str(info.value)
    for argv in (["backends", "check", url], [*BURST, url, "-q", "jobs"]):
        result = sheppy(tmp_path, *argv)
        assert result.returncode == 1, result
        assert "cannot reach the backend at redis://admin:***@127.0.0.1:1/0?password=***" in result.stderr
        assert SECRET not in result.stdout + result.stderr and WRONG not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "password", ["zq/QQsecret", "zq#QQsecret", "zq?QQsecret", "98/QQsecret", "98#QQsecret", "98?QQsecret"]
)
def test_an_unencoded_special_character_in_the_password_is_never_shown(password: str, tmp_path: Path) -> None:
    url = f"redis://user:{password}@127.0.0.1:1/0"
    with pytest.raises(ConfigurationError) as info:
        RedisBackend.from_url(url)
    message = str(info.value)
    assert "QQsecret" not in message and password[:2] not in message.replace("127.0.0.1", ""), message
    assert "percent-encode" in message
    result = sheppy(tmp_path, "backends", "check", url)
    assert result.returncode == 1
    assert "QQsecret" not in result.stdout + result.stderr
