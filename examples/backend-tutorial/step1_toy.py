"""Step 1: a toy backend. It declares a scheme, reads its URL, and keeps queues in a dict."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from sheppy_core.backend import CONTRACT_VERSION, Backend, ConfigurationError

STORES: dict[str, dict[str, Any]] = {}  # "toy://<name>" -> its queues; shared by every object on it


class ToyBackend(Backend):
    url_schemes: ClassVar[tuple[str, ...]] = ("toy",)
    contract_version: ClassVar[int] = CONTRACT_VERSION

    def __init__(self, name: str) -> None:
        self.queues = STORES.setdefault(name, {})
        self._connected = False

    @classmethod
    def from_url(cls, url: str) -> Self:
        scheme, _, name = url.partition("://")
        if scheme not in cls.url_schemes or not name:
            raise ConfigurationError(f"expected toy://<name>, got {url!r}")
        return cls(name)

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    async def append(self, queue_name: str, tasks: list[dict[str, Any]], unique: bool = True, *,
                     connection: Any = None) -> list[bool]:
        queue = self.queues.setdefault(queue_name, {"records": {}, "queued": []})
        for task in tasks:
            queue["records"][task["id"]] = dict(task, status="pending")
            queue["queued"].append(task["id"])
        return [True] * len(tasks)

    async def size(self, queue_name: str) -> int:
        return len(self.queues.get(queue_name, {}).get("queued", []))


def build() -> ToyBackend:
    """What the suite calls for each backend object: a new, unconnected one on the same store."""
    return ToyBackend.from_url("toy://tutorial")
