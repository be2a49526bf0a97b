"""Reading postgresql:// URLs (no server needed)."""

from __future__ import annotations

import pytest
from sheppy_postgres import PostgresBackend, parse_url
from sheppy_postgres._config import quote_ident

from sheppy_core.exceptions import ConfigurationError


def test_defaults() -> None:
    config = parse_url("postgresql://u@h:5432/db")
    assert config.schema == "sheppy"
    assert (config.pool_min, config.pool_max) == (1, 10)
    assert config.listen is True
    assert config.poll_interval == 1.0
    assert config.dsn == "postgresql://u@h:5432/db"


def test_own_options_are_stripped_and_driver_options_kept() -> None:
    config = parse_url(
        "postgres://u:pw@h/db?schema=jobs&pool_min=2&pool_max=4&sslmode=require&application_name=w1"
        "&lease=5&ttl=60&listen=false"
    )
    assert config.schema == "jobs"
    assert (config.pool_min, config.pool_max, config.lease, config.ttl) == (2, 4, 5.0, 60.0)
    assert config.listen is False
    assert config.poll_interval == 0.05  # polling mode polls fast
    assert config.dsn == "postgresql://u:pw@h/db?sslmode=require&application_name=w1"


def test_ttl_none_keeps_records_for_ever() -> None:
    assert parse_url("postgresql://h/db?ttl=none").ttl is None


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("bogus=1", "'bogus'"),
        ("pool_max=ten", "'pool_max'"),
        ("pool_min=5&pool_max=2", "'pool_min'"),
        ("listen=maybe", "'listen'"),
        ("sslmode=sometimes", "'sslmode'"),
        ("lease=0", "'lease'"),
        ("lease=-1", "'lease'"),
        ("ttl=abc", "'ttl'"),
        ("schema=", "'schema'"),
        ("schema=a$b", "'schema'"),
        ("schema=" + "x" * 64, "'schema'"),
        ("schema=a&schema=b", "'schema'"),
    ],
)
def test_bad_options_name_the_option(query: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named) as info:
        PostgresBackend.from_url(f"postgresql://user:s3cret@h/db?{query}")
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)


def test_wrong_scheme_and_bad_port() -> None:
    with pytest.raises(ConfigurationError, match="scheme"):
        parse_url("mysql://h/db")
    with pytest.raises(ConfigurationError) as info:
        parse_url("postgresql://u:topsecret@h:notaport/db")
    assert "topsecret" not in str(info.value)


def test_repr_hides_the_password() -> None:
    backend = PostgresBackend.from_url("postgresql://u:topsecret@h/db?schema=s1")
    assert "topsecret" not in repr(backend)
    assert "s1" in repr(backend)


def test_quote_ident_doubles_quotes() -> None:
    assert quote_ident("plain") == '"plain"'
    assert quote_ident('a"; DROP SCHEMA x; --') == '"a""; DROP SCHEMA x; --"'


def test_backend_is_registered_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from sheppy_core._plugins import backend_from_url, reset_plugins

    monkeypatch.setenv("SHEPPY_LOAD_PLUGINS", "sheppy-postgres")
    reset_plugins()
    try:
        for scheme in ("postgres", "postgresql"):
            backend = backend_from_url(f"{scheme}://h/db?schema=viaentry")
            assert isinstance(backend, PostgresBackend)
            assert backend.schema == "viaentry"
    finally:
        reset_plugins()
