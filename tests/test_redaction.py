"""Credentials never printed: every URL shown anywhere goes through ``redact_url``.

``redact_url`` hides the userinfo password and the values of secret-looking query parameters; a URL it
cannot read (an unencoded ``/``, ``?``, ``#`` or ``@`` in the password) comes out with everything from
``scheme://`` to its last ``@`` hidden. ``redact_secrets`` scrubs those same secrets out of a message
(a driver's error text) that may quote parts of the URL.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from sheppy_core import Queue
from sheppy_core._settings import load_settings
from sheppy_core.backend import redact_secrets, redact_url
from sheppy_core.cli import app
from sheppy_core.exceptions import ConfigurationError, SheppyError

runner = CliRunner()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # userinfo
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:pw@host/0", "redis://user:***@host/0"),
        ("postgresql://me:p%40ss%2Fw%23rd@db/app", "postgresql://me:***@db/app"),
        ("postgresql://me@corp.example:pw@db/app", "postgresql://me@corp.example:***@db/app"),
        ("postgresql://postgres@db/app", "postgresql://postgres@db/app"),
        ("unix://:pw@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
        # secret query values: exact names, case-insensitive, and names containing password/secret/token
        ("redis://h/0?password=s3cret", "redis://h/0?password=***"),
        ("redis://h/0?PASSWORD=s3cret", "redis://h/0?PASSWORD=***"),
        ("redis://h/0?passwd=s3cret", "redis://h/0?passwd=***"),
        ("redis://h/0?pwd=s3cret", "redis://h/0?pwd=***"),
        ("redis://h/0?secret=s3cret", "redis://h/0?secret=***"),
        ("redis://h/0?token=s3cret", "redis://h/0?token=***"),
        ("redis://h/0?Auth=s3cret", "redis://h/0?Auth=***"),
        ("postgresql://h/db?sslpassword=s3cret", "postgresql://h/db?sslpassword=***"),
        ("redis://h/0?api_token=s3cret", "redis://h/0?api_token=***"),
        ("redis://h/0?client_secret=s3cret", "redis://h/0?client_secret=***"),
        ("redis://h/0?pass%77ord=s3cret", "redis://h/0?pass%77ord=***"),
        # other options are kept as written, in order
        (
            "postgresql://u:pw@h/db?schema=jobs&password=s3cret&pool_max=5",
            "postgresql://u:***@h/db?schema=jobs&password=***&pool_max=5",
        ),
        ("redis://h/0?authsource=admin&socket_timeout=5", "redis://h/0?authsource=admin&socket_timeout=5"),
        ("redis://h/0?password=", "redis://h/0?password=***"),
        # a '#' in a secret value ends nothing: the value is hidden to the end
        ("redis://h/0?password=ab#cd", "redis://h/0?password=***"),
        ("redis://h/0?db=1#frag", "redis://h/0?db=1#frag"),
        # URLs without secrets are unchanged
        ("sqlite:///jobs.db", "sqlite:///jobs.db"),
        ("sqlite:///jobs.db?busy_timeout=5000", "sqlite:///jobs.db?busy_timeout=5000"),
        ("redis://host", "redis://host"),
        ("memory://", "memory://"),
        ("", ""),
        # unparseable: an unencoded '/', '#', '?' or '@' in the password, a bad port
        ("redis://u:pa/ss@127.0.0.1:1/0", "redis://***@127.0.0.1:1/0"),
        ("redis://u:pa#ss@127.0.0.1:1/0", "redis://***@127.0.0.1:1/0"),
        ("redis://u:pa?ss@127.0.0.1:1/0?password=x", "redis://***@127.0.0.1:1/0?password=***"),
        ("postgresql://u:pa/ss#x@db:5432/app", "postgresql://***@db:5432/app"),
        ("redis://u:p@w/x@host/0", "redis://***@host/0"),
        ("redis://u:pw@host:notaport/0", "redis://u:***@host:notaport/0"),
        ("redis://u:pw@[::1/0", "redis://u:***@[::1/0"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redacting_twice_changes_nothing() -> None:
    for url in ("redis://u:pw@h/0?token=x", "redis://u:pa/ss@h/0", "postgresql://h/db?password=a@b"):
        once = redact_url(url)
        assert redact_url(once) == once


# Secrets are made of marker words joined by the characters that break URL parsing, so "no marker in
# the output" means no piece of the secret was shown.
_MARKERS = st.lists(st.sampled_from(["QQa", "QQb", "QQc", "QQ1"]), min_size=1, max_size=4)
_USERINFO_SEPARATORS = st.sampled_from([*"/?#@:&=% ;+", "", "%2F", "%40"])
_QUERY_SEPARATORS = st.sampled_from([*"/?#@:=% ;+", "", "%26"])  # a raw '&' starts a new option
_SECRET_KEYS = st.sampled_from(
    ["password", "Password", "passwd", "pwd", "secret", "token", "auth", "sslpassword", "api_token",
     "MY_SECRET_KEY", "x-token"]
)
_TAILS = st.sampled_from(["", "/0", "/0?db=1", "/app?schema=jobs", "/0#frag", ":6379/2?socket_timeout=3"])


def _secret(markers: list[str], separators: list[str]) -> str:
    text = markers[0]
    for index, marker in enumerate(markers[1:]):
        text += (separators[index % len(separators)] if separators else "") + marker
    return text


@given(
    scheme=st.sampled_from(["redis", "rediss", "postgresql", "postgres", "unix", "http"]),
    user=st.sampled_from(["", "user", "me@corp", "ad%3Amin"]),
    markers=_MARKERS,
    separators=st.lists(_USERINFO_SEPARATORS, max_size=3),
    tail=_TAILS,
    encode=st.booleans(),
)
def test_a_userinfo_password_is_never_shown(
    scheme: str, user: str, markers: list[str], separators: list[str], tail: str, encode: bool
) -> None:
    password = _secret(markers, separators)
    written = quote(password, safe="") if encode else password
    url = f"{scheme}://{user}:{written}@db.example{tail}"
    shown = redact_url(url)
    assert "QQ" not in shown, (url, shown)
    assert shown.startswith(f"{scheme}://") and shown.endswith(f"@db.example{tail}")
    last_piece = re.split(r"[/?#@:&=;+ ]", password)[-1]  # what a driver reading a broken URL may quote
    message = f"could not connect to {url} ({password}, {written}, {last_piece})"
    assert "QQ" not in redact_secrets(message, url)


@given(
    key=_SECRET_KEYS,
    markers=_MARKERS,
    separators=st.lists(_QUERY_SEPARATORS, max_size=3),
    before=st.sampled_from(["", "db=1&", "schema=jobs&"]),
    after=st.sampled_from(["", "&pool_max=2", "&socket_timeout=1"]),
    userinfo=st.sampled_from(["", "u@", "u:pw@"]),
)
def test_a_secret_query_value_is_never_shown(
    key: str, markers: list[str], separators: list[str], before: str, after: str, userinfo: str
) -> None:
    value = _secret(markers, separators)
    url = f"redis://{userinfo}host:6379/0?{before}{key}={value}{after}"
    shown = redact_url(url)
    assert "QQ" not in shown, (url, shown)
    assert shown.startswith("redis://")
    last_piece = re.split(r"[/?#@:=;+ ]", value)[-1]
    assert "QQ" not in redact_secrets(f"bad {key}={value}: {url} ({last_piece})", url)


@given(text=st.text(max_size=40))
def test_any_text_is_redacted_without_error(text: str) -> None:
    for url in (text, f"redis://{text}", f"redis://u:{text}@h/0", f"redis://h/0?password={text}"):
        shown = redact_url(url)
        assert isinstance(shown, str)
        assert redact_url(shown) == shown


def test_redact_secrets_leaves_other_text_alone() -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/test?sslpassword=open-sesame&schema=jobs"
    message = "connect to 127.0.0.1:1 failed (hunter2; open-sesame; open%2Dsesame) for schema jobs"
    expected = "connect to 127.0.0.1:1 failed (***; ***; open%2Dsesame) for schema jobs"
    assert redact_secrets(message, url) == expected
    assert redact_secrets("nothing secret", "sqlite:///jobs.db") == "nothing secret"


# -- where URLs are shown -----------------------------------------------------------------------------


def test_queue_repr_hides_query_secrets() -> None:
    queue = Queue("dummy://user:hunter2@host/db?token=s3cret-tok&db=1")
    shown = repr(queue)
    assert "hunter2" not in shown and "s3cret-tok" not in shown
    assert "dummy://user:***@host/db?token=***&db=1" in shown


def test_registry_errors_hide_query_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPPY_LOAD_PLUGINS", "sheppy-dummy")
    for url in ("nosuch://h/db?password=s3cret-reg", "nosuch://u:pa/s3cret-reg@h/db", "x?token=s3cret-reg"):
        with pytest.raises(SheppyError) as info:
            Queue(url)
        assert "s3cret-reg" not in str(info.value), str(info.value)


def test_a_plugin_quoting_its_url_in_an_error_shows_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from sheppy_dummy import DummyBackend  # type: ignore[import-untyped]

    def sloppy(cls: type[DummyBackend], url: str) -> DummyBackend:
        raise ValueError(f"cannot use {url!r}")

    monkeypatch.setenv("SHEPPY_LOAD_PLUGINS", "sheppy-dummy")
    monkeypatch.setattr(DummyBackend, "from_url", classmethod(sloppy))
    with pytest.raises(ConfigurationError) as info:
        Queue("dummy://u:s3cret-a@host/db?token=s3cret-b")
    assert "s3cret" not in str(info.value) and "cannot use" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no traceback shows it either


def test_the_jsonfile_example_shows_no_secret() -> None:
    pytest.importorskip("sheppy_jsonfile")
    from sheppy_jsonfile import JsonFileBackend

    with pytest.raises(ConfigurationError) as info:
        JsonFileBackend.from_url("jsonfile://host/?token=s3cret-json")
    assert "s3cret" not in str(info.value) and "names no file" in str(info.value)


def test_settings_never_show_the_url_secrets(tmp_path: Path) -> None:
    url = "redis://u:s3cret-a@h/0?password=s3cret-b"
    settings = load_settings(backend_url=url, environ={}, pyproject={})
    assert settings.backend_url == url  # the URL itself is untouched: only its display is redacted
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={}, pyproject={"backend": {"url": "redis://h/0?password=s3cret-c"}})
    assert "s3cret" not in str(info.value) and "backend" in str(info.value)


def test_queue_clear_prompt_hides_the_secrets() -> None:
    argv = ["queue", "clear", "jobs", "-u", "memory://?token=s3cret-prompt"]
    result = runner.invoke(app, argv, input="n\n")
    assert result.exit_code == 1
    assert "Delete every task" in result.output
    assert "s3cret-prompt" not in result.output


def test_a_cli_error_never_shows_a_secret(tmp_path: Path) -> None:
    for url in ("nosuch://h/?api_token=s3cret-cli", "nosuch://u:s3cret/cli@h/db", "memory://?password=s3cret-cli"):
        result = runner.invoke(app, ["task", "list", "-u", url])
        assert result.exit_code == 1, result.output
        assert "s3cret" not in result.output, result.output


# -- sheppy bench: worker processes get the URL through the environment -------------------------------


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _environ(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_bench_workers_get_the_url_from_the_environment(tmp_path: Path) -> None:
    pytest.importorskip("sheppy_sqlite")
    from sheppy_core._bench_tasks import stamp
    from sheppy_core.cli._bench import _Fleet

    url = f"sqlite:///{tmp_path}/bench-{uuid.uuid4().hex[:6]}.db"
    fleet = _Fleet(url, f"bench-{uuid.uuid4().hex[:6]}")
    queue = Queue(url, fleet.queue)
    try:
        spawned = await fleet.start(concurrency=2)
        argv = _cmdline(spawned.process.pid)
        assert argv[1:4] == ["-m", "sheppy_core", "work"]
        assert url not in " ".join(argv) and "-u" not in argv and "--backend-url" not in argv, argv
        assert _environ(spawned.process.pid).get("SHEPPY_BACKEND_URL") == url
        # ... and the worker really uses it: a task added on that URL gets done.
        added = stamp()
        assert await queue.add(added)
        deadline = time.monotonic() + 60
        while True:
            got = await queue.get_task(added)
            if got is not None and got.status == "completed":
                break
            assert spawned.process.returncode is None, fleet.output(spawned)
            assert time.monotonic() < deadline, f"task not done; worker said: {fleet.output(spawned)}"
            await asyncio.sleep(0.05)
    finally:
        await fleet.stop_all()
        await queue.backend.disconnect()
    assert os.environ.get("SHEPPY_BACKEND_URL") != url  # the parent's own environment is not touched
