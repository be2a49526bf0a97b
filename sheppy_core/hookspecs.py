"""The plugin hooks of sheppy-core. The docstrings are the API.

A plugin is a module named by an entry point in the group ``sheppy``; it implements hooks with the
:data:`hookimpl` marker::

    # pyproject.toml
    [project.entry-points.sheppy]
    toy = "sheppy_toy"

    # sheppy_toy.py
    from sheppy_core import hookimpl

    @hookimpl
    def register_backends(register):
        register(ToyBackend)

The built-in ``memory://`` backend registers through this same hook.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

__all__ = ["hookimpl", "hookspec", "register_backends"]

hookspec = pluggy.HookspecMarker("sheppy")
hookimpl = pluggy.HookimplMarker("sheppy")
"""Marker for hook implementations: plugins import it from ``sheppy_core``."""


@hookspec
def register_backends(register: Callable[..., None]) -> None:
    """Register backend classes by calling ``register(BackendClass)`` once per class.

    ``register(backend_class, *, schemes=None, factory=None)``:

    - ``backend_class`` is a :class:`~sheppy_core.backend.Backend` subclass declaring ``url_schemes``,
      ``contract_version`` and ``capabilities``.
    - ``schemes`` overrides ``backend_class.url_schemes``.
    - ``factory(url) -> Backend`` overrides ``backend_class.from_url``.

    sheppy-core refuses a class whose ``contract_version`` differs from
    :data:`~sheppy_core.backend.CONTRACT_VERSION` (``ContractVersionError``), and a scheme claimed by
    two plugins (``DuplicateSchemeError``), naming both plugins.
    """
