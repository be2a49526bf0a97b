"""``Env``: what a clause test gets — a connected backend, more objects on its store, fresh queue names."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import uuid
from collections.abc import Awaitable, Callable

from sheppy_core.backend import SHARED_STORE, Backend

__all__ = ["BackendFactory", "DropConnection", "Env", "WriteStoredText", "describe_backend"]

BackendFactory = Callable[[], Backend]
"""Zero-argument callable returning a new, unconnected backend object on the same store."""

DropConnection = Callable[[Backend], Awaitable[None]]
"""Async hook that breaks a backend object's connection behind its back (reconnect clauses)."""

WriteStoredText = Callable[[Backend, str, str, str], Awaitable[None]]
"""Async hook ``(backend, queue_name, task_id, text)`` that writes ``text`` straight into the store as
the stored record of a queued task ``task_id`` (behind the backend's back, as a bug or a manual edit
would), queued behind the tasks already there (``robust.corrupt_record``)."""

_CLEANUP_SECONDS = 5.0


class Env:
    """One test's view of the backend under test.

    ``backend`` is connected. :meth:`peer` gives another connected object on the same store when the
    backend declares ``SHARED_STORE`` (so concurrency clauses cross connections), else the same object
    (concurrent coroutines on one object). Every queue name from :meth:`queue` is cleared afterwards.
    """

    def __init__(
        self,
        factory: BackendFactory,
        backend: Backend,
        drop_connection: DropConnection,
        write_stored_text: WriteStoredText | None = None,
    ) -> None:
        self.factory = factory
        self.backend = backend
        self.drop_connection = drop_connection
        self.write_stored_text = write_stored_text
        self.capabilities = frozenset(type(backend).capabilities)
        self.shared = SHARED_STORE in self.capabilities
        self._queues: list[str] = []
        self._peers: list[Backend] = []

    def queue(self, label: str = "q") -> str:
        """A queue name no other test uses."""
        name = f"sheppy-conformance-{label}-{uuid.uuid4().hex[:12]}"
        self.use_queue(name)
        return name

    def use_queue(self, name: str) -> str:
        """Register a hand-made queue name for cleanup."""
        self._queues.append(name)
        return name

    async def peer(self) -> Backend:
        if not self.shared:
            return self.backend
        other = self.factory()
        await other.connect()
        self._peers.append(other)
        return other

    async def peers(self, count: int) -> list[Backend]:
        return [await self.peer() for _ in range(count)]

    async def close(self) -> None:
        # Best effort: a broken backend must fail its clause, not every teardown after it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._cleanup(), _CLEANUP_SECONDS)

    async def _cleanup(self) -> None:
        try:
            if not self.backend.is_connected:
                await self.backend.connect()
            for name in self._queues:
                with contextlib.suppress(Exception):
                    await self.backend.clear(name)
        finally:
            for other in [*self._peers, self.backend]:
                with contextlib.suppress(Exception):
                    await other.disconnect()


def distribution_of(cls: type[Backend]) -> tuple[str, str] | None:
    """``(distribution, version)`` shipping ``cls``: the plugin that registered it, else the installed
    distribution owning its top-level package; None for a class defined outside any (a test module)."""
    from sheppy_core._plugins import get_backend_plugins

    for plugin in get_backend_plugins():
        if plugin.backend_class is cls:
            return plugin.distribution, plugin.version
    top_level = cls.__module__.partition(".")[0]
    for name in importlib.metadata.packages_distributions().get(top_level, []):
        return name, importlib.metadata.version(name)
    return None


def describe_backend(backend: Backend) -> dict[str, object]:
    cls = type(backend)
    shipped_by = distribution_of(cls)
    return {
        "name": cls.__name__,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "distribution": shipped_by[0] if shipped_by else None,
        "version": shipped_by[1] if shipped_by else None,
        "schemes": list(cls.url_schemes),
        "contract_version": getattr(cls, "contract_version", None),
        "capabilities": sorted(cls.capabilities),
    }
