"""sqlite:// URL parsing: the accepted forms, options, and the errors for bad ones (no I/O involved)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sheppy_sqlite import SQLiteBackend
from sheppy_sqlite._config import parse_url

from sheppy_core.exceptions import ConfigurationError


def test_relative_path() -> None:
    options = parse_url("sqlite:///queue.db")
    assert options.path == "queue.db"
    assert (options.busy_timeout, options.journal_mode, options.synchronous) == (5000, "wal", "normal")


def test_relative_path_with_folders() -> None:
    assert parse_url("sqlite:///data/queues/jobs.db").path == "data/queues/jobs.db"


def test_absolute_path() -> None:
    assert parse_url("sqlite:////var/lib/sheppy/queue.db").path == "/var/lib/sheppy/queue.db"


def test_percent_encoded_path() -> None:
    assert parse_url("sqlite:///my%20queue.db").path == "my queue.db"


def test_options() -> None:
    options = parse_url(
        "sqlite:///q.db?busy_timeout=250&journal_mode=WAL&synchronous=full&lease=15&ttl=60"
        "&error_ttl=inherit&poll_interval=0.005&purge_interval=30"
    )
    assert options.busy_timeout == 250
    assert options.journal_mode == "wal"
    assert options.synchronous == "full"
    assert options.lease == 15.0
    assert options.ttl == 60.0
    assert options.error_ttl == "inherit"
    assert options.poll_interval == 0.005
    assert options.purge_interval == 30.0


def test_ttl_none_and_error_ttl_seconds() -> None:
    options = parse_url("sqlite:///q.db?ttl=none&error_ttl=3600")
    assert options.ttl is None
    assert options.error_ttl == 3600.0


def test_from_url_builds_an_unconnected_backend(tmp_path: Path) -> None:
    backend = SQLiteBackend.from_url(f"sqlite:///{tmp_path}/x.db?lease=7&ttl=10")
    assert not backend.is_connected
    assert backend.lease_duration == 7.0
    assert backend.ttl == 10.0
    assert backend.path == f"{tmp_path}/x.db"
    assert not (tmp_path / "x.db").exists(), "from_url must not touch the file system"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("sqlite:///q.db?colour=blue", "colour"),
        ("sqlite:///q.db?busy_timeout=soon", "busy_timeout"),
        ("sqlite:///q.db?busy_timeout=-1", "busy_timeout"),
        ("sqlite:///q.db?journal_mode=wall", "journal_mode"),
        ("sqlite:///q.db?synchronous=maybe", "synchronous"),
        ("sqlite:///q.db?lease=0", "lease"),
        ("sqlite:///q.db?lease=abc", "lease"),
        ("sqlite:///q.db?ttl=-5", "ttl"),
        ("sqlite:///q.db?error_ttl=x", "error_ttl"),
        ("sqlite:///q.db?poll_interval=0", "poll_interval"),
        ("sqlite:///q.db?lease=nan", "lease"),
        ("sqlite:///q.db?lease=1&lease=2", "lease"),
    ],
)
def test_bad_option_names_the_option(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        SQLiteBackend.from_url(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite://", "no database path"),
        ("sqlite:///", "no database path"),
        ("sqlite://host/q.db", "names a host"),
        ("sqlite://user:secret@host/q.db", "names a host"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///folder/", "directory"),
        ("redis://localhost/0", "not a sqlite"),
        ("sqlite:///q.db#frag", "fragment"),
    ],
)
def test_bad_url_names_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as caught:
        SQLiteBackend.from_url(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"busy_timeout": -1}, {"lease": 0}, {"ttl": -1}, {"journal_mode": "off"}, {"poll_interval": 0}],
)
def test_constructor_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteBackend("q.db", **kwargs)  # type: ignore[arg-type]


def test_plugin_registers_the_scheme() -> None:
    from importlib.metadata import entry_points

    points = [ep for ep in entry_points(group="sheppy") if ep.name == "sqlite"]
    assert len(points) == 1
    assert points[0].value == "sheppy_sqlite._plugin"
    registered: list[type] = []
    points[0].load().register_backends(registered.append)
    assert registered == [SQLiteBackend]
    assert SQLiteBackend.url_schemes == ("sqlite",)
