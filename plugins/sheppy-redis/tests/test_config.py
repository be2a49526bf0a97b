"""URL parsing and construction: no I/O, ConfigurationError naming the problem, passwords redacted."""

from __future__ import annotations

import pytest
from sheppy_redis import RedisBackend
from sheppy_redis._config import parse_url
from sheppy_redis._keys import QueueKeys, queue_tag

from sheppy_core import get_backend
from sheppy_core.exceptions import BackendConnectionError, BackendInputError, ConfigurationError


def test_registered_for_its_schemes() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://example.test:6380", "unix:///run/redis.sock"):
        assert isinstance(get_backend(url), RedisBackend)
    assert RedisBackend.url_schemes == ("redis", "rediss", "unix")


def test_our_options_are_stripped_and_theirs_kept() -> None:
    url = "redis://u:secret@127.0.0.1:6380/3?lease=2.5&ttl=60&error_ttl=none&prefix=app&max_connections=7"
    settings = parse_url(url)
    assert "lease" not in settings.redis_url and "prefix" not in settings.redis_url
    assert settings.redis_options["max_connections"] == 7
    assert settings.redis_options["db"] == 3
    assert settings.redis_options["password"] == "secret"
    backend = RedisBackend.from_url(url)
    assert backend.lease_duration == 2.5
    assert backend.ttl == 60
    assert backend.error_ttl is None
    assert backend.prefix == "app"
    assert "secret" not in repr(backend)


def test_ttl_none_keeps_for_ever_and_defaults_to_30_days() -> None:
    assert RedisBackend.from_url("redis://h?ttl=none").ttl is None
    assert RedisBackend.from_url("redis://h").ttl == 30 * 24 * 3600
    assert RedisBackend.from_url("redis://h").error_ttl == "inherit"


def test_seed_compatible_constructor() -> None:
    backend = RedisBackend("redis://127.0.0.1:6379", "workers", 3600, socket_timeout=5.0, lease=4)
    assert backend.consumer_group == "workers"
    assert backend.ttl == 3600
    assert backend.lease_duration == 4
    assert backend.redis_kwargs == {"socket_timeout": 5.0}
    assert RedisBackend().url == "redis://127.0.0.1:6379"


def test_cluster_option() -> None:
    assert RedisBackend.from_url("redis://127.0.0.1:7000?cluster=true").cluster is True
    assert RedisBackend.from_url("redis://127.0.0.1:7000?cluster=no").cluster is False


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:6379", "unsupported scheme"),
        ("redis://127.0.0.1:6379?lease=abc", "lease"),
        ("redis://127.0.0.1:6379?lease=0", "lease"),
        ("redis://127.0.0.1:6379?ttl=-3", "ttl"),
        ("redis://127.0.0.1:6379?ttl=soon", "ttl"),
        ("redis://127.0.0.1:6379?prefix=a{b}", "prefix"),
        ("redis://127.0.0.1:6379?cluster=maybe", "cluster"),
        ("redis://127.0.0.1:6379?db=zero", "db"),
        ("redis://127.0.0.1:6379?frobnicate=1", "frobnicate"),
        ("redis://:6379", "no host"),
        ("unix://", "socket path"),
        ("unix:///tmp/r.sock?cluster=true", "cluster"),
        ("redis://127.0.0.1:7000/2?cluster=true", "database 0"),
        # redis-py reads these as database 0: a typo must not move the tasks elsewhere silently.
        ("redis://127.0.0.1:6379/abc", "the path names the database, a number"),
        ("redis://127.0.0.1:6379/-1", "got '/-1'"),
        ("redis://127.0.0.1:6379/0/x", "got '/0/x'"),
    ],
)
def test_bad_urls_raise_configuration_error(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        RedisBackend.from_url(url)


def test_password_never_in_error_messages() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisBackend.from_url("redis://user:hunter2@127.0.0.1:6379?frobnicate=1")
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


async def test_unreachable_server_is_a_connection_error_without_password() -> None:
    from sheppy_redis_testing import free_port

    backend = RedisBackend(f"redis://user:hunter2@127.0.0.1:{free_port()}/0")
    with pytest.raises(BackendConnectionError) as caught:
        await backend.connect()
    assert "hunter2" not in str(caught.value)
    assert not backend.is_connected


async def test_calls_before_connect_raise_connection_error() -> None:
    backend = RedisBackend()
    with pytest.raises(BackendConnectionError):
        await backend.size("q")
    with pytest.raises(BackendConnectionError):
        await backend.append("q", [{"id": "a"}])


@pytest.mark.parametrize(
    "name", ["q", "a:b", "{x}", "}{", "*", "with space", "ünïcødé", "日本語", "%_'\"", "a" * 300, "nul\x00"]
)
def test_queue_tag_is_brace_free_and_reversible(name: str) -> None:
    import base64

    tag = queue_tag(name)
    assert "{" not in tag and "}" not in tag
    padded = tag + "=" * (-len(tag) % 4)
    assert base64.urlsafe_b64decode(padded).decode("utf-8") == name


def test_queue_tag_refuses_a_name_without_a_utf8_form() -> None:
    # The registry of queue names (a hash field) could not hold it: refused before any key is built.
    with pytest.raises(BackendInputError, match="cannot be encoded as UTF-8"):
        queue_tag("\ud800")


def test_keys_of_different_queues_never_collide_and_share_one_slot() -> None:
    from redis.crc import key_slot

    names = ["q", "q:", "q}", "{q}", "q{", "Q", "q ", "a:b", "a", "b:a", "ab", "日本", "*", "**"]
    bases = {QueueKeys.for_queue("sheppy", n).base for n in names}
    assert len(bases) == len(names)
    for base in bases:  # no base is a prefix of another: derived keys cannot collide either
        assert not any(other != base and other.startswith(base) for other in bases)
    for name in names:
        keys = QueueKeys.for_queue("sheppy", name)
        slots = {key_slot(k.encode()) for k in (keys.ids, keys.queued, keys.wake, keys.base + "t:{odd}id")}
        assert len(slots) == 1


@pytest.mark.parametrize(("url", "db"), [("redis://h:6379", None), ("redis://h:6379/", None),
                                          ("redis://h:6379/0", 0), ("redis://h:6379/15", 15)])
def test_a_database_number_in_the_path_is_taken(url: str, db: int | None) -> None:
    assert parse_url(url).redis_options.get("db") == db
