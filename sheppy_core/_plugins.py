"""The backend registry: which installed plugin serves which URL scheme.

Plugins are modules named by entry points in the group ``sheppy``; they register backend classes
through the ``register_backends`` hook (:mod:`sheppy_core.hookspecs`). The built-in memory backend
registers through the same hook. Nothing is loaded at ``import sheppy_core``: the first lookup calls
:func:`load_plugins`, once.

``SHEPPY_LOAD_PLUGINS`` narrows loading to a comma-separated list of distribution names (an empty value
loads no external plugin), so tests and deployments never pick up stray installed plugins.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType, ModuleType
from typing import Any

import pluggy

from sheppy_core import hookspecs
from sheppy_core.backend import (
    CONTRACT_VERSION,
    Backend,
    abstract_problem,
    missing_contract_methods,
    redact_secrets,
    redact_url,
)
from sheppy_core.backend._url import url_scheme
from sheppy_core.exceptions import (
    ConfigurationError,
    ContractVersionError,
    DuplicateSchemeError,
    PluginError,
    UnknownSchemeError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_SCHEMES",
    "BackendPlugin",
    "backend_from_url",
    "get_backend_plugins",
    "load_plugins",
    "reset_plugins",
]

logger = logging.getLogger("sheppy.plugins")

ENTRY_POINT_GROUP = "sheppy"

KNOWN_SCHEMES: Mapping[str, str] = MappingProxyType(
    {
        "sqlite": "sheppy-sqlite",
        "redis": "sheppy-redis",
        "rediss": "sheppy-redis",
        "unix": "sheppy-redis",
        "postgresql": "sheppy-postgres",
        "postgres": "sheppy-postgres",
    }
)
"""Schemes served by first-party plugins, with the distribution to install."""

BUILTIN = "sheppy-core"


@dataclass(frozen=True)
class BackendPlugin:
    """One registered backend class and where it came from."""

    backend_class: type[Backend]
    schemes: tuple[str, ...]
    distribution: str
    version: str
    factory: Callable[[str], Backend] | None = None
    problem: str | None = field(default=None, compare=False)

    @property
    def contract_version(self) -> int | None:
        return getattr(self.backend_class, "contract_version", None)

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(getattr(self.backend_class, "capabilities", frozenset()))

    def build(self, url: str) -> Backend:
        if self.problem:
            raise ContractVersionError(self.problem)
        try:
            return self.factory(url) if self.factory else self.backend_class.from_url(url)
        except ValueError as exc:
            # A plugin that quotes its URL in an error must not show its secrets.
            message = str(exc)
            shown = redact_secrets(message, url)
            if shown == message:
                raise
            raise ConfigurationError(shown) from None


@dataclass
class _State:
    by_scheme: dict[str, BackendPlugin] = field(default_factory=dict)
    conflicts: dict[str, list[BackendPlugin]] = field(default_factory=dict)
    plugins: list[BackendPlugin] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


_lock = threading.Lock()
_state: _State | None = None


def _builtin_module() -> ModuleType:
    from sheppy_core.backend import _plugin

    return _plugin


def _allowed_distributions() -> set[str] | None:
    raw = os.environ.get("SHEPPY_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip().lower() for name in raw.split(",") if name.strip()}


def _distribution_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ep.value, "?"
    return dist.metadata["Name"] or ep.value, dist.version


def load_plugins() -> None:
    """Load the built-in backends and the allowed entry-point plugins, once."""
    global _state
    with _lock:
        if _state is not None:
            return
        state = _State()
        manager = pluggy.PluginManager("sheppy")
        manager.add_hookspecs(hookspecs)
        origins: dict[int, tuple[str, str]] = {}

        from sheppy_core import __version__

        builtin = _builtin_module()
        manager.register(builtin, name=BUILTIN)
        origins[id(builtin)] = (BUILTIN, __version__)

        allowed = _allowed_distributions()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist_name, version = _distribution_of(ep)
            if allowed is not None and dist_name.lower() not in allowed:
                continue
            try:
                module = ep.load()
                manager.register(module, name=f"{dist_name}:{ep.name}")
            except Exception as exc:  # a broken plugin must not take the others down
                state.failed[dist_name] = f"{type(exc).__name__}: {exc}"
                logger.warning("backend plugin %s failed to load: %s", dist_name, exc)
                continue
            origins[id(module)] = (dist_name, version)

        for impl in manager.hook.register_backends.get_hookimpls():
            dist_name, version = origins.get(id(impl.plugin), (impl.plugin_name, "?"))

            def register(
                backend_class: type[Backend],
                *,
                schemes: tuple[str, ...] | list[str] | None = None,
                factory: Callable[[str], Backend] | None = None,
                _dist: str = dist_name,
                _version: str = version,
            ) -> None:
                _add(state, backend_class, schemes, factory, _dist, _version)

            impl.function(register=register)
        _state = state


def _add(
    state: _State,
    backend_class: type[Backend],
    schemes: tuple[str, ...] | list[str] | None,
    factory: Callable[[str], Backend] | None,
    distribution: str,
    version: str,
) -> None:
    if not (isinstance(backend_class, type) and issubclass(backend_class, Backend)):
        raise PluginError(
            f"plugin {distribution} registered {backend_class!r}, which is not a Backend subclass"
        )
    declared = tuple(s.lower() for s in (schemes or backend_class.url_schemes))
    problem = None
    stated = getattr(backend_class, "contract_version", None)
    if stated != CONTRACT_VERSION:
        problem = (
            f"{backend_class.__name__} from {distribution} {version} implements Backend contract version "
            f"{stated}, but sheppy-core needs version {CONTRACT_VERSION}; upgrade {distribution} "
            f"(or sheppy-core) so they match"
        )
    plugin = BackendPlugin(backend_class, declared, distribution, version, factory, problem)
    state.plugins.append(plugin)
    for scheme in declared:
        if scheme in state.conflicts:
            state.conflicts[scheme].append(plugin)
        elif scheme in state.by_scheme:
            state.conflicts[scheme] = [state.by_scheme.pop(scheme), plugin]
        else:
            state.by_scheme[scheme] = plugin


def reset_plugins() -> None:
    """Forget what was loaded (tests; after installing a plugin at run time)."""
    global _state
    with _lock:
        _state = None


def _loaded() -> _State:
    load_plugins()
    assert _state is not None
    return _state


def get_backend_plugins() -> list[BackendPlugin]:
    """Every registered backend, in registration order (built-ins first)."""
    return list(_loaded().plugins)


def installed_schemes() -> list[str]:
    state = _loaded()
    return sorted(set(state.by_scheme) | set(state.conflicts))


def failed_plugins() -> Mapping[str, str]:
    return MappingProxyType(_loaded().failed)


def plugin_for_url(url: str) -> BackendPlugin:
    """The plugin serving ``url``'s scheme, or a clear error saying what to install."""
    state = _loaded()
    scheme = url_scheme(url)
    shown = redact_url(url)
    if not scheme:
        raise UnknownSchemeError(
            f"Invalid backend URL: {shown!r} has no scheme; expected e.g. 'sqlite:///sheppy.db', "
            f"'redis://127.0.0.1:6379' or 'memory://' (installed schemes: {', '.join(installed_schemes())})"
        )
    if scheme in state.conflicts:
        names = ", ".join(f"{p.distribution} ({p.backend_class.__name__})" for p in state.conflicts[scheme])
        raise DuplicateSchemeError(
            f"URL scheme {scheme!r} is claimed by more than one plugin: {names}; uninstall one, or narrow "
            f"SHEPPY_LOAD_PLUGINS to the one you want"
        )
    plugin = state.by_scheme.get(scheme)
    if plugin is None:
        message = (
            f"Unsupported backend protocol: {scheme} (in {shown!r}): no installed backend serves "
            f"scheme {scheme!r}; installed schemes: "
            f"{', '.join(installed_schemes()) or 'none'}"
        )
        if scheme in KNOWN_SCHEMES:
            message += f". To use {scheme}://, run: pip install {KNOWN_SCHEMES[scheme]}"
        if state.failed:
            message += ". Plugins that failed to load: " + "; ".join(
                f"{name} ({err})" for name, err in state.failed.items()
            )
        raise UnknownSchemeError(message)
    return plugin


def backend_from_url(url: str) -> Backend:
    """Build (not connect) the backend for ``url``."""
    return plugin_for_url(url).build(url)


def backend_class_for_scheme(scheme: str) -> type[Backend] | None:
    plugin = _loaded().by_scheme.get(scheme)
    return plugin.backend_class if plugin else None


def _describe(plugin: BackendPlugin) -> dict[str, Any]:
    problems = [p for p in (plugin.problem, abstract_problem(plugin.backend_class)) if p]
    return {
        "distribution": plugin.distribution,
        "version": plugin.version,
        "backend": f"{plugin.backend_class.__module__}.{plugin.backend_class.__qualname__}",
        "schemes": list(plugin.schemes),
        "contract_version": plugin.contract_version,
        "capabilities": sorted(plugin.capabilities),
        "problem": "; ".join(problems) or None,
        "missing_methods": missing_contract_methods(plugin.backend_class),
    }
