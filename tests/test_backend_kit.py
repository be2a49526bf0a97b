"""The backend kit of ``sheppy_core.backend``, as a backend author calls it: argument checks, the
named-query loader and migration ordering, the common URL options, the missing-capability error."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sheppy_core.backend import (
    CRON,
    DEFAULT_TTL_SECONDS,
    Backend,
    BackendConnectionError,
    BackendInputError,
    CommonOptions,
    ConfigurationError,
    MemoryBackend,
    NotSupportedError,
    ServerURL,
    TaskStateError,
    check_aware,
    check_count,
    check_rate_limit,
    check_schema_not_newer,
    load_migrations,
    load_named_queries,
    migrations_to_apply,
    missing_capability,
    missing_capability_reason,
    parse_common_options,
    parse_named_queries,
    parse_server_url,
    poll_for_claim,
    record_to_json,
    record_to_json_bytes,
    translate_errors,
    wait_for_finished,
)
from sheppy_core.exceptions import BackendError

URL = "demo://host/?password=s3cret"


# -- argument checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 7, 10_000])
def test_check_count_returns_a_positive_integer(value: int) -> None:
    assert check_count(value, "limit", "pop") == value


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "1", None])
def test_check_count_refuses_what_is_not_an_integer_of_at_least_one(value: object) -> None:
    with pytest.raises(BackendInputError, match=r"pop\(\) limit must be an integer >= 1"):
        check_count(value, "limit", "pop")


def test_check_aware_accepts_any_offset() -> None:
    moment = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert check_aware(moment, "at", "schedule") is moment


@pytest.mark.parametrize("value", [datetime(2030, 1, 1), "2030-01-01T00:00:00Z", 0])
def test_check_aware_refuses_naive_or_other_values(value: object) -> None:
    with pytest.raises(BackendInputError, match=r"schedule\(\) needs an aware datetime for 'at'"):
        check_aware(value, "at", "schedule")


@pytest.mark.parametrize("strategy", ["sliding_window", "fixed_window"])
def test_check_rate_limit_accepts_both_strategies(strategy: str) -> None:
    check_rate_limit(3, 0.5, strategy)


@pytest.mark.parametrize(
    ("max_rate", "rate_period", "strategy", "named"),
    [
        (1, 1.0, "leaky_bucket", "strategy"),
        (0, 1.0, "sliding_window", "max_rate"),
        (True, 1.0, "sliding_window", "max_rate"),
        (2.5, 1.0, "sliding_window", "max_rate"),
        (1, 0, "sliding_window", "rate_period"),
        (1, float("inf"), "fixed_window", "rate_period"),
        (1, float("nan"), "fixed_window", "rate_period"),
        (1, True, "fixed_window", "rate_period"),
    ],
)
def test_check_rate_limit_refuses_what_cannot_be_enforced(
    max_rate: object, rate_period: object, strategy: object, named: str
) -> None:
    with pytest.raises(BackendInputError, match=named):
        check_rate_limit(max_rate, rate_period, strategy)


async def test_the_memory_backend_uses_the_same_checks() -> None:
    async with MemoryBackend(instant_processing=False) as backend:
        with pytest.raises(BackendInputError, match="integer >= 1"):
            await backend.pop("q", limit=True)
        with pytest.raises(BackendInputError, match="aware datetime"):
            await backend.pop_scheduled("q", now=datetime(2030, 1, 1))
        with pytest.raises(BackendInputError, match="rate_period"):
            await backend.acquire_rate_limit("q", "k", 1, float("nan"), "t1")


# -- the missing-capability error -------------------------------------------------------------------


def test_missing_capability_names_the_backend_and_the_capability() -> None:
    error = missing_capability(MemoryBackend(), CRON)
    assert isinstance(error, NotSupportedError)
    assert str(error) == "MemoryBackend does not declare capability 'cron'"
    assert str(missing_capability(MemoryBackend, CRON)) == str(error)
    assert missing_capability_reason(CRON) == "backend does not declare capability cron"


async def test_the_contract_defaults_raise_the_kit_error() -> None:
    # The defaults in ``Backend`` answer for a capability a backend does not override.
    backend = MemoryBackend()
    with pytest.raises(NotSupportedError, match=r"^MemoryBackend does not declare capability 'cron'$"):
        await Backend.get_crons(backend, "q")
    with pytest.raises(NotSupportedError, match=r"^MemoryBackend does not declare capability 'workflows'$"):
        await Backend.get_all_workflows(backend, "q")
    with pytest.raises(NotSupportedError, match=r"^MemoryBackend does not declare capability 'rate_limit'$"):
        await Backend.acquire_rate_limit(backend, "q", "k", 1, 1.0, "t1")


# -- named queries and migrations -------------------------------------------------------------------


def test_parse_named_queries_reads_names_descriptions_and_sql() -> None:
    text = (
        "-- a file comment, ignored\n"
        "-- name: first\n-- Does the first thing.\nSELECT 1;\n\n"
        "-- name: second_one\n--   Does the second\n--   thing.\n"
        "SELECT *\n-- a note inside\nFROM t\nWHERE x = $1\n"
        "-- name: bare\nDELETE FROM t;\n"
    )
    queries = parse_named_queries(text)
    assert list(queries) == ["first", "second_one", "bare"]
    assert (queries["first"].description, queries["first"].sql) == ("Does the first thing.", "SELECT 1")
    assert queries["second_one"].description == "Does the second thing."
    assert queries["second_one"].sql == "SELECT *\nFROM t\nWHERE x = $1"
    assert (queries["bare"].description, queries["bare"].sql) == ("", "DELETE FROM t")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- name: a\n-- Described.\n\n", "no SQL"),
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n", "defined twice"),
    ],
)
def test_parse_named_queries_rejects_malformed_blocks(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_named_queries(text)


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> str:
    """An importable package made of ``files`` (paths relative to it), under a fresh name."""
    name = f"kit_sql_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    for relative, text in {"__init__.py": "", **files}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return name


def test_load_named_queries_reads_the_package_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _package(tmp_path, monkeypatch, {"sql/queries.sql": "-- name: size\nSELECT count(*) FROM t;\n"})
    assert load_named_queries(package)["size"].sql == "SELECT count(*) FROM t"


def test_load_migrations_orders_by_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _package(tmp_path, monkeypatch, {
        "sql/migrations/0002_add_index.sql": "CREATE INDEX i ON t (x);",
        "sql/migrations/0001_initial.sql": "CREATE TABLE t (x);",
        "sql/migrations/README.txt": "not a migration",
    })
    found = load_migrations(package)
    assert [(m.version, m.name, m.file_name) for m in found] == [
        (1, "initial", "0001_initial.sql"), (2, "add_index", "0002_add_index.sql")
    ]
    assert found[0].sql == "CREATE TABLE t (x);"
    assert [m.version for m in migrations_to_apply(found, 0)] == [1, 2]
    assert [m.version for m in migrations_to_apply(found, 1)] == [2]
    assert migrations_to_apply(found, 2) == []


def test_a_gap_in_the_numbers_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _package(tmp_path, monkeypatch, {
        "sql/migrations/0001_initial.sql": "CREATE TABLE t (x);",
        "sql/migrations/0003_later.sql": "CREATE TABLE u (x);",
    })
    with pytest.raises(ValueError, match="without gaps"):
        load_migrations(package)


def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _package(tmp_path, monkeypatch, {"sql/migrations/0001_initial.sql": "CREATE TABLE t (x);"})
    shipped = load_migrations(package)
    check_schema_not_newer(1, shipped, "sheppy-demo")
    with pytest.raises(BackendError, match=r"schema version 2, newer .*\(1\); upgrade sheppy-demo"):
        check_schema_not_newer(2, shipped, "sheppy-demo")


# -- common URL options -----------------------------------------------------------------------------


def test_common_options_default_when_absent() -> None:
    options = parse_common_options({"other": "x"}, URL)
    assert (options.lease, options.ttl, options.error_ttl, options.ttl_given) == (
        None, DEFAULT_TTL_SECONDS, "inherit", False
    )


def test_common_options_parse_seconds_none_and_inherit() -> None:
    options = parse_common_options({"lease": "2.5", "ttl": "None", "error_ttl": "60"}, URL)
    assert (options.lease, options.ttl, options.error_ttl, options.ttl_given) == (2.5, None, 60.0, True)
    assert parse_common_options({"ttl": "forever", "error_ttl": "inherit"}, URL).error_ttl == "inherit"
    assert parse_common_options({"error_ttl": "none"}, URL).error_ttl is None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"lease": "0"}, "lease"),
        ({"lease": "none"}, "lease"),
        ({"lease": "nan"}, "lease"),
        ({"ttl": "0"}, "ttl"),
        ({"ttl": "-5"}, "ttl"),
        ({"ttl": "inf"}, "ttl"),
        ({"ttl": "inherit"}, "ttl"),
        ({"error_ttl": "soon"}, "error_ttl"),
    ],
)
def test_common_options_refuse_bad_values(options: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=f"option '{named}' must be") as caught:
        parse_common_options(options, "demo://host/?password=***")
    assert "demo://host/?password=***" in str(caught.value)


# -- importing the kit ------------------------------------------------------------------------------


def test_the_kit_loads_no_engine_module() -> None:
    """``import sheppy_core.backend``, what a backend plugin does, loads only the kit, the errors and
    the hook marker: the package's public names are loaded on first use, not by its ``__init__``."""
    probe = (
        "import sys\n"
        "import sheppy_core.backend\n"
        "watched = ('sheppy_core', 'fastapi', 'croniter')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(watched))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(result.stdout.split())
    assert "sheppy_core.backend._sql" in loaded and "sheppy_core.backend._url_options" in loaded
    assert {"sheppy_core.backend._server_url", "sheppy_core.backend._waiting"} <= loaded
    assert "sheppy_core.backend._driver_errors" in loaded
    outside = {m for m in loaded if not m.startswith("sheppy_core.backend")}
    assert outside <= {"sheppy_core", "sheppy_core.exceptions", "sheppy_core.hookspecs"}, outside


# -- server URLs ------------------------------------------------------------------------------------

SECRET = "s3cret"
SERVER_URL = f"demo://alice:{SECRET}@db.example:7000/jobs?lease=5&pool=4&listen=yes"


def _parse(url: str, **options: Any) -> ServerURL:
    options.setdefault("schemes", ("demo", "demos"))
    options.setdefault("options", ("pool", "listen", "name", "password"))
    return parse_server_url(url, **options)


def test_parse_server_url_reads_every_part() -> None:
    parsed = _parse(SERVER_URL)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.user, parsed.password, parsed.database) == (
        "demo", "db.example", 7000, "alice", SECRET, "jobs"
    )
    assert parsed.options == {"lease": "5", "pool": "4", "listen": "yes"}
    assert parsed.redacted == "demo://alice:***@db.example:7000/jobs?lease=5&pool=4&listen=yes"
    assert SECRET not in repr(parsed)


def test_parse_server_url_unquotes_and_defaults() -> None:
    parsed = _parse("DEMOS://us%40er:p%2Fw%3Fd@%2FVar%2Frun/my%20db", default_port=5432)
    assert (parsed.scheme, parsed.host, parsed.port) == ("demos", "/Var/run", 5432)
    assert (parsed.user, parsed.password, parsed.database) == ("us@er", "p/w?d", "my db")
    bare = _parse("demo://", default_port=None)
    assert (bare.host, bare.port, bare.user, bare.password, bare.database, bare.options) == (
        None, None, None, None, None, {}
    )
    assert _parse("demo://[::1]:6000/").host == "::1"
    assert _parse("demo://h/").database is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"mysql://u:{SECRET}@h/db", r"has scheme 'mysql'; this backend serves 'demo://' or 'demos://'"),
        (f"u:{SECRET}@h/db", r"has no scheme; this backend serves 'demo://' or 'demos://'"),
        (f"demo://u:{SECRET}@[::1/db", r"^cannot parse URL .*: Invalid IPv6 URL"),
        (f"demo://u:{SECRET}\u2100x@h/db", r"^cannot parse URL .*NFKC"),
        (f"demo://u:{SECRET}@h:abc/db", r"has a bad port .*'abc'.*1 to 65535"),
        (f"demo://u:{SECRET}@h:70000/db", r"has a bad port .*1 to 65535"),
        (f"demo://u:{SECRET}@h:0/db", r"has a bad port .*1 to 65535"),
        (f"demo://u:{SECRET}/x@h/db", r"has an '@' after its host; percent-encode '/', '\?', '#' and '@'"),
        (f"demo://u:{SECRET}?x@h/db", r"has an '@' after its host"),
        (f"demo://u:{SECRET}#x@h/db", r"has an '@' after its host"),
        (f"demo://u:98/QQ{SECRET}@127.0.0.1:1/db", r"has an '@' after its host"),
        (f"demo://u:{SECRET}@h/db#part", r"must not have a '#fragment'"),
        (f"demo://u:{SECRET}@h/db?pool=1&pool=2", r"option 'pool' is given twice"),
        (f"demo://u:{SECRET}@h/db?leas=1", r"unknown option 'leas' in .*; did you mean 'lease'\?$"),
        (f"demo://u:{SECRET}@h/db?zzz=1", r"unknown option 'zzz' in .*; known options: error_ttl, lease, "),
        (f"demo://u:{SECRET}@h/db?lease=abc", r"option 'lease' must be seconds > 0, got 'abc'"),
    ],
)
def test_parse_server_url_errors_name_the_problem_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as caught:
        _parse(url)
    message = str(caught.value)
    assert SECRET not in message and "\n" not in message, message
    assert "***" in message, message  # the redacted URL is always shown


def test_parse_server_url_redacts_a_quoted_driver_message() -> None:
    # urllib quotes the whole user info (password included) in its NFKC error.
    url = f"demo://u:{SECRET}\u2100x@h/db"
    with pytest.raises(ConfigurationError) as caught:
        _parse(url)
    assert "NFKC" in str(caught.value) and SECRET not in str(caught.value)


def test_server_url_typed_readers() -> None:
    parsed = _parse("demo://h/?pool=4&listen=No&name=%20x%20&password=hush")
    assert parsed.number("pool", 10, minimum=1, integer=True) == 4
    assert parsed.number("pool", 2.5) == 4.0 and isinstance(parsed.number("pool", 2.5), float)
    assert parsed.flag("listen", True) is False
    assert _parse("demo://h/").flag("listen", True) is True
    assert parsed.text("name", "default") == " x "
    assert _parse("demo://h/").text("name", None) is None
    assert _parse("demo://h/?pool=0.25").number("pool", 1.0, minimum=0) == 0.25
    assert _parse("demo://h/").number("pool", None) is None
    assert SECRET not in repr(parsed) and "hush" not in repr(parsed)


@pytest.mark.parametrize(
    ("query", "read", "problem"),
    [
        ("pool=abc", lambda u: u.number("pool", 1), r"option 'pool' must be a number, got 'abc' in "),
        ("pool=nan", lambda u: u.number("pool", 1), r"option 'pool' must be a number, got 'nan'"),
        ("pool=1.5", lambda u: u.number("pool", 1, integer=True), r"must be an integer, got '1.5'"),
        ("pool=0", lambda u: u.number("pool", 1, minimum=1, integer=True), r"an integer >= 1, got '0'"),
        ("pool=0", lambda u: u.number("pool", 1.0, above=0), r"option 'pool' must be a number > 0, got '0'"),
        ("listen=maybe", lambda u: u.flag("listen", True), r"option 'listen' must be true or false"),
        ("password=x", lambda u: u.number("password", 1), r"option 'password' must be a number, got '\*{3}'"),
    ],
)
def test_server_url_typed_readers_refuse_bad_values(
    query: str, read: Callable[[ServerURL], object], problem: str
) -> None:
    parsed = _parse(f"demo://u:{SECRET}@h/?{query}")
    with pytest.raises(ConfigurationError, match=problem) as caught:
        read(parsed)
    assert SECRET not in str(caught.value) and "demo://u:***@h/" in str(caught.value)


def test_server_url_reading_an_undeclared_option_is_a_bug_of_the_backend() -> None:
    with pytest.raises(KeyError, match="nope"):
        _parse("demo://h/").text("nope", "")


def test_server_url_common_options_come_from_the_same_parse() -> None:
    parsed = _parse("demo://h/?lease=2.5&ttl=none&error_ttl=60")
    assert parsed.common() == parse_common_options(parsed.options, parsed.redacted)
    assert (parsed.common().lease, parsed.common().ttl, parsed.common().error_ttl) == (2.5, None, 60.0)
    assert _parse("demo://h/").common() == CommonOptions()


# -- waiting for results and claims -----------------------------------------------------------------


class _Store:
    """Records finished by a test; ``reads`` counts the calls of ``read_finished``."""

    def __init__(self) -> None:
        self.finished: dict[str, dict[str, Any]] = {}
        self.reads = 0

    async def read_finished(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        self.reads += 1
        return {t: self.finished[t] for t in task_ids if t in self.finished}


async def test_wait_for_finished_without_waiting() -> None:
    store = _Store()
    store.finished["a"] = {"id": "a"}
    for timeout in (None, -1, -0.5):
        assert await wait_for_finished(store.read_finished, ["a", "b", "a"], timeout) == {"a": {"id": "a"}}
    assert store.reads == 3
    assert await wait_for_finished(store.read_finished, [], 0) == {}
    assert store.reads == 3  # an empty list returns at once


async def test_wait_for_finished_waits_until_all_are_finished() -> None:
    store = _Store()

    async def finish_later() -> None:
        await asyncio.sleep(0.05)
        store.finished["a"] = {"id": "a"}
        await asyncio.sleep(0.05)
        store.finished["b"] = {"id": "b"}

    finisher = asyncio.create_task(finish_later())
    for timeout in (0, 5):
        started = time.monotonic()
        got = await wait_for_finished(store.read_finished, ["a", "b"], timeout, poll=0.01)
        assert got == {"a": {"id": "a"}, "b": {"id": "b"}}
        assert time.monotonic() - started < 2
    await finisher


async def test_wait_for_finished_times_out_with_the_contract_message() -> None:
    store = _Store()
    store.finished["a"] = {"id": "a"}
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^2 of 3 task\(s\) did not finish within 0.2 s$"):
        await wait_for_finished(store.read_finished, ["a", "b", "c"], 0.2, poll=5)
    assert 0.2 <= time.monotonic() - started < 1.0  # the last sleep ends at the deadline, not after a poll
    assert store.reads == 2  # at once, and at the deadline


@pytest.mark.parametrize("kind", ["event", "callable"])
async def test_wait_for_finished_is_woken_early(kind: str) -> None:
    store = _Store()
    event = asyncio.Event()

    async def wait(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()

    async def finish_soon() -> None:
        await asyncio.sleep(0.1)
        store.finished["a"] = {"id": "a"}
        event.set()

    finisher = asyncio.create_task(finish_soon())
    started = time.monotonic()
    wake = event if kind == "event" else wait
    assert await wait_for_finished(store.read_finished, ["a"], 30, wake=wake, poll=20) == {"a": {"id": "a"}}
    assert time.monotonic() - started < 5  # not the 20 s poll
    await finisher


class _Queue:
    """A claimable list: ``claim`` takes everything in it."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.claims = 0

    async def claim(self) -> list[str]:
        self.claims += 1
        taken, self.items = self.items, []
        return taken


async def test_poll_for_claim_returns_a_concurrent_append_within_the_poll_bound() -> None:
    queue = _Queue()
    waiter = asyncio.create_task(poll_for_claim(queue.claim, 10))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    queue.items.append("t1")
    appended = time.monotonic()
    assert await waiter == ["t1"]
    assert time.monotonic() - appended < 0.5  # polling every 20 ms (a loaded machine: generous bound)


async def test_poll_for_claim_gives_up_after_the_timeout() -> None:
    queue = _Queue()
    started = time.monotonic()
    assert await poll_for_claim(queue.claim, 0.2, poll=5) == []
    assert 0.2 <= time.monotonic() - started < 1.0  # the last sleep ends at the deadline, not after a poll
    assert queue.claims == 2  # at once, and at the deadline
    for timeout in (None, 0, -1):
        before = queue.claims
        assert await poll_for_claim(queue.claim, timeout) == []
        assert queue.claims == before + 1  # one claim, no waiting


async def test_poll_for_claim_cancelled_mid_wait_claims_nothing() -> None:
    queue = _Queue()
    waiter = asyncio.create_task(poll_for_claim(queue.claim, 10))
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    queue.items.append("t1")
    claims = queue.claims
    await asyncio.sleep(0.1)
    assert queue.claims == claims and queue.items == ["t1"]


async def test_poll_for_claim_is_woken_early() -> None:
    queue = _Queue()
    event = asyncio.Event()
    waiter = asyncio.create_task(poll_for_claim(queue.claim, 30, wake=event, poll=20))
    await asyncio.sleep(0.1)
    queue.items.append("t1")
    event.set()
    assert await asyncio.wait_for(waiter, 5) == ["t1"]


# -- driver errors ----------------------------------------------------------------------------------


class _DriverConnectionError(Exception):
    pass


class _DriverDataError(Exception):
    pass


class _DriverTimeout(Exception):
    pass


DRIVER_URL = f"demo://alice:{SECRET}@db:7000/jobs"
SHOWN = re.escape("demo://alice:***@db:7000/jobs")


def _translated(exc: Exception) -> BaseException:
    translating = translate_errors(
        "pop", DRIVER_URL, connection=(_DriverConnectionError, OSError), invalid_input=(_DriverDataError,),
        timeouts=(_DriverTimeout,),
    )
    with pytest.raises(BaseException) as caught, translating:  # what came out is inspected by the caller
        raise exc
    return caught.value


@pytest.mark.parametrize(
    ("driver_error", "expected", "message"),
    [
        (_DriverConnectionError(f"auth failed for alice:{SECRET}"), BackendConnectionError,
         "pop on demo://alice:***@db:7000/jobs: auth failed for alice:***"),
        (ConnectionRefusedError(111, "Connection refused"), BackendConnectionError,
         "pop on demo://alice:***@db:7000/jobs: [Errno 111] Connection refused"),
        (_DriverDataError(f"bad value\n{SECRET}"), BackendInputError,
         "pop on demo://alice:***@db:7000/jobs: bad value ***"),
        (_DriverTimeout(), BackendConnectionError, "pop on demo://alice:***@db:7000/jobs: timed out"),
        (_DriverConnectionError(), BackendConnectionError,
         "pop on demo://alice:***@db:7000/jobs: _DriverConnectionError"),
    ],
)
async def test_translate_errors_maps_chains_and_redacts(
    driver_error: Exception, expected: type[Exception], message: str
) -> None:
    error = _translated(driver_error)
    assert type(error) is expected
    assert str(error) == message
    assert error.__cause__ is driver_error


@pytest.mark.parametrize(
    "untouched",
    [TaskStateError("t"), BackendConnectionError("d"), KeyError("x"), ValueError("v"), TimeoutError("t")],
)
def test_translate_errors_lets_contract_and_other_errors_through(untouched: Exception) -> None:
    assert _translated(untouched) is untouched


def test_translate_errors_turns_the_builtin_timeout_only_when_listed() -> None:
    with (
        pytest.raises(BackendConnectionError, match=rf"^connect on {SHOWN}: timed out: t$"),
        translate_errors("connect", DRIVER_URL, connection=(OSError,), timeouts=(TimeoutError,)),
    ):
        raise TimeoutError("t")


async def test_translate_errors_works_around_awaits() -> None:
    async def failing() -> None:
        await asyncio.sleep(0)
        raise _DriverConnectionError("gone")

    with (
        pytest.raises(BackendConnectionError, match=r"^connect on demo://alice:\*{3}@db:7000/jobs: gone$"),
        translate_errors("connect", DRIVER_URL, connection=(_DriverConnectionError,)),
    ):
        await failing()


def test_translate_errors_can_drop_the_chain() -> None:
    with (
        pytest.raises(BackendConnectionError) as caught,
        translate_errors("pop", DRIVER_URL, connection=(_DriverConnectionError,), chain=False),
    ):
        raise _DriverConnectionError(SECRET)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- records as bytes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        {"id": "a", "args": [1, 2.5, None, True], "kwargs": {"x": "y"}},
        {"id": "ü", "text": "héllo \u2028 ☃ 😀", "nested": {"deep": [{"k": "v"}]}},
        {"id": "n", "value": float("nan"), "inf": float("inf")},
        {"id": "s", "lone": "\ud800"},
        {"id": "digits", "text": "\u0660" * 5000},
    ],
)
def test_record_to_json_bytes_is_the_text_encoded(record: dict[str, Any]) -> None:
    encoded = record_to_json_bytes(record)
    assert isinstance(encoded, bytes)
    assert encoded == record_to_json(record).encode()


def test_record_to_json_bytes_of_a_long_integer() -> None:
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        record = {"id": "big", "number": int("7" * (limit + 10))}
        assert record_to_json_bytes(record) == record_to_json(record).encode()  # no limit: written
    finally:
        sys.set_int_max_str_digits(limit)
    with pytest.raises(ValueError, match="limit"):
        record_to_json(record)
    with pytest.raises(ValueError, match="limit"):
        record_to_json_bytes(record)


def test_record_to_json_bytes_refuses_what_the_text_refuses() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        record_to_json_bytes({"id": "n", "value": float("nan")}, allow_nan=False)
    with pytest.raises(TypeError):
        record_to_json_bytes({"id": "o", "value": object()})
    assert record_to_json_bytes({"id": "i", "value": 1.5}, allow_nan=False) == b'{"id":"i","value":1.5}'
