"""The backend kit of ``sheppy_core.backend``, as a backend author calls it: argument checks, the
named-query loader and migration ordering, the common URL options, the missing-capability error."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sheppy_core.backend import (
    CRON,
    DEFAULT_TTL_SECONDS,
    Backend,
    BackendInputError,
    ConfigurationError,
    MemoryBackend,
    NotSupportedError,
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
    outside = {m for m in loaded if not m.startswith("sheppy_core.backend")}
    assert outside <= {"sheppy_core", "sheppy_core.exceptions", "sheppy_core.hookspecs"}, outside
