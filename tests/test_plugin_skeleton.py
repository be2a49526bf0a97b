"""The plugin skeleton (conformance/README.md, "The plugin skeleton"), as a user of each backend
distribution sees it: the same public names, the same role modules, and the old names still importing."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from sheppy_core.backend import Backend

ROOT = Path(__file__).resolve().parent.parent

# The roles of every SQL plugin; Redis has Lua scripts and no schema.
SQL_ROLES = [
    "_backend", "_config", "_errors", "_extras", "_listener", "_migrations", "_plugin", "_records", "_sql",
]

# (package, name prefix, a URL its parse_url reads, role modules it has)
PLUGINS = [
    ("sheppy_sqlite", "SQLite", "sqlite:///jobs.db?lease=4", SQL_ROLES),
    ("sheppy_redis", "Redis", "redis://127.0.0.1:6379/0?lease=4",
     ["_backend", "_config", "_errors", "_extras", "_listener", "_plugin", "_records", "_scripts"]),
    ("sheppy_postgres", "Postgres", "postgresql://u@h/db?lease=4", SQL_ROLES),
    ("sheppy_jsonfile", "JsonFile", "jsonfile:///tmp/store.json?lease=4", ["_backend", "_config", "_plugin"]),
]


@pytest.mark.parametrize(("package", "prefix", "url", "roles"), PLUGINS, ids=[p[0] for p in PLUGINS])
def test_every_plugin_exports_the_same_surface(package: str, prefix: str, url: str, roles: list[str]) -> None:
    module = importlib.import_module(package)
    assert {f"{prefix}Backend", f"{prefix}Options", "parse_url", "__version__"} <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)
    backend_class = getattr(module, f"{prefix}Backend")
    assert issubclass(backend_class, Backend)
    options = module.parse_url(url)
    assert isinstance(options, getattr(module, f"{prefix}Options"))
    assert options.lease == 4.0  # the common options, through the kit
    assert backend_class.from_url(url).lease_duration == 4.0


@pytest.mark.parametrize(("package", "prefix", "url", "roles"), PLUGINS, ids=[p[0] for p in PLUGINS])
def test_every_plugin_has_one_module_per_role(package: str, prefix: str, url: str, roles: list[str]) -> None:
    for role in roles:
        importlib.import_module(f"{package}.{role}")
    if "_extras" in roles:
        mixin = importlib.import_module(f"{package}._extras").OptionalCapabilities
        assert issubclass(getattr(importlib.import_module(package), f"{prefix}Backend"), mixin)


def test_names_from_before_the_skeleton_still_import() -> None:
    from sheppy_postgres import PostgresConfig, PostgresOptions
    from sheppy_redis._config import RedisOptions, RedisSettings, parse_redis_url, parse_url

    assert PostgresConfig is PostgresOptions
    assert RedisSettings is RedisOptions
    assert parse_redis_url is parse_url
