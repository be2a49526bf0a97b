"""Reading a ``redis://`` URL: our own options are taken out, the rest is redis-py's business.

Options of sheppy-redis (query string, removed before the URL reaches redis-py):

``lease``      default claim lease in seconds (float > 0)
``ttl``        retention of finished records in seconds, or ``none`` to keep them for ever
``error_ttl``  retention of failed/cancelled/crashed records (seconds, ``none`` or ``inherit``)
``prefix``     key prefix (default ``sheppy``); must not contain ``{`` or ``}`` (hash tags are ours)
``cluster``    ``true`` to talk to a Redis Cluster through ``redis.asyncio.cluster.RedisCluster``

Everything else (``db``, the path's database number, user and password, ``rediss://`` TLS options such
as ``ssl_cert_reqs``, ``max_connections``, ``socket_timeout``, ...) is parsed by redis-py's own
``parse_url``; names redis-py's connection classes do not accept are refused here, at once, rather than
at the first command.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import connection as redis_connection

from sheppy_core.backend import COMMON_URL_OPTIONS, parse_common_options, redact_secrets, redact_url
from sheppy_core.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_PREFIX", "RedisOptions", "RedisSettings", "check_prefix", "parse_redis_url", "parse_url",
    "without_option",
]

DEFAULT_PREFIX = "sheppy"
_ENCODE = (
    "; percent-encode '/', '?', '#' and '@' in a user name, password or option value (%2F, %3F, %23, %40)"
)
OUR_OPTIONS = frozenset({"prefix", "cluster"}) | COMMON_URL_OPTIONS
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class RedisOptions:
    """What a URL says: the URL for redis-py (our options removed) and our options, parsed."""

    redis_url: str
    redis_options: dict[str, Any] = field(default_factory=dict)
    cluster: bool = False
    lease: float | None = None
    ttl: float | None = None
    ttl_given: bool = False  # ttl=... was in the URL (None is a value: keep for ever)
    error_ttl: float | str | None = "inherit"
    prefix: str = DEFAULT_PREFIX


RedisSettings = RedisOptions
"""The name of :class:`RedisOptions` before the plugin skeleton (kept for code importing it)."""


def _accepted_redis_options() -> frozenset[str]:
    """Every keyword redis-py's connection classes and pool accept (what a URL option may name)."""
    names: set[str] = set(redis_connection.URL_QUERY_ARGUMENT_PARSERS)
    for target in (
        redis_connection.AbstractConnection.__init__,
        redis_connection.Connection.__init__,
        redis_connection.SSLConnection.__init__,
        redis_connection.UnixDomainSocketConnection.__init__,
        redis_connection.ConnectionPool.__init__,
    ):
        names.update(
            name
            for name, parameter in inspect.signature(target).parameters.items()
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        )
    names.discard("self")
    return frozenset(names)


def check_prefix(prefix: str) -> str:
    """Refuse prefixes that would break the key layout: empty, or containing hash-tag braces."""
    if not prefix or "{" in prefix or "}" in prefix:
        raise ConfigurationError(f"key prefix {prefix!r} must be non-empty and contain neither '{{' nor '}}'")
    return prefix


def without_option(url: str, name: str) -> str:
    """``url`` with every ``name=...`` pair taken out of its query string (the rest kept as it is)."""
    parts = urlsplit(url)
    kept = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != name]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def parse_url(url: str) -> RedisOptions:
    """Split ``url`` into redis-py's URL and our options; ``ConfigurationError`` names what is wrong.

    Does no I/O: redis-py only parses here.
    """
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        detail = redact_secrets(str(exc), url)
        raise ConfigurationError(f"cannot parse Redis URL {safe}: {detail}{_ENCODE}") from None
    if "@" in parts.path + parts.query + parts.fragment:
        # Most likely an unencoded '/', '?' or '#' in the password cut the user info short: redis-py
        # would take part of the password for the host or port (and print it in its errors).
        raise ConfigurationError(f"Redis URL {safe} has an '@' after its host{_ENCODE}")
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"unsupported scheme in {safe}: use redis://, rediss:// or unix://")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        (ours.__setitem__(name, value) if name in OUR_OPTIONS else theirs.append((name, value)))
    redis_url = urlunsplit(parts._replace(query=urlencode(theirs)))
    try:
        parsed: dict[str, Any] = dict(redis_connection.parse_url(redis_url))
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {safe}: {redact_secrets(str(exc), url)}") from None
    unknown = sorted({name for name, _ in theirs} - _accepted_redis_options())
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {unknown} in {safe}; sheppy-redis options are {sorted(OUR_OPTIONS)}, "
            "the rest must be redis-py connection options (db, max_connections, socket_timeout, ...)"
        )
    if parts.scheme == "unix" and not parsed.get("path"):
        raise ConfigurationError(f"unix:// URL {safe} names no socket path")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigurationError(f"Redis URL {safe} names no host")
    if parts.scheme != "unix":
        # redis-py reads a path that is not a number as "no database" (db 0): a typo would put the
        # tasks in another database without a word.
        database = parts.path.strip("/")
        if database and not database.isdecimal():
            raise ConfigurationError(
                f"Redis URL {safe}: the path names the database, a number from 0 (redis://host:6379/0), "
                f"got {parts.path!r}"
            )
    common = parse_common_options(ours, safe)
    settings: dict[str, Any] = {
        "redis_url": redis_url, "redis_options": parsed, "lease": common.lease,
        "ttl": common.ttl if common.ttl_given else None, "ttl_given": common.ttl_given,
        "error_ttl": common.error_ttl,
    }
    if "prefix" in ours:
        settings["prefix"] = check_prefix(ours["prefix"])
    if "cluster" in ours:
        flag = ours["cluster"].strip().lower()
        if flag not in _TRUE | _FALSE:
            raise ConfigurationError(f"option cluster={ours['cluster']!r} in {safe}: expected true or false")
        settings["cluster"] = flag in _TRUE
        if settings["cluster"] and parts.scheme == "unix":
            raise ConfigurationError(f"cluster=true needs a redis:// or rediss:// URL, got {safe}")
        if settings["cluster"] and parsed.get("db", 0) != 0:
            raise ConfigurationError(f"Redis Cluster has only database 0, got db={parsed['db']} in {safe}")
    return RedisOptions(**settings)


parse_redis_url = parse_url
"""The name of :func:`parse_url` before the plugin skeleton (kept for code importing it)."""
